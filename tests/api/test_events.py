"""The live feed over a real uvicorn server: delivery, filtering, Last-Event-ID resume, one reader loop."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.api.main import create_app
from shared.bus import publish
from shared.events import Event, JobPaused, MetricsLogged
from shared.settings import ApiSettings
from tests.support.servers import RunningServer, serve_app


@pytest.fixture
def server(settings_kwargs: dict, tmp_path: Path) -> Iterator[RunningServer]:
    app = create_app(ApiSettings(**settings_kwargs, api_token="t", uploads_dir=tmp_path / "up"), targets=[])
    with serve_app(app) as running:
        yield running


def metric(job_id: str, step: int) -> Event:
    return Event.create("metrics.logged", MetricsLogged(step=step, loss=1.0 / step, max_steps=100), job_id=job_id)


def listen(url: str, out: queue.Queue, stop: threading.Event, headers: dict | None = None) -> threading.Thread:
    """Read an SSE stream in a thread, putting (id, event, data) tuples on ``out``."""

    def run() -> None:
        try:
            read()
        except httpx.HTTPError:
            if not stop.is_set():
                raise

    def read() -> None:
        with httpx.Client(timeout=httpx.Timeout(10, read=30)) as c, c.stream("GET", url, headers=headers) as res:
            out.put(("status", res.status_code, res.headers.get("content-type")))
            fields: dict[str, str] = {}
            for line in res.iter_lines():
                if stop.is_set():
                    return
                if not line:
                    if "data" in fields:
                        out.put((fields.get("id"), fields.get("event"), json.loads(fields["data"])))
                    fields = {}
                elif not line.startswith(":"):
                    k, _, v = line.partition(":")
                    fields[k] = v.lstrip()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def take(out: queue.Queue, n: int, timeout: float = 10) -> list[tuple]:
    return [out.get(timeout=timeout) for _ in range(n)]


def test_live_delivery_filter_and_resume(server: RunningServer, r) -> None:
    stop = threading.Event()
    everything: queue.Queue = queue.Queue()
    only_a: queue.Queue = queue.Queue()
    listen(f"{server.url}/api/events/stream", everything, stop)
    listen(f"{server.url}/api/events/stream?job_id=job-a&types=metrics.*", only_a, stop)
    assert take(everything, 1)[0] == ("status", 200, "text/event-stream; charset=utf-8")
    assert take(only_a, 1)[0][1] == 200
    import time

    time.sleep(0.3)  # both subscribed
    ids = [publish(r, metric("job-a", 1)), publish(r, metric("job-b", 1)),
           publish(r, Event.create("job.paused", JobPaused(reason="user", step=1), job_id="job-a")),
           publish(r, metric("job-a", 2))]
    got = take(everything, 4)
    # the SSE id is the stream entry id (ids of different streams may coincide: compare with the stream)
    kinds = ["metrics.logged", "metrics.logged", "job.paused", "metrics.logged"]
    assert sorted((g[0], g[1]) for g in got) == sorted(zip(ids, kinds, strict=True))
    metrics = [g for g in got if g[2]["stream"] == "ty:stream:metrics"]
    assert [g[0] for g in metrics] == [ids[0], ids[1], ids[3]]  # each stream's order is kept
    assert [g[2]["payload"]["step"] for g in metrics] == [1, 1, 2]
    filtered = take(only_a, 2)
    assert [(g[2]["job_id"], g[2]["payload"]["step"]) for g in filtered] == [("job-a", 1), ("job-a", 2)]
    assert only_a.empty()

    # a client that saw only the first event resumes with Last-Event-ID and gets the other three; sequence
    # numbers are per stream, so the events of the first one's millisecond come again (at least once)
    resumed: queue.Queue = queue.Queue()
    listen(f"{server.url}/api/events/stream", resumed, stop, headers={"Last-Event-ID": ids[0]})
    take(resumed, 1)
    first_ms = ids[0].split("-")[0]
    expected = [i for i in ids if i.split("-")[0] == first_ms] + [i for i in ids[1:] if i.split("-")[0] != first_ms]
    replayed = [g[0] for g in take(resumed, len(expected))]
    assert sorted(replayed) == sorted(expected)
    time.sleep(0.3)
    later = publish(r, metric("job-a", 3))
    assert take(resumed, 1)[0][0] == later
    assert resumed.empty()
    stop.set()


def test_one_reader_loop_for_many_subscribers(server: RunningServer, r) -> None:
    stop = threading.Event()
    outs = [queue.Queue() for _ in range(5)]
    for q in outs:
        listen(f"{server.url}/api/events/stream", q, stop)
        take(q, 1)
    import time

    time.sleep(0.3)
    feeds = [t for t in threading.enumerate() if t.name == "api-feed"]
    assert len(feeds) == 1
    eid = publish(r, metric("job-x", 7))
    for q in outs:
        assert take(q, 1)[0][0] == eid
    stop.set()


def test_bad_last_event_id_is_422(server: RunningServer) -> None:
    res = httpx.get(f"{server.url}/api/events/stream", headers={"Last-Event-ID": "<script>"}, timeout=5)
    assert res.status_code == 422 and "Last-Event-ID" in res.json()["detail"]


def test_recent_events_endpoint(server: RunningServer, r) -> None:
    first = publish(r, metric("job-a", 1))
    publish(r, metric("job-b", 1))
    res = httpx.get(f"{server.url}/api/events", params={"job_id": "job-a"}, timeout=5).json()
    assert res["count"] == 1 and res["data"][0]["entry_id"] == first
    res = httpx.get(f"{server.url}/api/events", params={"after": first}, timeout=5).json()
    assert [e["job_id"] for e in res["data"]] == ["job-b"]
