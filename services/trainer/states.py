"""Job states and the transitions allowed between them (pure domain, no I/O)."""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    queued = "queued"
    running = "running"
    paused = "paused"
    stopped = "stopped"
    skipped = "skipped"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"
    preempted = "preempted"


class Priority(StrEnum):
    high = "high"
    default = "default"
    low = "low"

    @property
    def rank(self) -> int:
        return {"high": 2, "default": 1, "low": 0}[self.value]


class Action(StrEnum):
    pause = "pause"
    resume = "resume"
    stop = "stop"
    skip = "skip"
    cancel = "cancel"
    preempt = "preempt"
    requeue = "requeue"  # warm shutdown of the worker: checkpoint and put the job back in its queue


# States from which a job can be put back in the queue and continue from its last checkpoint.
RESUMABLE = frozenset({JobState.paused, JobState.stopped, JobState.preempted, JobState.failed})
# States a job never leaves on its own.
TERMINAL = frozenset({JobState.completed, JobState.cancelled, JobState.skipped})

# (action, state) pairs that are allowed; anything else is an InvalidTransition.
ALLOWED: dict[Action, frozenset[JobState]] = {
    Action.pause: frozenset({JobState.running, JobState.queued}),
    Action.stop: frozenset({JobState.running, JobState.queued, JobState.paused, JobState.preempted}),
    Action.skip: frozenset({JobState.running}),
    Action.cancel: frozenset({JobState.queued, JobState.paused, JobState.preempted, JobState.stopped,
                              JobState.failed}),
    Action.resume: RESUMABLE,
}


def allowed(action: Action, state: JobState) -> bool:
    return state in ALLOWED.get(action, frozenset())
