"""Riding out a Redis restart (real redis-server of its own, restarted on the same port with its AOF):
patient calls wait and succeed, publishes land exactly once, the orphan reaper waits out a grace period."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from services.stack.servers import RedisServer
from services.trainer import jobstore, resilient
from services.trainer.states import JobState
from services.trainer.worker import OrphanReaper
from shared import streams
from shared.bus import read_all
from shared.events import Event, JobPaused


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


def restart_later(server: RedisServer, down_s: float) -> threading.Thread:
    """Stop the server now (SIGTERM: AOF flushed) and start it again on the same port after ``down_s``."""
    server.stop()

    def back() -> None:
        time.sleep(down_s)
        server.start()

    t = threading.Thread(target=back, daemon=True)
    t.start()
    return t


def test_patient_calls_wait_for_the_restart_and_publish_exactly_once(own_redis: RedisServer) -> None:
    r = resilient.patient_client(own_redis.url, patience_s=30)
    r.set("kept", "1")
    first = Event.create("job.paused", JobPaused(reason="x", step=1), job_id="job-a")
    resilient.publish_once(r, first)
    t0 = time.monotonic()
    restart = restart_later(own_redis, 1.5)
    second = Event.create("job.paused", JobPaused(reason="y", step=2), job_id="job-a")
    resilient.publish_once(r, second, patience_s=30)  # Redis is down: waits, then lands
    assert time.monotonic() - t0 >= 1.0
    restart.join()
    assert resilient.call(r.get, "kept", patience_s=5) == b"1"  # the AOF kept the data
    resilient.publish_once(r, second)  # a retry of the same event (reply lost) appends nothing
    got = [e.id for _, e in read_all(r, streams.stream_for("job.paused"))]
    assert got == [first.id, second.id]


def test_call_gives_up_after_its_patience(own_redis: RedisServer) -> None:
    r = redis.Redis.from_url(own_redis.url)
    own_redis.stop()
    t0 = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        resilient.call(r.get, "x", patience_s=1.0)
    assert 0.9 <= time.monotonic() - t0 < 10
    own_redis.start()


def test_reaper_waits_out_a_grace_and_spares_jobs_trained_here(r: redis.Redis) -> None:
    for job_id in ("job-here", "job-gone"):
        jobstore.create(r, job_id, spec={}, dataset={}, priority="default", name=job_id)
        jobstore.transition(r, job_id, [JobState.queued], JobState.running)
    reaper = OrphanReaper(r, grace_s=5.0, training_here=lambda: {"job-here"})
    assert reaper.reap_once(now=100.0) == []  # heartbeats just lapsed (a Redis restart, say): only suspects
    r.set(jobstore.heartbeat_key("job-gone"), 1, ex=5)  # its worker came back: no longer a suspect
    assert reaper.reap_once(now=106.0) == []
    r.delete(jobstore.heartbeat_key("job-gone"))
    assert reaper.reap_once(now=107.0) == []  # the grace starts over
    assert reaper.reap_once(now=112.5) == ["job-gone"]
    assert jobstore.load(r, "job-gone")["state"] == JobState.queued.value  # requeued to resume
    assert jobstore.load(r, "job-here")["state"] == JobState.running.value
