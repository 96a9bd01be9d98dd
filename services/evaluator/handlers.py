"""The evaluator's reactions to other services' events (consumer group ``evaluator``).

* ``job.queued``: remember the job's spec (its base model) for the baseline;
* ``job.started`` (first attempt): capture the step-0 baseline of the base model;
* ``version.stored`` of kind ``adapter`` or ``full``: capture a snapshot of that checkpoint version.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import redis

from services.evaluator.capture import Capturer, Request
from services.registry.client import NotFoundError
from shared import bus, streams
from shared.events import Event, JobQueued, JobStarted, VersionStored

log = logging.getLogger(__name__)

SPECS_KEY = streams.key("evaluator", "specs")  # hash job_id -> job spec JSON (from job.queued)


@dataclass
class Handlers:
    r: redis.Redis
    capturer: Capturer

    def table(self) -> dict[str, bus.Handler]:
        return {
            "job.queued": self.on_job_queued,
            "job.started": self.on_job_started,
            "version.stored": self.on_version_stored,
        }

    def on_job_queued(self, event: Event) -> None:
        payload = event.typed()
        assert isinstance(payload, JobQueued)
        if event.job_id:
            self.r.hset(SPECS_KEY, event.job_id, json.dumps(payload.spec))

    def on_job_started(self, event: Event) -> None:
        payload = event.typed()
        assert isinstance(payload, JobStarted)
        if payload.attempt != 1 or not event.job_id:
            return
        spec = self.spec(event.job_id)
        self.capturer.handle(
            Request(job_id=event.job_id, step=0, version_id=None, base_model=spec.get("base_model"), spec=spec),
            cause=event,
        )

    def on_version_stored(self, event: Event) -> None:
        payload = event.typed()
        assert isinstance(payload, VersionStored)
        if payload.kind not in ("adapter", "full"):
            return
        try:
            manifest: dict[str, Any] | None = self.capturer.registry.manifest(payload.version_id)
        except NotFoundError:
            manifest = None
        lineage = (manifest or {}).get("lineage") or {}
        job_id = event.job_id or lineage.get("job_id")
        step = payload.step if payload.step is not None else lineage.get("step")
        if not job_id:
            log.info("version %s belongs to no job: no snapshot", payload.version_id)
            return
        spec = lineage.get("spec") or self.spec(job_id)
        req = Request(job_id=job_id, step=int(step) if step is not None else -1, version_id=payload.version_id,
                      base_model=lineage.get("base_model") or payload.base_model or spec.get("base_model"),
                      spec=spec, manifest=manifest)
        if step is None:
            self.capturer.publish_failed(req, f"version {payload.version_id} has no training step", event)
            return
        self.capturer.handle(req, cause=event)

    def spec(self, job_id: str) -> dict[str, Any]:
        """The job's spec from job.queued (remembered, else looked up in the jobs stream)."""
        raw = self.r.hget(SPECS_KEY, job_id)
        if raw:
            return json.loads(raw)
        for _eid, ev in bus.read_all(self.r, streams.JOBS):
            if ev.type == "job.queued" and ev.job_id == job_id:
                spec = ev.payload.get("spec") or {}
                self.r.hset(SPECS_KEY, job_id, json.dumps(spec))
                return spec
        return {}
