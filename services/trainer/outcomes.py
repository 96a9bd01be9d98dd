"""Recording how an attempt ended: completed, paused, stopped, skipped, preempted, requeued or failed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis

from services.trainer import jobstore, queueing
from services.trainer.callback import Outcome
from services.trainer.emit import emit
from services.trainer.states import Action, JobState
from shared import streams
from shared.events import (
    JobCompleted,
    JobFailed,
    JobPaused,
    JobPreempted,
    JobResumed,
    JobSkipped,
    JobStopped,
)


def _end(r: redis.Redis, job_id: str, state: JobState, step: int, **fields: Any) -> None:
    jobstore.transition(r, job_id, [JobState.running], state, step=step, **fields)
    r.hdel(streams.CONTROL_KEY, job_id)


def finish(r: redis.Redis, job_id: str, outcome: Outcome, state: Any, seconds: float) -> str:
    step = int(state.global_step)
    ckpt = str(outcome.last_checkpoint.resolve()) if outcome.last_checkpoint else None
    action = outcome.action
    if action is None or (step >= state.max_steps and action != Action.pause):
        loss = outcome.last_metrics.get("loss")
        _end(r, job_id, JobState.completed, step)
        emit(r, "job.completed", JobCompleted(step=step, final_loss=loss, train_seconds=seconds), job_id)
        return JobState.completed.value
    if action == Action.pause:
        reason = outcome.reason or "requested"
        _end(r, job_id, JobState.paused, step, reason=reason)
        emit(r, "job.paused", JobPaused(reason=reason, step=step, checkpoint_dir=ckpt), job_id)
        return JobState.paused.value
    if action == Action.stop:
        _end(r, job_id, JobState.stopped, step)
        emit(r, "job.stopped", JobStopped(step=step), job_id)
        return JobState.stopped.value
    if action == Action.skip:
        _end(r, job_id, JobState.skipped, step)
        emit(r, "job.skipped", JobSkipped(step=step), job_id)
        return JobState.skipped.value
    if action == Action.preempt:
        # Back at the front of its own queue: the preempting job sits in a higher queue, so it runs first
        # and this one continues automatically right after it.
        _end(r, job_id, JobState.preempted, step)
        emit(r, "job.preempted", JobPreempted(by_job_id=outcome.by_job_id or "", step=step), job_id)
        return _requeue(r, job_id, step, JobState.preempted)
    # Action.requeue: the worker is shutting down (first SIGTERM): checkpointed, back in the queue.
    _end(r, job_id, JobState.paused, step, reason="worker shutdown")
    emit(r, "job.paused", JobPaused(reason="worker shutdown: requeued", step=step, checkpoint_dir=ckpt), job_id)
    return _requeue(r, job_id, step, JobState.paused)


def _requeue(r: redis.Redis, job_id: str, step: int, current: JobState) -> str:
    rec = jobstore.transition(r, job_id, [current], JobState.queued)
    emit(r, "job.resumed", JobResumed(from_step=step), job_id)
    queueing.enqueue(r, job_id, rec["priority"], at_front=True)
    return JobState.queued.value


def pause_for(r: redis.Redis, job_id: str, reason: str, step: int, last: Path | None) -> str:
    _end(r, job_id, JobState.paused, step, reason=reason)
    emit(r, "job.paused", JobPaused(reason=reason, step=step, checkpoint_dir=str(last) if last else None), job_id)
    return JobState.paused.value


def fail(r: redis.Redis, job_id: str, error: str, step: int) -> str:
    _end(r, job_id, JobState.failed, step, error=error)
    emit(r, "job.failed", JobFailed(error=error, step=step), job_id)
    return JobState.failed.value
