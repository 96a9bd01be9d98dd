"""Exact resume after kill -9: 20 steps uninterrupted == 10 steps, kill -9, 10 more (losses and weights)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import redis
import torch
from safetensors.torch import load_file

from services.trainer.submit import submit_job
from shared import streams
from shared.bus import read_all
from shared.modeling import demo_dataset_path
from shared.storage import s3_client
from tests.support.trainer import events, make_settings, start_worker, stop_worker, tiny_spec, wait_for

pytestmark = pytest.mark.slow


def _losses(r: redis.Redis, job_id: str) -> dict[int, float]:
    return {e.payload["step"]: e.payload["loss"] for e in events(r, streams.METRICS, job_id)}


def test_exact_resume_after_kill_9(settings_kwargs: dict, tmp_path: Path, r: redis.Redis, tiny_model: Path) -> None:
    settings = make_settings(settings_kwargs, tmp_path)
    s3 = s3_client(settings)
    spec = tiny_spec(tiny_model, max_steps=20, checkpoint_every=10, batch_size=8, max_seq_len=128)
    ref = submit_job(settings, r, s3, demo_dataset_path(), spec=spec)
    proc = start_worker(settings, tmp_path / "worker1.log")  # same process kind for both runs
    try:
        wait_for(r, streams.JOBS, lambda e: e.job_id == ref and e.type == "job.completed", proc=proc)
        ref_losses = _losses(r, ref)
        assert sorted(ref_losses) == list(range(1, 21))
        job = submit_job(settings, r, s3, demo_dataset_path(), spec=spec)
        wait_for(r, streams.CHECKPOINTS, lambda e: e.job_id == job and e.payload["step"] == 10, proc=proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        stop_worker(proc)
    assert not any(e.type == "job.completed" for e in events(r, streams.JOBS, job)), "killed too late"
    proc = start_worker(settings, tmp_path / "worker2.log")
    try:
        wait_for(r, streams.JOBS, lambda e: e.job_id == job and e.type == "job.completed", timeout=90, proc=proc)
    finally:
        stop_worker(proc)
    starts = [e for e in events(r, streams.JOBS, job) if e.type == "job.started"]
    assert [s.payload["resumed_from_step"] for s in starts] == [0, 10]
    # metrics of the second attempt (logged after its job.started) cover steps 11..20
    after = False
    resumed: dict[int, float] = {}
    for e in _all_events_ordered(r, job):
        if e.type == "job.started" and e.payload["resumed_from_step"] == 10:
            after = True
        elif after and e.type == "metrics.logged":
            resumed[e.payload["step"]] = e.payload["loss"]
    assert sorted(resumed) == list(range(11, 21))
    for step, loss in resumed.items():
        assert loss == pytest.approx(ref_losses[step], abs=1e-5), step
    final = {e.job_id: e.payload["checkpoint_dir"] for e in events(r, streams.CHECKPOINTS) if e.payload["final"]}
    a = load_file(Path(final[ref]) / "adapter_model.safetensors")
    b = load_file(Path(final[job]) / "adapter_model.safetensors")
    assert a.keys() == b.keys() and len(a) > 0
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=0)


def _all_events_ordered(r: redis.Redis, job_id: str) -> list:
    merged = []
    for stream in (streams.JOBS, streams.METRICS):
        for eid, e in read_all(r, stream):
            if e.job_id == job_id:
                ms, seq = eid.split("-")
                merged.append(((int(ms), int(seq)), e))
    return [e for _, e in sorted(merged, key=lambda x: x[0])]
