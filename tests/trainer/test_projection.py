"""The jobs projection as a table of one function per event type, on a real redis-server."""

from __future__ import annotations

import redis

from services.trainer.projection import CHANGES, JobsProjection, get_job, job_metrics, list_jobs
from shared import events as ev
from shared.bus import publish
from shared.events import Event
from shared.projection import ProjectionRunner

DATASET = ev.DatasetRef(name="d", path="/x/d.jsonl", sha256="0" * 64, format="chat", n_examples=3)


def _run(r: redis.Redis, *events: Event) -> dict:
    for e in events:
        publish(r, e)
    ProjectionRunner(r, JobsProjection()).catch_up()
    return get_job(r, "j1")


def _e(type_: str, payload: ev.Payload) -> Event:
    return Event.create(type_, payload, job_id="j1")


def test_each_event_type_changes_the_job(r: redis.Redis) -> None:
    job = _run(r, _e("job.queued", ev.JobQueued(spec={"max_steps": 9}, dataset=DATASET, priority="low")),
               _e("job.started", ev.JobStarted(attempt=2, resumed_from_step=4)),
               _e("metrics.logged", ev.MetricsLogged(step=5, loss=0.7, max_steps=10)),
               _e("checkpoint.saved", ev.CheckpointSaved(step=5, checkpoint_dir="/c", files=[], base_model="b",
                                                         dataset_sha256="0" * 64, spec={}, tracked_key="t")),
               _e("version.stored", ev.VersionStored(version_id="v1", kind="adapter", manifest_key="m", files=[])),
               _e("version.stored", ev.VersionStored(version_id="ds", kind="dataset", manifest_key="m", files=[])),
               _e("job.reprioritised", ev.JobReprioritised(priority="high")),
               _e("job.paused", ev.JobPaused(reason="user", step=6)))
    assert (job["name"], job["state"], job["priority"], job["attempt"]) == ("d", "paused", "high", 2)
    assert (job["step"], job["loss"], job["max_steps"], job["reason"]) == (6, 0.7, 10, "user")
    assert (job["checkpoints"], job["versions"]) == ([5], ["v1"])  # a dataset version is not the job's
    assert [m["step"] for m in job_metrics(r, "j1")] == [5]
    job = _run(r, _e("job.preempted", ev.JobPreempted(by_job_id="j2", step=6)))
    assert (job["state"], job["reason"]) == ("preempted", "preempted by j2")
    job = _run(r, _e("job.resumed", ev.JobResumed()), _e("job.completed", ev.JobCompleted(step=10, final_loss=0.1)))
    assert (job["state"], job["step"], job["loss"]) == ("completed", 10, 0.1)
    job = _run(r, _e("job.failed", ev.JobFailed(error="boom")))
    assert (job["state"], job["error"]) == ("failed", "boom")
    assert [j["id"] for j in list_jobs(r)] == ["j1"]


def test_events_of_unknown_jobs_and_other_types_change_nothing(r: redis.Redis) -> None:
    assert _run(r, _e("job.started", ev.JobStarted()), _e("job.cancelled", ev.JobCancelled())) is None
    assert "job.control_requested" not in CHANGES and "dataset.rejected" not in CHANGES
    job = _run(r, _e("job.queued", ev.JobQueued(spec={}, dataset=DATASET)),
               _e("job.control_requested", ev.JobControlRequested(action="pause")))
    assert (job["state"], job["name"]) == ("queued", "d")
    assert _run(r, _e("job.cancelled", ev.JobCancelled(reason="why")))["reason"] == "why"
