"""The stream bus on a real redis-server: redelivery, reclaim, dead-lettering, idempotency."""

from __future__ import annotations

import json

import redis

from shared import streams
from shared.bus import Consumer, ConsumerConfig, publish, read_all
from shared.events import Event, MetricsLogged


def _metric(step: int) -> Event:
    return Event.create("metrics.logged", MetricsLogged(step=step, loss=1.0 / (step + 1)), job_id="j")


def _consumer(r: redis.Redis, name: str, seen: list, fail_on: set[int] | None = None, **kw) -> Consumer:
    cfg = ConsumerConfig(group="g", consumer=name, streams=(streams.METRICS,), block_ms=50, retry_delay_s=0, **kw)

    def handle(e: Event) -> None:
        if fail_on and e.payload["step"] in fail_on:
            raise RuntimeError(f"boom on {e.payload['step']}")
        seen.append(e.payload["step"])

    return Consumer(r, cfg, {"metrics.logged": handle})


def test_publish_and_consume_in_order(r: redis.Redis) -> None:
    for i in range(20):
        publish(r, _metric(i))
    seen: list[int] = []
    c = _consumer(r, "c1", seen)
    c.ensure_groups()
    while c.run_once(block_ms=50):
        pass
    assert seen == list(range(20))
    assert r.xpending(streams.METRICS, "g")["pending"] == 0


def test_dead_consumer_entries_are_reclaimed_once(r: redis.Redis) -> None:
    for i in range(10):
        publish(r, _metric(i))
    dead_seen: list[int] = []
    dead = _consumer(r, "dead", dead_seen)
    dead.ensure_groups()
    # The dead consumer reads 10 entries and crashes before handling or acking any of them.
    r.xreadgroup("g", "dead", {streams.METRICS: ">"}, count=10)
    assert r.xpending(streams.METRICS, "g")["pending"] == 10
    seen: list[int] = []
    alive = _consumer(r, "alive", seen, claim_idle_ms=1)
    alive.ensure_groups()
    import time

    time.sleep(0.01)
    for _ in range(5):
        alive.run_once(block_ms=10)
    assert sorted(seen) == list(range(10))  # nothing lost, nothing twice
    assert r.xpending(streams.METRICS, "g")["pending"] == 0


def test_own_pending_drained_on_restart(r: redis.Redis) -> None:
    for i in range(5):
        publish(r, _metric(i))
    r.xgroup_create(streams.METRICS, "g", id="0", mkstream=True)
    r.xreadgroup("g", "worker-1", {streams.METRICS: ">"}, count=5)  # read, then "crashed"
    seen: list[int] = []
    again = _consumer(r, "worker-1", seen)
    again.ensure_groups()  # BUSYGROUP tolerated
    again.drain_pending()
    assert seen == list(range(5))


def test_failing_entry_retried_then_dead_lettered(r: redis.Redis) -> None:
    for i in range(3):
        publish(r, _metric(i))
    seen: list[int] = []
    c = _consumer(r, "c", seen, fail_on={1}, max_deliveries=3)
    c.ensure_groups()
    for _ in range(10):
        c.run_once(block_ms=10)
    assert seen == [0, 2]
    dead = r.xrange(streams.DEAD_LETTER)
    assert len(dead) == 1
    payload = json.loads(dead[0][1][b"event"])["payload"]
    assert payload["error"] == "RuntimeError: boom on 1"
    assert payload["group"] == "g" and payload["deliveries"] > 3
    assert r.xpending(streams.METRICS, "g")["pending"] == 0


def test_unknown_type_goes_to_dead_letter_without_crashing(r: redis.Redis) -> None:
    r.xadd(streams.METRICS, {"type": "metrics.exploded", "event": json.dumps({"type": "metrics.exploded"})})
    r.xadd(streams.METRICS, {"event": "{garbage"})
    publish(r, _metric(7))
    seen: list[int] = []
    c = _consumer(r, "c", seen)
    c.ensure_groups()
    c.run_once(block_ms=10)
    assert seen == [7]
    reasons = [json.loads(f[b"event"])["payload"]["error"] for _, f in r.xrange(streams.DEAD_LETTER)]
    assert any("unknown event type 'metrics.exploded'" in x for x in reasons)
    assert any("not JSON" in x for x in reasons)


def test_redelivered_event_is_not_handled_twice(r: redis.Redis) -> None:
    e = _metric(1)
    publish(r, e)
    publish(r, e)  # the same event id published twice (a producer retry)
    seen: list[int] = []
    c = _consumer(r, "c", seen)
    c.ensure_groups()
    c.run_once(block_ms=10)
    c.run_once(block_ms=10)
    assert seen == [1]


def test_read_all_replays_the_log(r: redis.Redis) -> None:
    for i in range(2500):
        publish(r, _metric(i))
    steps = [e.payload["step"] for _, e in read_all(r, streams.METRICS)]
    assert steps == list(range(2500))
