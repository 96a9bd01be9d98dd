"""No local checkpoint is deleted before the registry confirmed a version with matching hashes."""

from __future__ import annotations

import json
from pathlib import Path

import redis

from services.trainer import checkpoints
from services.trainer.handlers import CHECKPOINTS_KEY, RetentionHandlers
from shared.events import Event, FileEntry, VersionStored


def _ckpt(root: Path, step: int) -> dict:
    d = root / f"checkpoint-{step}"
    d.mkdir(parents=True)
    (d / "adapter_model.safetensors").write_bytes(f"weights {step}".encode())
    checkpoints.write_spec(d, job_id="job-x", step=step, spec={})
    return {"dir": str(d.resolve()), "files": [f.model_dump() for f in checkpoints.describe(d)], "step": step}


def _stored(ckpt_event: str, files: list[dict]) -> Event:
    return Event.create("version.stored", VersionStored(
        version_id=f"v-{ckpt_event}", kind="adapter", manifest_key="m", checkpoint_event_id=ckpt_event,
        files=[FileEntry(**f) for f in files]), job_id="job-x")


def test_retention_only_after_matching_confirmation(tmp_path: Path, r: redis.Redis) -> None:
    root = tmp_path / "job-x"
    recs = {s: _ckpt(root, s) for s in (10, 20, 30, 40)}
    for s, rec in recs.items():
        r.hset(CHECKPOINTS_KEY, f"ev{s}", json.dumps(rec))
    h = RetentionHandlers(r, keep=1)
    bad = [dict(f, sha256="0" * 64) for f in recs[10]["files"]]
    h.on_version_stored(_stored("ev10", bad))  # hashes differ: not a confirmation
    assert (root / "checkpoint-10").is_dir()
    h.on_version_stored(_stored("ev10", recs[10]["files"]))
    assert (root / "checkpoint-10").is_dir()  # the only confirmed one is kept (keep=1)
    h.on_version_stored(_stored("ev20", recs[20]["files"]))
    assert not (root / "checkpoint-10").exists() and (root / "checkpoint-20").is_dir()
    assert (root / "checkpoint-30").is_dir() and (root / "checkpoint-40").is_dir()  # unconfirmed: kept
    h.on_version_stored(_stored("ev40", recs[40]["files"]))
    assert not (root / "checkpoint-20").exists()  # superseded by confirmed 40
    assert (root / "checkpoint-30").is_dir()  # never confirmed: never deleted
    assert checkpoints.latest(root) == root / "checkpoint-40"
