"""Bus throughput: events through XADD → consumer group → handler → ack, against a bare redis-py loop.

Run: .venv/bin/python -m bench.bench_bus [--events 20000] [--repeats 5]

Both sides run a producer thread (pipelined XADD, 100 per round trip) and a consumer thread (XREADGROUP
COUNT 100, handler, XACK) against the same real redis-server, end to end: the clock stops when the consumer
has acked the last event. The bare loop json-encodes and decodes a dict; ours builds, validates and parses the
typed envelope, checks idempotency and records processed ids.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import redis

from bench.common import record
from services.stack.servers import RedisServer
from shared import streams
from shared.bus import Consumer, ConsumerConfig, publish_many
from shared.events import Event, MetricsLogged


def _bare(r: redis.Redis, n: int) -> float:
    stream, group = f"bare:{uuid.uuid4().hex}", "g"
    r.xgroup_create(stream, group, id="0", mkstream=True)
    handled = 0

    def produce() -> None:
        for start in range(0, n, 100):
            pipe = r.pipeline(transaction=False)
            for i in range(start, min(start + 100, n)):
                body = {"id": uuid.uuid4().hex, "type": "metrics.logged", "payload": {"step": i, "loss": 0.5}}
                pipe.xadd(stream, {"type": "metrics.logged", "event": json.dumps(body)})
            pipe.execute()

    t0 = time.perf_counter()
    producer = threading.Thread(target=produce)
    producer.start()
    while handled < n:
        got = r.xreadgroup(group, "c", {stream: ">"}, count=100, block=1000)
        for _, entries in got or []:
            ids = []
            for eid, fields in entries:
                json.loads(fields[b"event"])
                ids.append(eid)
            r.xack(stream, group, *ids)
            handled += len(ids)
    elapsed = time.perf_counter() - t0
    producer.join()
    r.delete(stream)
    return n / elapsed


def _ours(r: redis.Redis, n: int) -> float:
    r.delete(streams.METRICS, streams.key("processed", "bench"))
    handled = [0]

    def handle(_e: Event) -> None:
        handled[0] += 1

    consumer = Consumer(r, ConsumerConfig(group="bench", consumer="c", streams=(streams.METRICS,), block_ms=1000),
                        {"metrics.logged": handle})
    consumer.ensure_groups()

    def produce() -> None:
        for start in range(0, n, 100):
            publish_many(r, [Event.create("metrics.logged", MetricsLogged(step=i, loss=0.5), job_id="bench")
                             for i in range(start, min(start + 100, n))])

    t0 = time.perf_counter()
    producer = threading.Thread(target=produce)
    producer.start()
    while handled[0] < n:
        consumer.run_once()
    elapsed = time.perf_counter() - t0
    producer.join()
    r.xgroup_destroy(streams.METRICS, "bench")
    r.delete(streams.METRICS, streams.key("processed", "bench"))
    return n / elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp), appendonly=True).start()
        try:
            r = redis.Redis.from_url(server.url)
            bare_runs, ours_runs = [], []
            for _ in range(args.repeats):  # interleaved so both see the same machine load
                bare_runs.append(_bare(r, args.events))
                ours_runs.append(_ours(r, args.events))
        finally:
            server.stop()
    bare, ours = statistics.median(bare_runs), statistics.median(ours_runs)
    ratio = ours / bare
    record(
        "bus_throughput", value=ours, unit="events/s", baseline=bare, ratio=ratio,
        target=">= 5000 events/s and >= 0.5x the bare loop", runs=ours_runs,
        baseline_name="bare redis-py XADD/XREADGROUP/XACK loop", met=ours >= 5000 and ratio >= 0.5,
        command=f"python -m bench.bench_bus --events {args.events} --repeats {args.repeats}",
        notes=f"bare loop runs (events/s): {[round(x) for x in bare_runs]}; redis-server with AOF everysec",
    )


if __name__ == "__main__":
    main()
