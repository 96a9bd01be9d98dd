"""Kill -9 drill: during the demo flow on the real embedded stack, kill services at random moments (seeded,
recorded), restart each, then check that nothing was lost or doubled.

Round 0 always kills the trainer (the RQ worker) while it trains, after its first checkpoint; later rounds
pick a victim among trainer, evaluator, registry, deployer and api at a random moment. The seed comes from
``TRAINYARD_CHAOS_SEED`` (random otherwise) and is printed and written to ``<tmp>/drill.log``.

``make test`` runs the reduced variant (``TRAINYARD_CHAOS_ROUNDS`` unset: 2 rounds, 40 steps);
``make chaos`` runs the full one (``-m chaos``, ``TRAINYARD_CHAOS_ROUNDS`` rounds, default 10, 60 steps).
Invariants: every ``checkpoint.saved`` has exactly one stored version, every checkpoint version exactly one
snapshot, no pending or dead-lettered entries, projections rebuilt from the log equal the live ones, the
on-complete deployment is verified, and the resumed job's final adapter equals an uninterrupted run's.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from services.stack.supervisor import down
from shared import streams
from tests.support.drills import (
    SERVICES_TO_KILL,
    assert_same_adapter,
    check_invariants,
    drop_job,
    events,
    final_adapter,
    job_by_name,
    job_state,
    secrets_in_logs,
    start_stack,
    tiny_model_copy,
    wait,
    wait_flow_done,
)

FULL_ROUNDS = os.environ.get("TRAINYARD_CHAOS_ROUNDS")


def variants() -> list:
    return [
        pytest.param(2, 40, id="reduced", marks=pytest.mark.slow),
        pytest.param(int(FULL_ROUNDS or 10), 60, id="full", marks=[
            pytest.mark.chaos, pytest.mark.slow,
            pytest.mark.skipif(FULL_ROUNDS is None, reason="full drill: make chaos (TRAINYARD_CHAOS_ROUNDS)")]),
    ]


@pytest.mark.parametrize(("rounds", "steps"), variants())
def test_kill_9_drill(rounds: int, steps: int, tiny_model: Path, tmp_path: Path) -> None:
    seed = int(os.environ.get("TRAINYARD_CHAOS_SEED") or random.SystemRandom().randrange(2**31))
    rng = random.Random(seed)
    print(f"kill -9 drill: seed={seed} rounds={rounds} steps={steps} (TRAINYARD_CHAOS_SEED={seed} to replay)")
    drill = start_stack(tmp_path, tiny_model_copy(tiny_model, tmp_path))
    drill.note(f"seed={seed} rounds={rounds} steps={steps}")
    r = drill.r
    try:
        every = max(steps // 4, 1)
        drop_job(drill, "drilled", steps, checkpoint_every=every)
        job = wait("the inbox file to become a job", lambda: job_by_name(r, "drilled"), 120)
        job_id = job["id"]
        # round 0: the trainer, at a random step after its first checkpoint, while it still trains
        kill_step = rng.randint(every + 1, steps - 2)
        wait(f"step {kill_step}", lambda: any(e.payload["step"] >= kill_step
                                              for e in events(r, streams.METRICS, job_id)), 600, every=0.05)
        assert job_state(r, job_id) == "running", "the trainer kill must land mid-training"
        drill.note(f"trainer kill at step >= {kill_step}")
        kill_and_restart(drill, "trainer", rng)
        for _ in range(1, rounds):
            time.sleep(rng.uniform(0.5, 6.0))
            kill_and_restart(drill, rng.choice(SERVICES_TO_KILL), rng)
        wait_flow_done(drill, job_id)
        starts = [e.payload["resumed_from_step"] for e in events(r, streams.JOBS, job_id) if e.type == "job.started"]
        drill.note(f"job.started resumed_from_step: {starts}")
        assert len(starts) >= 2 and starts[0] == 0 and max(starts) >= every, starts
        from services.deployer.projection import list_deployments

        deployments = list_deployments(r)
        assert deployments and deployments[0]["status"] == "verified", deployments
        # the same job again, never interrupted: its final adapter must equal the drilled one's
        drop_job(drill, "reference", steps, checkpoint_every=max(steps // 4, 1), deploy_policy="manual",
                 deploy_target=None)
        ref = wait("the reference job", lambda: job_by_name(r, "reference"), 120)
        wait_flow_done(drill, ref["id"], deployment=False)
        assert [e.payload["resumed_from_step"] for e in events(r, streams.JOBS, ref["id"])
                if e.type == "job.started"] == [0]
        check_invariants(drill, [job_id, ref["id"]])
        assert_same_adapter(final_adapter(drill, job_id, tmp_path / "a"), final_adapter(drill, ref["id"], tmp_path / "b"))
        assert not secrets_in_logs(drill), secrets_in_logs(drill)
    finally:
        (tmp_path / "drill.log").write_text("\n".join(drill.log) + "\n")
        print("\n".join(drill.log))
        down(drill.state_dir)


def kill_and_restart(drill, name: str, rng: random.Random) -> None:
    drill.note(f"kill -9 {name} (pid {drill.stack.proc(name).pid})")
    drill.stack.kill(name)
    time.sleep(rng.uniform(0.0, 2.0))
    drill.stack.restart(name)
    drill.note(f"restarted {name} (pid {drill.stack.proc(name).pid})")
