"""Publishing the trainer's events (typed payloads from ``shared.events``)."""

from __future__ import annotations

import redis

from shared.bus import publish
from shared.events import Event, Payload


def emit(r: redis.Redis, type_: str, payload: Payload, job_id: str | None) -> Event:
    event = Event.create(type_, payload, job_id=job_id, correlation_id=job_id)
    publish(r, event)
    return event
