"""Queue and control semantics on real Redis/S3: queued-job operations in-process, running-job control,
control files, preemption with automatic resume and inbox pickup against a real worker subprocess."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis

from services.trainer import control, jobstore
from services.trainer.exceptions import InvalidTransition, JobNotFound
from services.trainer.submit import submit_job
from shared import streams
from shared.modeling import demo_dataset_path
from shared.storage import s3_client
from tests.support.trainer import events, make_settings, start_worker, stop_worker, tiny_spec, wait_for


def test_queue_order_reprioritise_cancel_pause(settings_kwargs: dict, tmp_path: Path, r: redis.Redis,
                                               tiny_model: Path) -> None:
    settings = make_settings(settings_kwargs, tmp_path)
    s3 = s3_client(settings)
    low = submit_job(settings, r, s3, demo_dataset_path(), spec=tiny_spec(tiny_model, priority="low"))
    d1 = submit_job(settings, r, s3, demo_dataset_path(), spec=tiny_spec(tiny_model))
    high = submit_job(settings, r, s3, demo_dataset_path(), spec=tiny_spec(tiny_model, priority="high"))
    d2 = submit_job(settings, r, s3, demo_dataset_path(), spec=tiny_spec(tiny_model))
    assert [q["job_id"] for q in control.queue_order(r)] == [high, d1, d2, low]
    control.reprioritise(r, d2, "default", front=True)
    control.reprioritise(r, low, "high")
    assert [(q["priority"], q["job_id"]) for q in control.queue_order(r)] == [
        ("high", high), ("high", low), ("default", d2), ("default", d1)]
    assert control.cancel(r, d1) == "cancelled"
    with pytest.raises(InvalidTransition, match="cancelled"):
        control.cancel(r, d1)
    assert control.pause(r, high) == "paused"
    assert [q["job_id"] for q in control.queue_order(r)] == [low, d2]
    with pytest.raises(InvalidTransition, match="it is paused"):
        control.skip(r, high)
    assert control.resume(settings, r, high) == "queued"
    assert [q["job_id"] for q in control.queue_order(r)] == [low, high, d2]
    assert control.stop(r, d2) == "stopped"
    with pytest.raises(JobNotFound):
        control.pause(r, "job-nope")
    with pytest.raises(InvalidTransition, match="unknown priority"):
        control.reprioritise(r, low, "urgent")
    types = [e.type for e in events(r, streams.JOBS, d1)]
    assert types == ["job.queued", "job.cancelled"]


@pytest.mark.slow
def test_running_job_control_preemption_and_inbox(settings_kwargs: dict, tmp_path: Path, r: redis.Redis,
                                                  tiny_model: Path) -> None:
    settings = make_settings(settings_kwargs, tmp_path)
    s3 = s3_client(settings)
    long = tiny_spec(tiny_model, max_steps=5000, checkpoint_every=2000, log_every=100, priority="low")
    job = submit_job(settings, r, s3, demo_dataset_path(), spec=long)
    proc = start_worker(settings, tmp_path / "worker.log")
    try:
        wait_for(r, streams.JOBS, lambda e: e.job_id == job and e.type == "job.started", proc=proc)
        # pause by control file: checkpoint within one step, job paused
        settings.control_dir.mkdir(parents=True, exist_ok=True)
        time.sleep(0.5)
        (settings.control_dir / "pause").write_text("")
        paused = wait_for(r, streams.JOBS, lambda e: e.job_id == job and e.type == "job.paused", proc=proc)
        assert not (settings.control_dir / "pause").exists()
        outcome = json.loads((settings.control_dir / "outcomes.log").read_text().splitlines()[-1])
        assert outcome == {**outcome, "action": "pause", "job_id": job, "ok": True}
        step = paused.payload["step"]
        assert step > 0 and Path(paused.payload["checkpoint_dir"]).name == f"checkpoint-{step}"
        assert jobstore.load(r, job)["state"] == "paused"
        # resume by API: continues from exactly that checkpoint
        control.resume(settings, r, job)
        wait_for(r, streams.JOBS, lambda e: e.job_id == job and e.type == "job.started"
                 and e.payload["resumed_from_step"] == step, proc=proc)
        # a high-priority job with preempt=True pauses it; it resumes automatically afterwards
        urgent = submit_job(settings, r, s3, demo_dataset_path(),
                            spec=tiny_spec(tiny_model, priority="high", preempt=True, max_steps=4))
        pre = wait_for(r, streams.JOBS, lambda e: e.job_id == job and e.type == "job.preempted", proc=proc)
        assert pre.payload["by_job_id"] == urgent
        wait_for(r, streams.JOBS, lambda e: e.job_id == urgent and e.type == "job.completed", proc=proc)
        again = wait_for(r, streams.JOBS, lambda e: e.job_id == job and e.type == "job.started"
                         and e.payload["attempt"] == 3, proc=proc)
        assert again.payload["resumed_from_step"] == pre.payload["step"]
        # skip by API: the job ends now and keeps its checkpoints
        control.skip(r, job)
        wait_for(r, streams.JOBS, lambda e: e.job_id == job and e.type == "job.skipped", proc=proc)
        assert (settings.checkpoints_dir / job / f"checkpoint-{step}" / "trainyard_job.json").is_file()
        with pytest.raises(InvalidTransition):
            control.resume(settings, r, job)
        # inbox: a .part file is ignored until renamed; a sidecar gives the spec; bad data is rejected
        inbox = settings.inbox_dir
        inbox.mkdir(parents=True, exist_ok=True)
        (inbox / "high__mydata.yaml").write_text(json.dumps(tiny_spec(tiny_model, max_steps=2)))
        part = inbox / "high__mydata.jsonl.part"
        part.write_bytes(demo_dataset_path().read_bytes())
        (inbox / "broken.jsonl").write_text('{"prompt": "a", "completion": 1}\nnot json\n')
        rejected = wait_for(r, streams.JOBS, lambda e: e.type == "dataset.rejected", proc=proc)
        assert rejected.payload["errors"][0].startswith("line 1: field 'completion' must be a string")
        assert (inbox / "rejected" / "broken.errors.txt").read_text().count("\nline ") == 2
        assert not any(e.type == "job.queued" and e.payload["source"] == "inbox" for e in events(r, streams.JOBS))
        part.rename(inbox / "high__mydata.jsonl")
        queued = wait_for(r, streams.JOBS, lambda e: e.type == "job.queued" and e.payload["source"] == "inbox",
                          proc=proc)
        assert queued.payload["priority"] == "high" and queued.payload["spec"]["max_steps"] == 2
        assert (inbox / "accepted" / "high__mydata.jsonl").read_bytes() == demo_dataset_path().read_bytes()
        wait_for(r, streams.JOBS, lambda e: e.job_id == queued.job_id and e.type == "job.completed", proc=proc)
    finally:
        stop_worker(proc)
