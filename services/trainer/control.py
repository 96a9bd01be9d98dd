"""Training control: pause, resume, stop, skip, cancel, reprioritise, and the queue order.

A request for a running job is written to the control hash (``shared.streams.CONTROL_KEY``) that the training
callback reads at every optimizer step, so it takes effect within one step; queued or paused jobs change
state here directly. Every function raises ``JobNotFound`` or ``InvalidTransition`` with a clear message.
"""

from __future__ import annotations

from typing import Any

import redis

from services.trainer import jobstore, queueing
from services.trainer.emit import emit
from services.trainer.exceptions import InvalidTransition
from services.trainer.states import ALLOWED, TERMINAL, Action, JobState, Priority
from shared import streams
from shared.events import (
    JobCancelled,
    JobControlRequested,
    JobPaused,
    JobReprioritised,
    JobResumed,
    JobStopped,
)
from shared.settings import TrainerSettings


def _request(r: redis.Redis, job_id: str, action: Action, source: str) -> str:
    r.hset(streams.CONTROL_KEY, job_id, action.value)
    emit(r, "job.control_requested", JobControlRequested(action=action.value, source=source), job_id)
    return "requested"


def _state(r: redis.Redis, job_id: str) -> tuple[dict[str, Any], JobState]:
    rec = jobstore.load(r, job_id)
    return rec, JobState(rec["state"])


def _refuse(action: Action, job_id: str, state: JobState) -> InvalidTransition:
    ok = ", ".join(sorted(s.value for s in ALLOWED.get(action, frozenset())))
    return InvalidTransition(f"cannot {action.value} job {job_id}: it is {state.value} (allowed when: {ok})")


def running_job(r: redis.Redis) -> str | None:
    """The job a worker is training now (the oldest if several workers run), or None."""
    running = sorted(jobstore.running_jobs(r))
    return running[0] if running else None


def pause(r: redis.Redis, job_id: str, *, source: str = "api") -> str:
    """Running: checkpoint at the next step and mark paused. Queued: take it off the queue, paused."""
    _rec, state = _state(r, job_id)
    if state == JobState.running:
        return _request(r, job_id, Action.pause, source)
    if state == JobState.queued:
        queueing.dequeue(r, job_id)
        before = jobstore.transition(r, job_id, [JobState.queued], JobState.paused, action="pause")
        emit(r, "job.paused", JobPaused(reason="paused while queued", step=before.get("step", 0)), job_id)
        return "paused"
    raise _refuse(Action.pause, job_id, state)


def resume(settings: TrainerSettings | None, r: redis.Redis, job_id: str, *, front: bool = False) -> str:
    """Requeue a paused, stopped, preempted or failed job; it continues from its last checkpoint."""
    rec, state = _state(r, job_id)
    if state == JobState.running and job_id in jobstore.orphaned(r):
        state = JobState.failed  # its worker died (kill -9): resume from the last checkpoint
        jobstore.update(r, job_id, state=state.value)
        r.hdel(jobstore.RUNNING_KEY, job_id)
    if state not in ALLOWED[Action.resume]:
        raise _refuse(Action.resume, job_id, state)
    jobstore.transition(r, job_id, ALLOWED[Action.resume], JobState.queued, action="resume")
    r.hdel(streams.CONTROL_KEY, job_id)
    emit(r, "job.resumed", JobResumed(from_step=int(rec.get("step", 0))), job_id)
    queueing.enqueue(r, job_id, rec["priority"], at_front=front)
    return "queued"


def stop(r: redis.Redis, job_id: str, *, source: str = "api") -> str:
    """Running: checkpoint, version and mark stopped (resumable). Waiting: mark stopped now."""
    _rec, state = _state(r, job_id)
    if state == JobState.running:
        return _request(r, job_id, Action.stop, source)
    if state in ALLOWED[Action.stop]:
        queueing.dequeue(r, job_id)
        before = jobstore.transition(r, job_id, ALLOWED[Action.stop] - {JobState.running}, JobState.stopped,
                                     action="stop")
        emit(r, "job.stopped", JobStopped(step=before.get("step", 0)), job_id)
        return "stopped"
    raise _refuse(Action.stop, job_id, state)


def skip(r: redis.Redis, job_id: str, *, source: str = "api") -> str:
    """End the running job now (checkpoints already saved are kept) so the next one starts."""
    _rec, state = _state(r, job_id)
    if state != JobState.running:
        raise _refuse(Action.skip, job_id, state)
    return _request(r, job_id, Action.skip, source)


def cancel(r: redis.Redis, job_id: str, *, reason: str = "requested") -> str:
    """Drop a job that is not running (queued, paused, preempted, stopped or failed)."""
    _rec, state = _state(r, job_id)
    if state not in ALLOWED[Action.cancel]:
        raise _refuse(Action.cancel, job_id, state)
    queueing.dequeue(r, job_id)
    jobstore.transition(r, job_id, ALLOWED[Action.cancel], JobState.cancelled, action="cancel")
    emit(r, "job.cancelled", JobCancelled(reason=reason), job_id)
    return "cancelled"


def reprioritise(r: redis.Redis, job_id: str, priority: str | Priority, front: bool = False) -> str:
    """Change a job's priority; a queued job moves to that queue (to its front if ``front``)."""
    try:
        prio = Priority(priority)
    except ValueError:
        raise InvalidTransition(f"unknown priority {priority!r} (use high, default or low)") from None
    rec, state = _state(r, job_id)
    if state in TERMINAL:
        raise InvalidTransition(f"cannot reprioritise job {job_id}: it is {state.value}")
    if state == JobState.queued:
        if queueing.dequeue(r, job_id) or rec.get("rq_id"):
            queueing.enqueue(r, job_id, prio, at_front=front)
    else:
        jobstore.update(r, job_id, priority=prio.value)
    emit(r, "job.reprioritised", JobReprioritised(priority=prio.value, front=front), job_id)
    return prio.value


def queue_order(r: redis.Redis) -> list[dict[str, Any]]:
    """Waiting jobs in the order the worker takes them (high, default, low; FIFO within a queue)."""
    out = []
    for position, (prio, job_id) in enumerate(queueing.order(r), start=1):
        try:
            rec = jobstore.load(r, job_id)
        except Exception:  # noqa: BLE001 - an RQ job without a record (foreign) is listed bare
            rec = {"name": "", "state": "unknown", "step": 0}
        out.append({"position": position, "priority": prio, "job_id": job_id, "name": rec.get("name", ""),
                    "state": rec.get("state"), "step": rec.get("step", 0)})
    return out
