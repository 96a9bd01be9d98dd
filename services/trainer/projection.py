"""The jobs projection: job state, priority, progress, checkpoints, versions and metrics history.

Read it with ``get_job``, ``list_jobs`` and ``job_metrics``; it is rebuilt from the JOBS, METRICS,
CHECKPOINTS and REGISTRY streams.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from services.trainer.states import JobState
from shared import streams
from shared.events import Event
from shared.projection import View

NAME = "jobs"

_STATE_BY_EVENT = {
    "job.queued": JobState.queued, "job.started": JobState.running, "job.paused": JobState.paused,
    "job.resumed": JobState.queued, "job.preempted": JobState.preempted, "job.stopped": JobState.stopped,
    "job.skipped": JobState.skipped, "job.completed": JobState.completed, "job.failed": JobState.failed,
    "job.cancelled": JobState.cancelled,
}


class JobsProjection:
    name = NAME
    streams = (streams.JOBS, streams.METRICS, streams.CHECKPOINTS, streams.REGISTRY)

    def apply(self, view: View, event: Event) -> None:
        job_id = event.job_id
        if not job_id:
            return
        assert view.pipe is not None
        raw = view.hget("jobs", job_id)
        job: dict[str, Any] | None = json.loads(raw) if raw else None
        p = event.payload
        at = event.occurred_at.isoformat()
        if event.type == "job.queued":
            spec = p.get("spec", {})
            job = {"id": job_id, "name": spec.get("name") or p["dataset"]["name"], "state": "queued",
                   "priority": p.get("priority", "default"), "step": 0, "max_steps": spec.get("max_steps"),
                   "loss": None, "dataset": p["dataset"], "spec": spec, "created_at": at, "updated_at": at,
                   "error": None, "reason": None, "checkpoints": [], "versions": [], "attempt": 0,
                   "source": p.get("source")}
            view.pipe.zadd(view.key("index"), {job_id: event.occurred_at.timestamp()})
        if job is None:
            return
        state = _STATE_BY_EVENT.get(event.type)
        if state is not None and event.type != "job.queued":
            job["state"] = state.value
        if event.type == "job.started":
            job["attempt"] = p.get("attempt", 1)
            job["step"] = max(job["step"], p.get("resumed_from_step", 0))
            job["error"] = job["reason"] = None
        elif event.type in ("job.paused", "job.stopped"):
            job["reason"] = p.get("reason")
            job["step"] = p.get("step", job["step"])
        elif event.type == "job.preempted":
            job["reason"] = f"preempted by {p.get('by_job_id')}"
        elif event.type == "job.completed":
            job["step"] = p.get("step", job["step"])
            if p.get("final_loss") is not None:
                job["loss"] = p["final_loss"]
        elif event.type == "job.failed":
            job["error"] = p.get("error")
        elif event.type == "job.cancelled":
            job["reason"] = p.get("reason")
        elif event.type == "job.reprioritised":
            job["priority"] = p.get("priority", job["priority"])
        elif event.type == "metrics.logged":
            job["step"] = p["step"]
            if p.get("loss") is not None:
                job["loss"] = p["loss"]
            if p.get("max_steps"):
                job["max_steps"] = p["max_steps"]
            view.pipe.rpush(view.key("metrics", job_id), json.dumps(p, sort_keys=True))
        elif event.type == "checkpoint.saved":
            if p["step"] not in job["checkpoints"]:
                job["checkpoints"].append(p["step"])
        elif event.type == "version.stored":
            if p.get("kind") not in ("adapter", "full"):
                return
            if p["version_id"] not in job["versions"]:
                job["versions"].append(p["version_id"])
        elif state is None:
            return
        job["updated_at"] = at
        view.pipe.hset(view.key("jobs"), job_id, json.dumps(job, sort_keys=True))


def _view(r: redis.Redis) -> View:
    return View(r, NAME)


def get_job(r: redis.Redis, job_id: str) -> dict[str, Any] | None:
    raw = _view(r).hget("jobs", job_id)
    return json.loads(raw) if raw else None


def list_jobs(r: redis.Redis) -> list[dict[str, Any]]:
    """Every job, newest first."""
    view = _view(r)
    ids = [i.decode() for i in r.zrevrange(view.key("index"), 0, -1)]
    if not ids:
        return []
    raws = r.hmget(view.key("jobs"), ids)
    return [json.loads(x) for x in raws if x]


def job_metrics(r: redis.Redis, job_id: str, since_step: int = 0) -> list[dict[str, Any]]:
    """Logged metrics of a job with ``step >= since_step``, oldest first."""
    rows = [json.loads(x) for x in r.lrange(_view(r).key("metrics", job_id), 0, -1)]
    return [m for m in rows if m.get("step", 0) >= since_step]
