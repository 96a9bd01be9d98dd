"""A job survives the loss of its worker: two trainer workers (separate processes, separate checkpoint
directories) share one queue; worker A is killed with SIGKILL mid-job and its checkpoint directory deleted;
worker B resumes the job from the registry's newest version (optimizer, scheduler, RNG, data position) and
its losses equal an uninterrupted run's. Where no version can be fetched, the job pauses with a reason."""

from __future__ import annotations

import shutil
import signal
from collections import Counter
from pathlib import Path

import pytest
import redis

from services.registry.context import Registry
from services.registry.projection import list_versions
from services.trainer import jobstore
from services.trainer.submit import submit_job
from shared import streams
from shared.modeling import demo_dataset_path
from shared.settings import RegistrySettings
from shared.storage import s3_client
from tests.support.registry import dropped_after, running
from tests.support.trainer import events, make_settings, start_worker, stop_worker, tiny_spec, wait_for

pytestmark = pytest.mark.slow
SPEC = {"max_steps": 20, "checkpoint_every": 10, "batch_size": 8, "max_seq_len": 128}


def _losses(r: redis.Redis, job_id: str) -> dict[int, float]:
    return {e.payload["step"]: e.payload["loss"] for e in events(r, streams.METRICS, job_id)}


def _kill(proc) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def test_worker_b_resumes_from_the_registry_after_worker_a_is_lost(
        settings_kwargs: dict, tmp_path: Path, r: redis.Redis, bucket: str, tiny_model: Path) -> None:
    a = make_settings(settings_kwargs, tmp_path / "a", worker_name="box-a")
    b = make_settings(settings_kwargs, tmp_path / "b", worker_name="box-b")
    s3 = s3_client(a)
    spec = tiny_spec(tiny_model, **SPEC)
    reg_settings = RegistrySettings(**settings_kwargs, replica_bucket=f"{bucket}-replica")
    with dropped_after(Registry.open(reg_settings, r)) as reg, running(reg):
        proc_a = start_worker(a, tmp_path / "a.log")
        proc_b = None
        try:
            ref = submit_job(a, r, s3, demo_dataset_path(), spec=spec)
            wait_for(r, streams.JOBS, lambda e: e.job_id == ref and e.type == "job.completed", timeout=120,
                     proc=proc_a)
            job = submit_job(a, r, s3, demo_dataset_path(), spec=spec)
            wait_for(r, streams.REGISTRY, lambda e: e.type == "version.stored" and e.job_id == job, timeout=120,
                     proc=proc_a)
            proc_b = start_worker(b, tmp_path / "b.log")  # a second box on the same queue
            _kill(proc_a)
            assert not any(e.type == "job.completed" for e in events(r, streams.JOBS, job)), "killed too late"
            shutil.rmtree(a.checkpoints_dir)  # box A and its disk are gone
            wait_for(r, streams.JOBS, lambda e: e.job_id == job and e.type == "job.completed", timeout=180,
                     proc=proc_b)
            wait_for(r, streams.REGISTRY, lambda e: e.type == "version.stored" and e.job_id == job
                     and e.payload.get("step") == 20, timeout=60)
        finally:
            stop_worker(proc_a)
            if proc_b is not None:
                stop_worker(proc_b)
    starts = [e for e in events(r, streams.JOBS, job) if e.type == "job.started"]
    assert [(s.payload["resumed_from_step"], s.payload["worker"]) for s in starts][-1] == (10, "box-b")
    assert starts[0].payload["resumed_from_step"] == 0 and starts[0].payload["worker"] == "box-a"
    ref_losses, losses = _losses(r, ref), _losses(r, job)
    assert sorted(ref_losses) == list(range(1, 21)) and set(range(11, 21)) <= set(losses)
    for step in range(1, 21):
        assert losses[step] == pytest.approx(ref_losses[step], abs=1e-5), step
    assert (b.checkpoints_dir / job / "checkpoint-10" / "optimizer.pt").is_file()  # fetched, then continued
    saved = Counter(e.payload["step"] for e in events(r, streams.CHECKPOINTS, job))
    assert saved == {10: 1, 20: 1}  # the fetched checkpoint was not saved (nor versioned) again
    versions = Counter(v["step"] for v in list_versions(r, kind="adapter", job_id=job))
    assert versions == {10: 1, 20: 1}


def test_a_checkpoint_that_cannot_be_fetched_pauses_the_job_with_a_reason(
        settings_kwargs: dict, tmp_path: Path, r: redis.Redis, tiny_model: Path) -> None:
    """No registry runs: worker A's checkpoint never becomes a version. Worker B must not start over."""
    a = make_settings(settings_kwargs, tmp_path / "a", worker_name="box-a")
    b = make_settings(settings_kwargs, tmp_path / "b", worker_name="box-b", recovery_wait_s=2.0)
    s3 = s3_client(a)
    proc_a = start_worker(a, tmp_path / "a.log")
    proc_b = None
    try:
        job = submit_job(a, r, s3, demo_dataset_path(), spec=tiny_spec(tiny_model, **{**SPEC, "max_steps": 400}))
        wait_for(r, streams.CHECKPOINTS, lambda e: e.job_id == job and e.payload["step"] == 10, timeout=120,
                 proc=proc_a)
        _kill(proc_a)
        shutil.rmtree(a.checkpoints_dir)
        proc_b = start_worker(b, tmp_path / "b.log")
        paused = wait_for(r, streams.JOBS, lambda e: e.job_id == job and e.type == "job.paused", timeout=120,
                          proc=proc_b)
    finally:
        stop_worker(proc_a)
        if proc_b is not None:
            stop_worker(proc_b)
    assert "checkpoint step 10 of" in paused.payload["reason"]
    assert "registry cannot give it" in paused.payload["reason"]
    assert jobstore.load(r, job)["state"] == "paused"
    starts = [e.payload["resumed_from_step"] for e in events(r, streams.JOBS, job) if e.type == "job.started"]
    assert starts == [0]  # B never started it over from step 0
