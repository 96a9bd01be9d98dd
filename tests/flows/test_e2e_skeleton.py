"""The walking skeleton end to end: the embedded stack (real redis-server, real S3, every service as its own
process) takes a JSONL dropped in the inbox through training, versions, snapshots, the API and a verified
deployment, and the projections rebuilt from the log equal the live ones."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from services.stack.demo import run_demo


@pytest.mark.slow
def test_demo_flow_end_to_end(tmp_path: Path) -> None:
    steps = 20
    result = run_demo(state_dir=tmp_path / "demo", keep=False, steps=steps, console=Console(width=120))
    assert result is not None, "the demo flow did not complete (see the captured output for the step)"
    assert result.job["state"] == "completed" and result.job["step"] == steps
    steps_seen = sorted(p["step"] for p in result.points)
    assert steps_seen[0] == 0 and steps_seen[-1] == steps  # baseline and the final checkpoint
    assert len(result.versions) >= 4  # one version per checkpoint (every steps/4)
    assert result.metrics and result.metrics[-1]["loss"] < result.metrics[0]["loss"]
    assert result.deployment["status"] == "verified"
    assert all(rep.equal for rep in result.reports), [r for r in result.reports if not r.equal]
    assert result.job["id"] in str(result.evolution_api)
    assert result.ok
    # The stack was stopped: nothing of it is left running.
    from services.stack.supervisor import status

    assert not any(p["alive"] for p in status(tmp_path / "demo"))
