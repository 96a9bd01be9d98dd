"""At the real vocabulary (151,936 logits per position) the evaluator's rows per batch keep a snapshot's working
memory within its budget: measured, in a fresh process, as the peak RSS of the snapshot above the loaded model
(bench/realshape_rss.py, the same tool as the ``realshape_eval_peak_rss`` benchmark)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.realshape
@pytest.mark.slow
def test_snapshot_working_memory_stays_within_the_budget_at_151936(narrow_model: Path) -> None:
    n, tokens, budget_mb = 8, 256, 192
    proc = subprocess.run([sys.executable, "-m", "bench.realshape_rss", str(narrow_model), "cpu", "", str(n),
                           str(tokens), str(budget_mb)], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["peak_reset"], "the kernel's peak RSS could not be reset (no /proc/self/clear_refs)"
    # a row's logits alone are ~50 positions x 151,936 x 8 bytes (~60 MB): the budget admits 2-3 rows, not 8
    assert 1 <= out["rows"] < n
    working = out["peak_bytes"] - out["loaded_bytes"]
    assert working <= out["budget_bytes"], (working / 2**20, out)
