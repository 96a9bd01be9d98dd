"""Registry support for tests, drills and benchmarks: write a checkpoint like the trainer does, run the service.

Everything here talks to real servers; nothing is faked.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from services.registry.context import Registry
from shared import storage
from shared.bus import publish
from shared.events import CheckpointSaved, Event, FileEntry
from shared.runtime import poll


def write_checkpoint(root: Path, step: int, *, job_id: str = "job-1", seed: int = 0,
                     weights_bytes: int = 4096) -> list[dict[str, Any]]:
    """A checkpoint-shaped directory (safetensors weights, adapter config, job spec); returns its files."""
    import torch
    from safetensors.torch import save_file

    root.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed * 100_003 + step)
    n = max(1, weights_bytes // 4)
    save_file({"lora_A.weight": torch.randn(n, generator=g)}, str(root / "adapter_model.safetensors"))
    (root / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4}))
    (root / "trainyard_job.json").write_text(json.dumps({"job_id": job_id, "step": step}))
    return [{"path": p.relative_to(root).as_posix(), "sha256": storage.sha256_file(p), "size": p.stat().st_size}
            for p in storage.list_files(root)]


def checkpoint_event(job_id: str, root: Path, step: int, files: list[dict[str, Any]], *,
                     metrics: dict[str, Any] | None = None, final: bool = False,
                     base_model: str = "tiny-qwen3", dataset_sha256: str = "0" * 64) -> Event:
    payload = CheckpointSaved(
        step=step, checkpoint_dir=str(root), files=[FileEntry(**f) for f in files], base_model=base_model,
        dataset_sha256=dataset_sha256, spec={"job_id": job_id, "max_steps": 10}, metrics=metrics or {},
        final=final, tracked_key=storage.tracked_key(job_id),
    )
    return Event.create("checkpoint.saved", payload, job_id=job_id)


def save_checkpoint(reg: Registry, root: Path, step: int, *, job_id: str = "job-1",
                    metrics: dict[str, Any] | None = None, **kw: Any) -> Event:
    """Write a checkpoint and publish its ``checkpoint.saved`` (what the trainer's callback does)."""
    files = write_checkpoint(root, step, job_id=job_id, **kw)
    event = checkpoint_event(job_id, root, step, files, metrics=metrics)
    publish(reg.r, event)
    return event


def wait_for(pred: Callable[[], Any], timeout: float = 30.0, every: float = 0.05, what: str = "condition") -> Any:
    return poll(what, pred, timeout, every)


@contextmanager
def running(reg: Registry, name: str = "test") -> Iterator[list[Any]]:
    """Run the registry's loops (consumer, replica worker, projection) in threads until the block ends."""
    from services.registry.main import build_loops

    loops = build_loops(reg, consumer_name=name)
    threads = [threading.Thread(target=loop.run, daemon=True, name=f"registry-{i}") for i, loop in enumerate(loops)]
    for t in threads:
        t.start()
    try:
        yield loops
    finally:
        for loop in loops:
            loop.stop()
        for t in threads:
            t.join(timeout=30)


def drop_bucket(client: Any) -> None:
    """Empty and remove a test bucket. SeaweedFS gives every bucket its own volumes (7 by default) and a
    server has a limited number of slots, so tests that leave buckets behind exhaust it."""
    from minio.error import S3Error

    try:
        if not client.s3.bucket_exists(client.bucket):
            return
        for obj in list(client.s3.list_objects(client.bucket, recursive=True)):
            client.s3.remove_object(client.bucket, obj.object_name)
        client.s3.remove_bucket(client.bucket)
    except S3Error:
        pass


@contextmanager
def dropped_after(reg: Registry) -> Iterator[Registry]:
    try:
        yield reg
    finally:
        drop_bucket(reg.primary)
        drop_bucket(reg.replica)
