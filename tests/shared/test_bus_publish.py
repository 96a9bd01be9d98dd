"""``shared.bus.publish``, the one way to publish: plain, with a marker (one MULTI/EXEC), and once per key."""

from __future__ import annotations

import redis

from shared import streams
from shared.bus import Marker, publish, read_all
from shared.events import Event, MetricsLogged


def _metric(step: int) -> Event:
    return Event.create("metrics.logged", MetricsLogged(step=step, loss=0.5), job_id="j")


def test_marker_is_written_with_the_event(r: redis.Redis) -> None:
    event = _metric(1)
    entry_id = publish(r, event, marker=Marker("ty:test:marks", "j:1"))
    assert [(eid, e.id) for eid, e in read_all(r, streams.METRICS)] == [(entry_id, event.id)]
    assert r.hget("ty:test:marks", "j:1") == event.id.encode()
    publish(r, _metric(2), marker=Marker("ty:test:marks", "j:2", "v-2"))
    assert r.hget("ty:test:marks", "j:2") == b"v-2"


def test_once_key_appends_a_retried_event_once(r: redis.Redis) -> None:
    event = _metric(4)
    first = publish(r, event, once_key="ty:test:once:" + event.id, once_ttl_s=60)
    again = publish(r, event, once_key="ty:test:once:" + event.id, once_ttl_s=60)
    assert first == again
    assert [e.id for _, e in read_all(r, streams.METRICS)] == [event.id]
    assert 0 < r.ttl("ty:test:once:" + event.id) <= 60
