"""Evaluator test support: tracked docs, LoRA versions in the registry, events."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from services.registry.client import RegistryClient
from shared import bus, storage
from shared.events import Event, FileEntry, JobQueued, JobStarted, VersionStored
from shared.modeling import demo_dataset_path


def demo_rows(n: int) -> list[dict[str, Any]]:
    with open(demo_dataset_path(), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return [rows[i % len(rows)] for i in range(n)]


def put_tracked(registry: RegistryClient, job_id: str, n: int = 8, heldout: int = 2,
                base_model: str | None = None) -> dict[str, Any]:
    examples = [{"idx": i, "id": row["id"], "split": "heldout" if i >= n - heldout else "train",
                 "messages": row["messages"]} for i, row in enumerate(demo_rows(n))]
    canonical = json.dumps(examples, sort_keys=True).encode()
    doc = {"job_id": job_id, "dataset_sha256": "d" * 64, "sha256": storage.sha256_bytes(canonical), "seed": 0,
           "examples": examples}
    if base_model:
        doc["base_model"] = base_model
    registry.put_json(storage.tracked_key(job_id), doc)
    return doc


def store_version(registry: RegistryClient, adapter_dir: Path, *, job_id: str, step: int,
                  base_model: str) -> tuple[str, list[dict[str, Any]]]:
    files = []
    for p in storage.list_files(adapter_dir):
        digest, size, _ = registry.put_blob(p)
        files.append({"path": p.relative_to(adapter_dir).as_posix(), "sha256": digest, "size": size})
    version_id = "v-" + storage.sha256_bytes(json.dumps(files, sort_keys=True).encode())[:16]
    registry.put_json(storage.manifest_key(version_id), {
        "version_id": version_id, "kind": "adapter", "name": f"{job_id}-step{step}", "note": "",
        "created_at": datetime.now(UTC).isoformat(), "files": files,
        "lineage": {"base_model": base_model, "job_id": job_id, "step": step, "spec": {"base_model": base_model}},
    })
    return version_id, files


def publish_version(r: redis.Redis, version_id: str, files: list[dict[str, Any]], *, job_id: str, step: int,
                    base_model: str) -> Event:
    event = Event.create("version.stored", VersionStored(
        version_id=version_id, kind="adapter", manifest_key=storage.manifest_key(version_id),
        files=[FileEntry(**f) for f in files], step=step, base_model=base_model), job_id=job_id)
    bus.publish(r, event)
    return event


def publish_job(r: redis.Redis, job_id: str, base_model: str) -> None:
    bus.publish(r, Event.create("job.queued", JobQueued(
        spec={"base_model": base_model, "dataset_name": "demo"},
        dataset={"name": "demo", "path": "demo.jsonl", "sha256": "d" * 64, "format": "chat", "n_examples": 55}),
        job_id=job_id))
    bus.publish(r, Event.create("job.started", JobStarted(attempt=1), job_id=job_id))


def events_of(r: redis.Redis, stream: str, etype: str) -> list[Event]:
    return [e for _, e in bus.read_all(r, stream) if e.type == etype]
