"""Publishing the trainer's events (typed payloads from ``shared.events``).

Retried while Redis is down and guarded against duplicates (``services.trainer.resilient.publish_once``):
an event is appended exactly once, in the order the trainer emits it.
"""

from __future__ import annotations

import redis

from services.trainer.resilient import publish_once
from shared.events import Event, Payload


def emit(r: redis.Redis, type_: str, payload: Payload, job_id: str | None) -> Event:
    event = Event.create(type_, payload, job_id=job_id, correlation_id=job_id)
    publish_once(r, event)
    return event
