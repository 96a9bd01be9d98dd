"""Control files ``resume``, ``stop`` and ``skip`` (``pause`` is in tests/trainer/test_control.py).

Refusals and queued/paused targets go through ``ControlFileWatcher.scan_once`` on real Redis and S3; the
effects on running jobs go through the real worker subprocess (whose watcher consumes the files) with the
registry service running in this process, so a stop's checkpoint becomes a version.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from services.registry.context import Registry
from services.trainer import checkpoints, control, jobstore, queueing
from services.trainer.controlfiles import OUTCOMES, ControlFileWatcher
from services.trainer.submit import submit_job
from shared import streams
from shared.events import Event
from shared.modeling import demo_dataset_path
from shared.settings import RegistrySettings, TrainerSettings
from shared.storage import s3_client
from tests.support.registry import dropped_after, running
from tests.support.trainer import events, make_settings, start_worker, stop_worker, tiny_spec, wait_for

LONG = {"max_steps": 2000, "checkpoint_every": 1000, "log_every": 2}  # runs until a control file ends it


def put(control_dir: Path, action: str, content: str = "") -> None:
    """Drop a control file atomically (the watcher never sees it half written)."""
    control_dir.mkdir(parents=True, exist_ok=True)
    tmp = control_dir / f".{action}.tmp"
    tmp.write_text(content)
    os.replace(tmp, control_dir / action)


def outcomes(control_dir: Path) -> list[dict[str, Any]]:
    path = control_dir / OUTCOMES
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def outcome(control_dir: Path, n: int, timeout: float = 20.0) -> dict[str, Any]:
    """The ``n``-th recorded outcome (0-based), once it is there."""
    deadline = time.monotonic() + timeout
    while len(got := outcomes(control_dir)) <= n:
        assert time.monotonic() < deadline, f"no outcome #{n} within {timeout:.0f} s: {got}"
        time.sleep(0.05)
    return got[n]


def requests(r: redis.Redis) -> list[tuple[str | None, dict[str, Any]]]:
    return [(e.job_id, e.payload) for e in events(r, streams.JOBS) if e.type == "job.control_requested"]


def _submit(settings: TrainerSettings, r: redis.Redis, tiny_model: Path, **spec: Any) -> str:
    return submit_job(settings, r, s3_client(settings), demo_dataset_path(), spec=tiny_spec(tiny_model, **spec))


# -- in process: refusals, queued and paused targets ----------------------------------------------------
def test_refusals_and_waiting_jobs(settings_kwargs: dict, tmp_path: Path, r: redis.Redis, tiny_model: Path) -> None:
    settings = make_settings(settings_kwargs, tmp_path)
    cdir = settings.control_dir
    watcher = ControlFileWatcher(settings, r)
    a = _submit(settings, r, tiny_model)
    b = _submit(settings, r, tiny_model)
    before_events = len(events(r, streams.JOBS))

    for action in ("resume", "stop", "skip"):
        put(cdir, action, "job-nope\n")
    put(cdir, "pause", "")  # nothing is running: refused too
    got = {o["action"]: o for o in watcher.scan_once()}
    assert {act: (o["job_id"], o["ok"], o["outcome"]) for act, o in got.items()} == {
        "pause": (None, False, "no job to pause: none running"),
        "resume": ("job-nope", False, "no job 'job-nope'"),
        "stop": ("job-nope", False, "no job 'job-nope'"),
        "skip": ("job-nope", False, "no job 'job-nope'"),
    }
    assert sorted(p.name for p in cdir.iterdir()) == [OUTCOMES]  # every file consumed
    assert [o["action"] for o in outcomes(cdir)] == ["pause", "resume", "stop", "skip"]  # recorded in order
    assert len(events(r, streams.JOBS)) == before_events and not r.exists(streams.CONTROL_KEY)
    assert queueing.order(r) == [("default", a), ("default", b)]  # nothing else disturbed

    put(cdir, "skip", b)  # only a running job can be skipped
    put(cdir, "resume", "")  # nothing paused, preempted or stopped
    got = {o["action"]: o for o in watcher.scan_once()}
    assert got["skip"]["ok"] is False
    assert got["skip"]["outcome"] == f"cannot skip job {b}: it is queued (allowed when: running)"
    assert got["resume"] == {**got["resume"], "job_id": None, "ok": False,
                             "outcome": "no paused, preempted or stopped job to resume"}
    assert queueing.order(r) == [("default", a), ("default", b)]

    # a queued job stopped by file: off the queue, stopped; resumed by file (empty: the latest stopped one)
    put(cdir, "stop", a)
    assert watcher.scan_once()[0] == {**outcomes(cdir)[-1], "action": "stop", "job_id": a, "ok": True,
                                      "outcome": "stopped"}
    assert jobstore.load(r, a)["state"] == "stopped" and queueing.order(r) == [("default", b)]
    put(cdir, "resume", "")
    assert watcher.scan_once()[0] == {**outcomes(cdir)[-1], "action": "resume", "job_id": a, "ok": True,
                                      "outcome": "queued"}
    # a paused job resumed by file with its id: queued again
    control.pause(r, b)
    put(cdir, "resume", f"  {b}  \n")
    assert watcher.scan_once()[0]["outcome"] == "queued"
    assert queueing.order(r) == [("default", a), ("default", b)]
    assert [e.type for e in events(r, streams.JOBS, b)] == ["job.queued", "job.paused", "job.resumed"]
    assert sorted(p.name for p in cdir.iterdir()) == [OUTCOMES]


# -- the real worker: running jobs -----------------------------------------------------------------------
@pytest.fixture
def registry(settings_kwargs: dict, r: redis.Redis, bucket: str) -> Iterator[Registry]:
    with dropped_after(Registry.open(RegistrySettings(**settings_kwargs, replica_bucket=f"{bucket}-replica"), r)) \
            as reg, running(reg):
        yield reg


def _on(job: str, kind: str, **payload: Any) -> Any:
    return lambda e: e.job_id == job and e.type == kind and all(e.payload.get(k) == v for k, v in payload.items())


def _stopped_with_version(r: redis.Redis, settings: TrainerSettings, job: str, proc: Any) -> int:
    """The job stopped at a step with a checkpoint there, and the registry stored that checkpoint."""
    stopped = wait_for(r, streams.JOBS, _on(job, "job.stopped"), proc=proc)
    step = stopped.payload["step"]
    saved: Event = events(r, streams.CHECKPOINTS, job)[-1]
    assert saved.payload["step"] == step > 0 and not saved.payload["final"]
    ckpt = settings.checkpoints_dir / job / f"checkpoint-{step}"
    assert saved.payload["checkpoint_dir"] == str(ckpt.resolve())
    assert checkpoints.latest(ckpt.parent) == ckpt
    version = wait_for(r, streams.REGISTRY, lambda e: e.type == "version.stored"
                       and e.payload["checkpoint_event_id"] == saved.id, proc=proc)
    assert version.payload["kind"] == "adapter" and version.payload["step"] == step
    rec = jobstore.load(r, job)
    assert rec["state"] == "stopped" and rec["step"] == step
    return step


@pytest.mark.slow
def test_running_jobs_stop_resume_skip_by_file(settings_kwargs: dict, tmp_path: Path, r: redis.Redis,
                                               tiny_model: Path, registry: Registry) -> None:
    settings = make_settings(settings_kwargs, tmp_path)
    cdir = settings.control_dir
    a = _submit(settings, r, tiny_model, **LONG)
    proc = start_worker(settings, tmp_path / "worker.log")
    try:
        wait_for(r, streams.JOBS, _on(a, "job.started"), proc=proc)
        # unknown job id: refused and recorded, the file consumed, the running job untouched
        for i, action in enumerate(("resume", "stop", "skip")):
            put(cdir, action, "job-nope")
            assert outcome(cdir, i) == {**outcome(cdir, i), "action": action, "job_id": "job-nope", "ok": False,
                                        "outcome": "no job 'job-nope'"}
            assert not (cdir / action).exists()
        step_now = max([e.payload["step"] for e in events(r, streams.METRICS, a)], default=0)
        wait_for(r, streams.METRICS, lambda e: e.job_id == a and e.payload["step"] > step_now, proc=proc)
        assert jobstore.load(r, a)["state"] == "running" and requests(r) == []
        assert not r.exists(streams.CONTROL_KEY)

        # stop with the job id: checkpoint, version, stopped
        put(cdir, "stop", a)
        assert outcome(cdir, 3) == {**outcome(cdir, 3), "action": "stop", "job_id": a, "ok": True,
                                    "outcome": "requested"}
        a_step = _stopped_with_version(r, settings, a, proc)
        assert requests(r) == [(a, {"action": "stop", "source": "control-file"})]

        # resume, empty: the latest stopped job continues from its checkpoint
        put(cdir, "resume")
        assert outcome(cdir, 4) == {**outcome(cdir, 4), "action": "resume", "job_id": a, "ok": True,
                                    "outcome": "queued"}
        wait_for(r, streams.JOBS, _on(a, "job.started", attempt=2, resumed_from_step=a_step), proc=proc)

        # skip, empty: the running job ends keeping its checkpoints; the next queued job starts
        b = _submit(settings, r, tiny_model, **LONG)
        c = _submit(settings, r, tiny_model, **LONG)
        put(cdir, "skip")
        assert outcome(cdir, 5) == {**outcome(cdir, 5), "action": "skip", "job_id": a, "ok": True,
                                    "outcome": "requested"}
        skipped = wait_for(r, streams.JOBS, _on(a, "job.skipped"), proc=proc)
        assert skipped.payload["step"] > a_step and jobstore.load(r, a)["state"] == "skipped"
        assert [e.payload["step"] for e in events(r, streams.CHECKPOINTS, a)] == [a_step]  # no save on skip
        assert checkpoints.latest(settings.checkpoints_dir / a) == settings.checkpoints_dir / a / f"checkpoint-{a_step}"
        wait_for(r, streams.JOBS, _on(b, "job.started"), proc=proc)
        assert queueing.order(r) == [("default", c)]

        # pause by API, resume by file with the id: continues from the pause checkpoint
        control.pause(r, b)
        b_pause = wait_for(r, streams.JOBS, _on(b, "job.paused"), proc=proc).payload["step"]
        wait_for(r, streams.JOBS, _on(c, "job.started"), proc=proc)  # the worker moved on meanwhile
        put(cdir, "resume", b)
        assert outcome(cdir, 6) == {**outcome(cdir, 6), "action": "resume", "job_id": b, "ok": True,
                                    "outcome": "queued"}
        assert queueing.order(r) == [("default", b)]

        # skip with c's id, then b runs from its checkpoint; stop, empty, stops it
        put(cdir, "skip", c)
        assert outcome(cdir, 7) == {**outcome(cdir, 7), "job_id": c, "ok": True, "outcome": "requested"}
        wait_for(r, streams.JOBS, _on(c, "job.skipped"), proc=proc)
        wait_for(r, streams.JOBS, _on(b, "job.started", attempt=2, resumed_from_step=b_pause), proc=proc)
        put(cdir, "stop")
        assert outcome(cdir, 8) == {**outcome(cdir, 8), "action": "stop", "job_id": b, "ok": True,
                                    "outcome": "requested"}
        assert _stopped_with_version(r, settings, b, proc) > b_pause
    finally:
        stop_worker(proc)
    assert [o["ok"] for o in outcomes(cdir)] == [False] * 3 + [True] * 6
    assert sorted(p.name for p in cdir.iterdir()) == [OUTCOMES]
    assert not any(e.type == "job.failed" for e in events(r, streams.JOBS))
