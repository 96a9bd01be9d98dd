"""Print the image's requirement lines from pyproject.toml (build-time helper, standard library only).

Usage: python3 docker/requirements.py pyproject.toml [--extras "a,b"] [--extra-package NAME ...]

The requirements layer of the Dockerfile is built from this list before the code is copied in, so editing
the code does not reinstall the dependencies.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path


def requirements(pyproject: Path, extras: list[str], extra_packages: list[str]) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    lines = list(project["dependencies"])
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            raise SystemExit(f"requirements.py: unknown extra {extra!r}; known: {', '.join(sorted(optional))}")
        lines.extend(optional[extra])
    lines.extend(extra_packages)
    seen: set[str] = set()
    return [line for line in lines if not (line in seen or seen.add(line))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pyproject", type=Path)
    parser.add_argument("--extras", default="", help="comma-separated optional dependency groups")
    parser.add_argument("--extra-package", action="append", default=[])
    args = parser.parse_args(argv)
    extras = [e.strip() for e in args.extras.split(",") if e.strip()]
    sys.stdout.write("\n".join(requirements(args.pyproject, extras, args.extra_package)) + "\n")


if __name__ == "__main__":
    main()
