"""The deployer's own working state in Redis (not a read model: other services use the projection).

* which adapter serves on each target (with the ``lora_path`` needed to restore it),
* resumable upload ids per (target, version),
* deployments already executed (a redelivered request is not run twice),
* per-job deploy policy facts gathered from JOBS, REGISTRY and EVOLUTION events.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import redis

from shared import streams

SERVING = streams.key("deployer", "serving")
UPLOADS = streams.key("deployer", "uploads")
DONE = streams.key("deployer", "done")
JOBS = streams.key("deployer", "jobs")
SNAPSHOTS = streams.key("deployer", "snapshots")


@dataclass(frozen=True)
class Serving:
    deployment_id: str
    version_id: str
    adapter_name: str
    lora_path: str
    previous_adapter: str | None = None  # kept resident for instant rollback; older ones are unloaded


@dataclass
class DeployerState:
    r: redis.Redis

    # -- serving adapter per target -----------------------------------------------------------------
    def serving(self, target: str) -> Serving | None:
        raw = self.r.hget(SERVING, target)
        return Serving(**json.loads(raw)) if raw else None

    def set_serving(self, target: str, serving: Serving) -> None:
        self.r.hset(SERVING, target, json.dumps(asdict(serving)))

    # -- resumable uploads --------------------------------------------------------------------------
    def upload_id(self, target: str, version_id: str) -> str | None:
        raw = self.r.hget(UPLOADS, f"{target}|{version_id}")
        return raw.decode() if raw else None

    def set_upload_id(self, target: str, version_id: str, upload_id: str | None) -> None:
        if upload_id is None:
            self.r.hdel(UPLOADS, f"{target}|{version_id}")
        else:
            self.r.hset(UPLOADS, f"{target}|{version_id}", upload_id)

    # -- executed deployments -----------------------------------------------------------------------
    def is_done(self, deployment_id: str) -> bool:
        return bool(self.r.sismember(DONE, deployment_id))

    def mark_done(self, deployment_id: str) -> None:
        self.r.sadd(DONE, deployment_id)

    # -- per-job policy facts -----------------------------------------------------------------------
    def job(self, job_id: str) -> dict[str, Any]:
        raw = self.r.hget(JOBS, job_id)
        return json.loads(raw) if raw else {}

    def update_job(self, job_id: str, **fields: Any) -> dict[str, Any]:
        doc = {**self.job(job_id), **fields}
        self.r.hset(JOBS, job_id, json.dumps(doc, sort_keys=True))
        return doc

    def snapshot_captured(self, version_id: str) -> bool:
        return bool(self.r.sismember(SNAPSHOTS, version_id))

    def add_snapshot(self, version_id: str) -> None:
        self.r.sadd(SNAPSHOTS, version_id)
