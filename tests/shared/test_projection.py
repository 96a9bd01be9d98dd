"""Projections: position stored atomically with the view, rebuild from the log equals live."""

from __future__ import annotations

import json

import redis

from shared import streams
from shared.bus import publish
from shared.events import Event, JobStarted, MetricsLogged
from shared.projection import ProjectionRunner, View, dump, rebuild


class StepsProjection:
    name = "steps"
    streams = (streams.JOBS, streams.METRICS)

    def apply(self, view: View, event: Event) -> None:
        if event.type == "job.started":
            view.pipe.hset(view.key("jobs"), event.job_id, json.dumps({"state": "running", "step": 0}))
        elif event.type == "metrics.logged":
            cur = json.loads(view.hget("jobs", event.job_id) or b'{"state": "unknown", "step": 0}')
            cur["step"] = max(cur["step"], event.payload["step"])
            view.pipe.hset(view.key("jobs"), event.job_id, json.dumps(cur))
            view.pipe.incr(view.key("metric_count"))


def _fill(r: redis.Redis, n: int) -> None:
    publish(r, Event.create("job.started", JobStarted(), job_id="a"))
    for i in range(1, n + 1):
        publish(r, Event.create("metrics.logged", MetricsLogged(step=i), job_id="a"))


def test_runner_applies_each_event_once_across_restarts(r: redis.Redis) -> None:
    _fill(r, 30)
    first = ProjectionRunner(r, StepsProjection(), batch=7)
    first.step()  # a partial pass, then the process "dies"
    again = ProjectionRunner(r, StepsProjection(), batch=7)
    again.catch_up()
    assert int(r.get(View(r, "steps").key("metric_count"))) == 30
    assert json.loads(r.hget(View(r, "steps").key("jobs"), "a")) == {"state": "running", "step": 30}


def test_rebuild_reproduces_live_and_detects_drift(r: redis.Redis) -> None:
    _fill(r, 12)
    ProjectionRunner(r, StepsProjection()).catch_up()
    [report] = rebuild(r, [StepsProjection()])
    assert report.equal and report.applied == 13 and report.keys == 2
    r.set(View(r, "steps").key("metric_count"), 999)  # corrupt the live view
    [report] = rebuild(r, [StepsProjection()])
    assert not report.equal and report.differing == ["metric_count"]
    rebuild(r, [StepsProjection()], apply=True)
    assert dump(r, "steps", "live")["metric_count"] == b"12"
    assert rebuild(r, [StepsProjection()])[0].equal
