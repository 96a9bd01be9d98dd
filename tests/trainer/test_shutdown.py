"""Two-stage shutdown of the real trainer worker (``python -m services.trainer.main`` as a subprocess).

First SIGTERM: the running job checkpoints at its next step, goes back to the FRONT of its queue (ahead of a
job that was waiting behind it) and the worker exits 0. Second SIGTERM: the worker exits now; the next worker
resumes the job from its last complete checkpoint. Every wait is bounded; processes are killed in finally.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis

from services.trainer import checkpoints, jobstore, queueing
from services.trainer.submit import submit_job
from shared import streams
from shared.modeling import demo_dataset_path
from shared.settings import TrainerSettings
from shared.storage import s3_client
from tests.support.trainer import events, make_settings, start_worker, stop_worker, tiny_spec, wait_for

pytestmark = pytest.mark.slow

LONG = {"max_steps": 24, "checkpoint_every": 5, "log_every": 1}


def _submit_two(settings: TrainerSettings, r: redis.Redis, tiny_model: Path) -> tuple[str, str]:
    """A long job and a short one queued behind it, both on the default queue."""
    s3 = s3_client(settings)
    long = submit_job(settings, r, s3, demo_dataset_path(), spec=tiny_spec(tiny_model, **LONG))
    short = submit_job(settings, r, s3, demo_dataset_path(), spec=tiny_spec(tiny_model, max_steps=2))
    assert queueing.order(r) == [("default", long), ("default", short)]
    return long, short


def _exit_code(proc: subprocess.Popen, timeout: float) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"worker still running {timeout:.0f} s after the signal") from None


def _finish_both(settings: TrainerSettings, r: redis.Redis, log: Path, long: str, short: str) -> list[str]:
    """A new worker completes both jobs; returns the order in which they ran."""
    proc = start_worker(settings, log)
    try:
        for job in (long, short):
            wait_for(r, streams.JOBS, lambda e, j=job: e.job_id == j and e.type == "job.completed", timeout=120,
                     proc=proc)
    finally:
        stop_worker(proc)
    ends = [(e.job_id, e.type) for e in events(r, streams.JOBS) if e.type in ("job.started", "job.completed")]
    ran = [j for j, t in ends[-4:] if t == "job.started"]
    assert ends[-4:] == [(ran[0], "job.started"), (ran[0], "job.completed"), (ran[1], "job.started"),
                         (ran[1], "job.completed")]  # one job after the other
    assert jobstore.load(r, long)["state"] == "completed" and jobstore.load(r, long)["step"] == LONG["max_steps"]
    return ran


def test_first_sigterm_checkpoints_requeues_at_front_and_exits(settings_kwargs: dict, tmp_path: Path,
                                                               r: redis.Redis, tiny_model: Path) -> None:
    settings = make_settings(settings_kwargs, tmp_path)
    long, short = _submit_two(settings, r, tiny_model)
    proc = start_worker(settings, tmp_path / "worker1.log")
    try:
        wait_for(r, streams.METRICS, lambda e: e.job_id == long and e.payload["step"] >= 2, proc=proc)
        proc.send_signal(signal.SIGTERM)
        assert _exit_code(proc, 60) == 0
    finally:
        stop_worker(proc)

    jobs = events(r, streams.JOBS, long)
    assert [e.type for e in jobs] == ["job.queued", "job.started", "job.paused", "job.resumed"]
    paused, resumed = jobs[2], jobs[3]
    step = paused.payload["step"]
    assert 2 <= step < LONG["max_steps"], step
    assert paused.payload["reason"] == "worker shutdown: requeued" and resumed.payload["from_step"] == step
    output_dir = settings.checkpoints_dir / long
    assert paused.payload["checkpoint_dir"] == str((output_dir / f"checkpoint-{step}").resolve())
    saved = [e.payload for e in events(r, streams.CHECKPOINTS, long)]
    assert saved[-1]["step"] == step and not saved[-1]["final"]
    assert checkpoints.latest(output_dir) == output_dir / f"checkpoint-{step}"
    rec = jobstore.load(r, long)
    assert rec["state"] == "queued" and rec["step"] == step
    assert queueing.order(r) == [("default", long), ("default", short)]  # at the front, ahead of the waiting job
    assert [e.type for e in events(r, streams.JOBS, short)] == ["job.queued"]
    assert not r.hexists(streams.CONTROL_KEY, long) and not jobstore.running_jobs(r)

    assert _finish_both(settings, r, tmp_path / "worker2.log", long, short) == [long, short]
    starts = [e.payload for e in events(r, streams.JOBS, long) if e.type == "job.started"]
    assert [(s["attempt"], s["resumed_from_step"]) for s in starts] == [(1, 0), (2, step)]
    assert not any(e.type == "job.failed" for e in events(r, streams.JOBS))


def test_second_sigterm_exits_now_and_the_job_resumes_from_its_last_checkpoint(
        settings_kwargs: dict, tmp_path: Path, r: redis.Redis, tiny_model: Path) -> None:
    settings = make_settings(settings_kwargs, tmp_path)
    long, short = _submit_two(settings, r, tiny_model)
    proc = start_worker(settings, tmp_path / "worker1.log")
    try:
        wait_for(r, streams.CHECKPOINTS, lambda e: e.job_id == long and e.payload["step"] == 5, proc=proc)
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10  # the first handler ran once it asked the job to requeue
        while r.hget(streams.CONTROL_KEY, long) != b"requeue" and jobstore.load(r, long)["state"] == "running":
            assert time.monotonic() < deadline, "first SIGTERM not handled"
            time.sleep(0.005)
        proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        assert _exit_code(proc, 10) == 1  # os._exit(1): no warm stop
        assert time.monotonic() - t0 < 5
    finally:
        stop_worker(proc)

    output_dir = settings.checkpoints_dir / long
    last = checkpoints.latest(output_dir)
    assert last is not None and checkpoints.step_of(last) >= 5
    assert not any(e.type == "job.completed" for e in events(r, streams.JOBS, long))
    assert [e.type for e in events(r, streams.JOBS, short)] == ["job.queued"]
    at_kill = jobstore.load(r, long)["state"]  # running: killed mid-step; queued: requeued just before
    assert at_kill in ("running", "queued"), at_kill

    _finish_both(settings, r, tmp_path / "worker2.log", long, short)
    starts = [e.payload for e in events(r, streams.JOBS, long) if e.type == "job.started"]
    assert [(s["attempt"], s["resumed_from_step"]) for s in starts] == [(1, 0), (2, checkpoints.step_of(last))]
    failed = [e.payload["error"] for e in events(r, streams.JOBS, long) if e.type == "job.failed"]
    # an orphan is requeued by the next worker's reaper (recorded as a failed attempt), never lost
    assert failed == (["worker died mid-training (no heartbeat); requeued"] if at_kill == "running" else [])
