"""The demo job run by the real services in one process, for the evaluator benchmarks.

Real redis-server and SeaweedFS S3 on loopback; the demo spec (``services.stack.demo.demo_spec``: LoRA r16 on all
linear layers of the tiny Qwen3, 200 steps, a checkpoint every 50, 100 tracked examples) is submitted with
``submit_job`` and trained by the trainer's RQ job; the registry's loops run in a thread and turn each
``checkpoint.saved`` into a ``version.stored``. The evaluator is not running while the job trains, so the
training wall time (``job.started`` -> ``job.completed``) is undisturbed; afterwards an evaluator is built as its
service builds it and its snapshots are taken from the real events, each one timed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from services.stack.servers import RedisServer, S3Server
from shared import streams
from shared.bus import read_all
from shared.runtime import poll

KEY, SECRET = "bench", "bench-secret-key"


@dataclass
class DemoJob:
    job_id: str
    train_s: float  # job.started -> job.completed (event timestamps)
    versions: list[tuple[int, str]]  # (step, version id) of the checkpoint versions
    r: redis.Redis
    snapshot_s: dict[int, float] = field(default_factory=dict)  # step -> seconds the evaluator took


@contextmanager
def servers(root: Path, bucket: str = "bench-demo") -> Iterator[dict[str, Any]]:
    """A real redis-server and SeaweedFS S3 under ``root``; yields the settings every service takes."""
    redis_srv = RedisServer(root / "redis").start()
    s3_srv = S3Server(root / "s3", KEY, SECRET).start()
    try:
        yield {"dev": True, "redis_url": redis_srv.url, "s3_endpoint": s3_srv.endpoint, "s3_access_key": KEY,
               "s3_secret_key": SECRET, "bucket": bucket, "state_dir": root / "state"}
    finally:
        s3_srv.kill()
        redis_srv.stop()


def train(common: dict[str, Any], model_dir: Path | str, root: Path, steps: int = 200, device: str = "cpu",
          overrides: dict[str, Any] | None = None) -> DemoJob:
    """Submit and train the demo job with the registry running; returns its training wall time and versions."""
    from rq import SimpleWorker

    from services.registry.context import Registry
    from services.stack.demo import demo_spec
    from services.trainer import queueing
    from services.trainer.submit import submit_job
    from shared.modeling import demo_dataset_path
    from shared.settings import RegistrySettings, TrainerSettings, as_env
    from shared.storage import ensure_bucket, s3_client
    from tests.support.registry import running

    trainer = TrainerSettings(**common, checkpoints_dir=root / "ckpt", inbox_dir=root / "inbox",
                              control_dir=root / "control")
    # the RQ job loads its settings from the environment, as in the worker process
    os.environ.update(as_env(trainer))
    r = redis.Redis.from_url(common["redis_url"])
    s3 = s3_client(trainer)
    ensure_bucket(s3, trainer.bucket)
    spec = {**demo_spec(model_dir, steps), "deploy_policy": "manual", "deploy_target": None, "device": device,
            **(overrides or {})}
    job_id = submit_job(trainer, r, s3, demo_dataset_path(), spec=spec, source="cli")
    with running(Registry.open(RegistrySettings(**common)), "bench-registry"):
        SimpleWorker(list(queueing.QUEUES), connection=r).work(burst=True)
        events = {e.type: e for _, e in read_all(r, streams.JOBS) if e.job_id == job_id}
        if "job.completed" not in events:
            raise RuntimeError(f"the demo job did not complete: {sorted(events)}")
        train_s = (events["job.completed"].occurred_at - events["job.started"].occurred_at).total_seconds()
        checkpoints = [e for _, e in read_all(r, streams.CHECKPOINTS) if e.job_id == job_id]

        def versions() -> list[tuple[int, str]]:
            stored = sorted((e.payload["step"], e.payload["version_id"]) for _, e in read_all(r, streams.REGISTRY)
                            if e.type == "version.stored" and e.job_id == job_id
                            and e.payload.get("kind") == "adapter")
            return stored if len(stored) >= len(checkpoints) else []

        stored = poll("the registry storing every checkpoint", versions, timeout=120, every=0.1)
    return DemoJob(job_id, train_s, stored, r)


def evaluator(common: dict[str, Any], **overrides: Any) -> tuple[Any, Any, float]:
    """(consumer, capturer, start-up seconds) of an evaluator built as its service builds it."""
    from services.evaluator.main import build
    from shared.settings import EvaluatorSettings

    settings = EvaluatorSettings(**{**common, "device": "cpu", **overrides})
    r = redis.Redis.from_url(common["redis_url"])
    t0 = time.perf_counter()
    consumer, _runner = build(settings, r, consumer="bench-evaluator", warm_up=True)
    return consumer, consumer.handlers["version.stored"].__self__.capturer, time.perf_counter() - t0


def snapshots(job: DemoJob, consumer: Any, capturer: Any, timeout_s: float = 300) -> None:
    """Let the evaluator consume the job's events; records each snapshot's time in ``job.snapshot_s``."""
    handle = capturer.handle

    def timed(req: Any, cause: Any = None) -> Any:
        t0 = time.perf_counter()
        try:
            return handle(req, cause)
        finally:
            job.snapshot_s[req.step] = time.perf_counter() - t0

    capturer.handle = timed
    consumer.ensure_groups()
    want = 1 + len(job.versions)
    deadline = time.monotonic() + timeout_s
    while len(job.snapshot_s) < want and time.monotonic() < deadline:
        consumer.run_once(block_ms=200)
    captured = [e for _, e in read_all(job.r, streams.EVOLUTION) if e.job_id == job.job_id]
    if sum(e.type == "snapshot.captured" for e in captured) < want:
        raise RuntimeError(f"expected {want} snapshots, got {[e.type for e in captured]}")
