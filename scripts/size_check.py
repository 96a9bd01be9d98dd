"""Size limits of the product code, run by ``make lint``: no module over 300 lines, no function over 60.

Checks every ``.py`` file under ``services/``, ``shared/``, ``bench/`` and ``scripts/`` (tests are exempt).
Prints one line per breach and a summary; exits 1 when anything is over.

    python scripts/size_check.py [--max-module 300] [--max-function 60] [ROOT ...]
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOTS = ("services", "shared", "bench", "scripts")

# Files over a limit that another change in flight is rewriting: reported as pending, not failed. Each entry
# names that change; remove it when the change has landed and the file is split.
PENDING: dict[str, str] = {}


def python_files(roots: list[Path]) -> Iterator[Path]:
    for root in roots:
        yield from sorted(p for p in root.rglob("*.py") if "vendor" not in p.parts)


def long_functions(tree: ast.AST, limit: int) -> Iterator[tuple[str, int, int]]:
    """(name, first line, length) of every function or method longer than ``limit`` lines, decorators included."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            length = (node.end_lineno or node.lineno) - first + 1
            if length > limit:
                yield node.name, first, length


def check(files: list[Path], max_module: int, max_function: int) -> list[str]:
    breaches = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > max_module:
            breaches.append(f"{path}: module has {lines} lines (limit {max_module})")
        for name, line, length in long_functions(ast.parse(text, filename=str(path)), max_function):
            breaches.append(f"{path}:{line}: function {name} has {length} lines (limit {max_function})")
    return breaches


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="*", default=list(ROOTS))
    parser.add_argument("--max-module", type=int, default=300)
    parser.add_argument("--max-function", type=int, default=60)
    args = parser.parse_args(argv)
    files = list(python_files([Path(r) for r in args.roots if Path(r).exists()]))
    found = check(files, args.max_module, args.max_function)
    pending = [b for b in found if b.split(":")[0] in PENDING]
    breaches = [b for b in found if b not in pending]
    for line in pending:
        print(f"pending: {line} ({PENDING[line.split(':')[0]]})")
    for line in breaches:
        print(line)
    verdict = ("kept" if not breaches else f"{len(breaches)} over") + (f", {len(pending)} pending" if pending else "")
    print(f"size limits ({args.max_module} lines a module, {args.max_function} a function; "
          f"{len(files)} files in {', '.join(args.roots)}): {verdict}")
    return 1 if breaches else 0


if __name__ == "__main__":
    sys.exit(main())
