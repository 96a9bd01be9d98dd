"""The jobs projection: job state, priority, progress, checkpoints, versions and metrics history.

Read it with ``get_job``, ``list_jobs`` and ``job_metrics``; it is rebuilt from the JOBS, METRICS,
CHECKPOINTS and REGISTRY streams.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, cast

import redis

from services.trainer.states import JobState
from shared import events as ev
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

Job = dict[str, Any]


def _started(view: View, event: Event, p: ev.JobStarted, job: Job) -> bool:
    job["attempt"] = p.attempt
    job["step"] = max(job["step"], p.resumed_from_step)
    job["error"] = job["reason"] = None
    return True


def _paused_or_stopped(view: View, event: Event, p: ev.JobPaused | ev.JobStopped, job: Job) -> bool:
    job["reason"] = p.reason
    job["step"] = p.step
    return True


def _preempted(view: View, event: Event, p: ev.JobPreempted, job: Job) -> bool:
    job["reason"] = f"preempted by {p.by_job_id}"
    return True


def _completed(view: View, event: Event, p: ev.JobCompleted, job: Job) -> bool:
    job["step"] = p.step
    if p.final_loss is not None:
        job["loss"] = p.final_loss
    return True


def _failed(view: View, event: Event, p: ev.JobFailed, job: Job) -> bool:
    job["error"] = p.error
    return True


def _cancelled(view: View, event: Event, p: ev.JobCancelled, job: Job) -> bool:
    job["reason"] = p.reason
    return True


def _state_only(view: View, event: Event, p: ev.Payload, job: Job) -> bool:
    return True  # job.resumed, job.skipped: the state is all that changes


def _reprioritised(view: View, event: Event, p: ev.JobReprioritised, job: Job) -> bool:
    job["priority"] = p.priority
    return True


def _metrics_logged(view: View, event: Event, p: ev.MetricsLogged, job: Job) -> bool:
    job["step"] = p.step
    if p.loss is not None:
        job["loss"] = p.loss
    if p.max_steps:
        job["max_steps"] = p.max_steps
    assert view.pipe is not None
    view.pipe.rpush(view.key("metrics", event.job_id), json.dumps(event.payload, sort_keys=True))
    return True


def _checkpoint_saved(view: View, event: Event, p: ev.CheckpointSaved, job: Job) -> bool:
    if p.step not in job["checkpoints"]:
        job["checkpoints"].append(p.step)
    return True


def _version_stored(view: View, event: Event, p: ev.VersionStored, job: Job) -> bool:
    if p.kind not in ("adapter", "full"):
        return False
    if p.version_id not in job["versions"]:
        job["versions"].append(p.version_id)
    return True


# event type -> change of an existing job (False: nothing to save); job.queued creates the job instead.
CHANGES: dict[str, Callable[[View, Event, Any, Job], bool]] = {
    "job.started": _started, "job.paused": _paused_or_stopped, "job.stopped": _paused_or_stopped,
    "job.resumed": _state_only, "job.skipped": _state_only, "job.preempted": _preempted,
    "job.completed": _completed, "job.failed": _failed, "job.cancelled": _cancelled,
    "job.reprioritised": _reprioritised, "metrics.logged": _metrics_logged,
    "checkpoint.saved": _checkpoint_saved, "version.stored": _version_stored,
}


def _queued(view: View, event: Event, p: ev.JobQueued) -> Job:
    assert view.pipe is not None and event.job_id
    at = event.occurred_at.isoformat()
    view.pipe.zadd(view.key("index"), {event.job_id: event.occurred_at.timestamp()})
    return {"id": event.job_id, "name": p.spec.get("name") or p.dataset.name, "state": "queued",
            "priority": p.priority, "step": 0, "max_steps": p.spec.get("max_steps"), "loss": None,
            "dataset": p.dataset.model_dump(mode="json"), "spec": p.spec, "created_at": at, "updated_at": at,
            "error": None, "reason": None, "checkpoints": [], "versions": [], "attempt": 0, "source": p.source}


class JobsProjection:
    name = NAME
    streams = (streams.JOBS, streams.METRICS, streams.CHECKPOINTS, streams.REGISTRY)

    def apply(self, view: View, event: Event) -> None:
        job_id = event.job_id
        change = CHANGES.get(event.type)
        if not job_id or (change is None and event.type != "job.queued"):
            return
        assert view.pipe is not None
        if change is None:
            job = _queued(view, event, cast(ev.JobQueued, event.typed()))
        else:
            raw = view.hget("jobs", job_id)
            if not raw:
                return
            job = json.loads(raw)
            if not change(view, event, event.typed(), job):
                return
            state = _STATE_BY_EVENT.get(event.type)
            if state is not None:
                job["state"] = state.value
            job["updated_at"] = event.occurred_at.isoformat()
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
