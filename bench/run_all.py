"""`make bench`: run every benchmark in bench/ (each records itself in results.json and RESULTS.md).

Run: .venv/bin/python -m bench.run_all [--only bus,trainer]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="", help="comma-separated topics, e.g. bus,registry")
    args = ap.parse_args()
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    modules = sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))
    failed = []
    for mod in modules:
        topic = mod.removeprefix("bench_")
        if only and topic not in only:
            continue
        print(f"== {mod}", flush=True)
        t0 = time.monotonic()
        rc = subprocess.call([sys.executable, "-m", f"bench.{mod}"])
        print(f"== {mod}: exit {rc} in {time.monotonic() - t0:.0f}s", flush=True)
        if rc:
            failed.append(mod)
    if failed:
        print(f"failed: {', '.join(failed)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
