"""Stream names, consumer-group names and Redis key prefixes: the bus's address book."""

from __future__ import annotations

PREFIX = "ty"

JOBS = f"{PREFIX}:stream:jobs"  # job.*, dataset.rejected
METRICS = f"{PREFIX}:stream:metrics"  # metrics.logged
CHECKPOINTS = f"{PREFIX}:stream:checkpoints"  # checkpoint.saved
REGISTRY = f"{PREFIX}:stream:registry"  # version.*, alias.moved, dataset.stored, registry.*
EVOLUTION = f"{PREFIX}:stream:evolution"  # snapshot.*
DEPLOYMENTS = f"{PREFIX}:stream:deployments"  # deployment.*
DEAD_LETTER = f"{PREFIX}:stream:dead"  # event.dead_lettered

ALL = (JOBS, METRICS, CHECKPOINTS, REGISTRY, EVOLUTION, DEPLOYMENTS)

# Which stream an event type is written to.
_BY_PREFIX = {
    "job.": JOBS,
    "dataset.rejected": JOBS,
    "metrics.": METRICS,
    "checkpoint.": CHECKPOINTS,
    "version.": REGISTRY,
    "alias.": REGISTRY,
    "dataset.stored": REGISTRY,
    "registry.": REGISTRY,
    "snapshot.": EVOLUTION,
    "deployment.": DEPLOYMENTS,
    "event.dead_lettered": DEAD_LETTER,
}


def stream_for(event_type: str) -> str:
    best = ""
    for prefix in _BY_PREFIX:
        if event_type.startswith(prefix) and len(prefix) > len(best):
            best = prefix
    if not best:
        raise KeyError(f"no stream for event type {event_type!r}")
    return _BY_PREFIX[best]


# Consumer groups (one per reacting service).
GROUP_REGISTRY = "registry"
GROUP_EVALUATOR = "evaluator"
GROUP_DEPLOYER = "deployer"
GROUP_TRAINER = "trainer"

# Redis key helpers.
def key(*parts: str) -> str:
    return ":".join((PREFIX, *parts))


CONTROL_KEY = key("control")  # hash job_id -> requested action, read by the training callback each step
