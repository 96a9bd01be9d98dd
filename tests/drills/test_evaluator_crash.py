"""A killed evaluator process resumes without gaps or duplicate snapshots (real processes, Redis, S3)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.evaluator import readmodel
from services.registry.client import RegistryClient
from shared import storage, streams
from shared.settings import CommonSettings
from shared.storage import s3_client
from tests.support.evaluator import events_of, publish_job, publish_version, put_tracked, store_version
from tests.support.lora import make_lora_adapter

ROOT = Path(__file__).resolve().parents[2]


def start(settings_kwargs: dict, log: Path) -> subprocess.Popen:
    env = {**os.environ, "TRAINYARD_DEV": "1", "TRAINYARD_EMBEDDINGS": "0", "TRAINYARD_BATCH_SIZE": "4",
           "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    for k in ("redis_url", "s3_endpoint", "s3_access_key", "s3_secret_key", "bucket", "state_dir"):
        env[f"TRAINYARD_{k.upper()}"] = str(settings_kwargs[k])
    return subprocess.Popen([sys.executable, "-m", "services.evaluator.main"], cwd=ROOT, env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)


def wait_for(cond, timeout: float, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None:
            raise AssertionError(f"evaluator exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


@pytest.mark.slow
def test_killed_evaluator_resumes_without_gaps_or_duplicates(settings_kwargs: dict, r, tiny_model: Path,
                                                              tmp_path: Path) -> None:
    registry = RegistryClient(s3_client(CommonSettings(**settings_kwargs)), settings_kwargs["bucket"])
    registry.ensure_bucket()
    base = str(tiny_model)
    put_tracked(registry, "job-k", n=24, heldout=4)
    publish_job(r, "job-k", base)
    for step in (10, 20, 30):
        vid, files = store_version(registry, make_lora_adapter(tiny_model, tmp_path / f"a{step}", seed=step),
                                   job_id="job-k", step=step, base_model=base)
        publish_version(r, vid, files, job_id="job-k", step=step, base_model=base)

    def captured_steps() -> list[int]:
        return [e.payload["step"] for e in events_of(r, streams.EVOLUTION, "snapshot.captured")]

    log = tmp_path / "evaluator.log"
    proc = start(settings_kwargs, log)
    try:
        wait_for(lambda: len(captured_steps()) >= 1, 180, proc, log)
        proc.send_signal(signal.SIGKILL)  # mid-way: the next snapshot is being computed
        proc.wait(10)
        killed_at = len(captured_steps())
        assert killed_at < 4, "the evaluator finished before it could be killed: the test proves nothing"
        proc = start(settings_kwargs, log)
        wait_for(lambda: len(captured_steps()) >= 4, 180, proc, log)
        wait_for(lambda: r.exists("ty:view:live:evolution:steps:job-k")
                 and len(readmodel.curve(r, "job-k")) == 4, 30, proc, log)
        time.sleep(1.0)  # anything duplicated would show up now
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert sorted(captured_steps()) == [0, 10, 20, 30]
    assert [s["step"] for s in readmodel.curve(r, "job-k")] == [0, 10, 20, 30]
    for step in (0, 10, 20, 30):
        assert len(registry.get_json(storage.snapshot_key("job-k", step))["examples"]) == 24
    assert not events_of(r, streams.EVOLUTION, "snapshot.failed")
    assert r.xpending(streams.REGISTRY, streams.GROUP_EVALUATOR)["pending"] == 0
