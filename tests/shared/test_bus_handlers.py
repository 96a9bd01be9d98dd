"""Typed handlers: ``shared.bus.receives`` hands a handler its event's parsed payload model."""

from __future__ import annotations

import pytest

from shared.bus import receives
from shared.events import Event, JobFailed, MetricsLogged


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, MetricsLogged]] = []

    @receives(MetricsLogged)
    def on_metrics(self, event: Event, p: MetricsLogged) -> None:
        self.seen.append((event.id, p))


def test_handler_gets_the_parsed_payload() -> None:
    rec = Recorder()
    event = Event.create("metrics.logged", MetricsLogged(step=3, loss=0.25), job_id="j")
    rec.on_metrics(event)
    [(eid, payload)] = rec.seen
    assert eid == event.id and isinstance(payload, MetricsLogged) and (payload.step, payload.loss) == (3, 0.25)


def test_handler_refuses_an_event_of_another_type() -> None:
    @receives(MetricsLogged)
    def on_metrics(event: Event, p: MetricsLogged) -> None:
        raise AssertionError("not reached")

    with pytest.raises(TypeError, match="handles MetricsLogged, not job.failed"):
        on_metrics(Event.create("job.failed", JobFailed(error="x")))
