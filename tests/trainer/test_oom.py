"""Out of memory mid-training pauses the job with a clear reason and keeps its last checkpoint; resume completes.

No GPU here: a forward hook raises a real ``torch.OutOfMemoryError`` (what CUDA raises) once, during
step 5, inside the real recipe run by the real trainer worker (in-process, burst mode) on real Redis and S3.
The seam is ``recipe.build_model``: the test wraps it to hook the model it builds; nothing else is replaced.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import torch
from rq.registry import FailedJobRegistry

from services.trainer import checkpoints, control, jobstore, queueing, recipe
from services.trainer.submit import submit_job
from services.trainer.worker import TrainerWorker
from shared import streams
from shared.modeling import demo_dataset_path
from shared.settings import TrainerSettings
from shared.storage import s3_client, sha256_file
from tests.support.trainer import env_for, events, make_settings, tiny_spec

OOM_AT_FORWARD = 5  # one forward per step (grad_accum 1): raised during step 5, after checkpoint-3
OOM_TEXT = "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total capacity)"


class OomOnce:
    """Wraps the recipe's ``build_model``; the built model raises OutOfMemoryError in its Nth forward, once."""

    def __init__(self, build: Any, at: int) -> None:
        self.build, self.at = build, at
        self.forwards = 0
        self.raised = 0

    def __call__(self, spec: Any, device: str, *init: Any) -> tuple[Any, Any]:
        model, tokenizer = self.build(spec, device, *init)  # init: the init_from version and its kind
        model.register_forward_pre_hook(self._hook)
        return model, tokenizer

    def _hook(self, module: Any, args: Any) -> None:
        if not module.training:
            return
        self.forwards += 1
        if self.forwards == self.at and not self.raised:
            self.raised += 1
            raise torch.OutOfMemoryError(OOM_TEXT)


@pytest.fixture
def settings(settings_kwargs: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TrainerSettings:
    """Trainer settings, also in the environment (``run_job`` loads its settings from there)."""
    s = make_settings(settings_kwargs, tmp_path)
    for k, v in env_for(s).items():
        if k.startswith("TRAINYARD_"):
            monkeypatch.setenv(k, v)
    return s


@pytest.fixture
def signals_restored() -> Iterator[None]:
    """The trainer worker installs its two-stage SIGINT/SIGTERM handlers; give pytest its own back."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def run_worker(r: redis.Redis) -> None:
    TrainerWorker(r, "oom-test-worker").run(burst=True, max_restarts=0)


def test_oom_pauses_with_reason_keeps_checkpoint_and_resumes(settings: TrainerSettings, r: redis.Redis,
                                                             tiny_model: Path, monkeypatch: pytest.MonkeyPatch,
                                                             signals_restored: None) -> None:
    oom = OomOnce(recipe.build_model, OOM_AT_FORWARD)
    monkeypatch.setattr(recipe, "build_model", oom)
    s3 = s3_client(settings)
    job = submit_job(settings, r, s3, demo_dataset_path(), spec=tiny_spec(tiny_model, max_steps=6, checkpoint_every=3))
    run_worker(r)
    assert oom.raised == 1

    rec = jobstore.load(r, job)
    assert rec["state"] == "paused" and rec["step"] == 4, rec
    assert rec["reason"].startswith("out of GPU memory at step 4")
    assert rec["reason"].endswith("resume continues from checkpoint-3")
    types = [e.type for e in events(r, streams.JOBS, job)]
    assert types == ["job.queued", "job.started", "job.paused"]  # no job.failed, not requeued by itself
    paused = events(r, streams.JOBS, job)[-1]
    assert paused.payload["reason"] == rec["reason"] and paused.payload["step"] == 4
    output_dir = settings.checkpoints_dir / job
    assert paused.payload["checkpoint_dir"] == str(output_dir / "checkpoint-3")
    assert "error" not in rec
    assert FailedJobRegistry(queueing.QUEUES[1], connection=r).get_job_ids() == []
    assert queueing.order(r) == []

    # the checkpoint before the OOM is intact (every file as published) and is the one resume will use
    (saved,) = [e for e in events(r, streams.CHECKPOINTS, job)]
    assert saved.payload["step"] == 3 and not saved.payload["final"]
    for f in saved.payload["files"]:
        assert sha256_file(output_dir / "checkpoint-3" / f["path"]) == f["sha256"], f["path"]
    assert checkpoints.latest(output_dir) == output_dir / "checkpoint-3"
    assert [p.name for p in output_dir.iterdir() if p.name.startswith("checkpoint-")] == ["checkpoint-3"]

    assert control.resume(settings, r, job) == "queued"
    run_worker(r)
    assert oom.raised == 1  # once only: the second attempt trains undisturbed
    rec = jobstore.load(r, job)
    assert rec["state"] == "completed" and rec["step"] == 6
    jobs = events(r, streams.JOBS, job)
    assert [e.type for e in jobs] == ["job.queued", "job.started", "job.paused", "job.resumed", "job.started",
                                      "job.completed"]
    assert jobs[4].payload["resumed_from_step"] == 3 and jobs[4].payload["attempt"] == 2
    assert [(e.payload["step"], e.payload["final"]) for e in events(r, streams.CHECKPOINTS, job)] == [
        (3, False), (6, True)]
    metrics_steps = [e.payload["step"] for e in events(r, streams.METRICS, job)]
    assert metrics_steps == [1, 2, 3, 4, 4, 5, 6]  # attempt 1 logged 1..4 (step 5 died), attempt 2 4..6
