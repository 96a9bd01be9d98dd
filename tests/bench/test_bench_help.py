"""Every runnable bench module answers ``--help`` with its usage and exits 0 at once, without benchmarking."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
SCRIPTS = sorted(p.stem for p in BENCH.glob("*.py") if 'if __name__ == "__main__"' in p.read_text())


def test_every_bench_script_is_found() -> None:
    assert {"bench_trainer", "bench_registry", "bench_evaluator", "run_all"} <= set(SCRIPTS)


@pytest.mark.parametrize("module", SCRIPTS)
def test_help_prints_usage_and_runs_nothing(module: str) -> None:
    results = BENCH / "results.json"
    before = results.read_bytes() if results.exists() else None
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", f"bench.{module}", "--help"], cwd=BENCH.parent,
                          capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.lstrip().startswith("usage:"), proc.stdout[:500]
    assert elapsed < 60, f"--help took {elapsed:.0f}s: the benchmark ran"
    assert (results.read_bytes() if results.exists() else None) == before
