"""Train local, evaluate remote, on one machine: two embedded stacks with their own state dirs, ports and
processes. Box A (`--role training`): Redis, S3, API, registry, trainer, deployer. Box B (`--role inference`):
inference and the evaluator, connected to A only through A's Redis and S3 endpoints; A's deployer reaches B
over HTTP. The demo flow goes through A's REST API; box B's evaluator is killed mid-job: training goes on
and completes without it, and once it is back the snapshots resume with no gap and no duplicate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis

from services.stack.servers import free_port
from services.stack.supervisor import Stack, down
from shared import streams
from shared.bus import read_all
from shared.events import utcnow
from shared.modeling import demo_dataset_path
from shared.runtime import poll
from shared.settings import DEV_SECRET, StackSettings

STEPS, EVERY = 30, 5
AUTH = {"Authorization": f"Bearer {DEV_SECRET}"}
SPEC = {"name": "two-boxes", "lr": 3e-3, "lr_scheduler": "constant", "warmup_steps": 0, "max_steps": STEPS,
        "batch_size": 8, "max_seq_len": 64, "lora_r": 8, "checkpoint_every": EVERY, "log_every": 5, "seed": 0,
        "tracked": {"count": 16, "seed": 0}, "deploy_policy": "on-complete", "deploy_target": "boxb"}


def _box_a(root: Path, inference_port: int) -> Stack:
    settings = StackSettings(dev=True, state_dir=root / "box-a", redis_port=free_port("127.0.0.1"),
                             s3_port=free_port("127.0.0.1"), api_port=free_port("127.0.0.1"),
                             inference_port=free_port("127.0.0.1"), dashboard_port=free_port("127.0.0.1"))
    targets = [{"name": "boxb", "url": f"http://127.0.0.1:{inference_port}", "token": "trainyard-dev-secret",
                "kind": "trainyard"}]
    return Stack(settings, base_model="", role="training", extra_env={"TRAINYARD_TARGETS": json.dumps(targets)})


def _box_b(root: Path, a: Stack, inference_port: int) -> Stack:
    assert a.state is not None
    settings = StackSettings(dev=True, state_dir=root / "box-b", redis_url=a.state.redis_url,
                             s3_endpoint=a.state.s3_endpoint, inference_port=inference_port,
                             api_port=free_port("127.0.0.1"), dashboard_port=free_port("127.0.0.1"))
    return Stack(settings, base_model="", role="inference")


def _events(r: redis.Redis, stream: str, job_id: str, kind: str) -> list:
    return [e for _, e in read_all(r, stream) if e.job_id == job_id and e.type == kind]


@pytest.mark.slow
@pytest.mark.timeout(1800)  # minutes of CPU training and snapshots, longer on a busy machine
def test_evaluator_on_the_inference_box_survives_a_kill_and_training_never_waits(tmp_path: Path,
                                                                                  tiny_model: Path) -> None:
    inference_port = free_port("127.0.0.1")
    a = _box_a(tmp_path, inference_port)
    a.base_model = str(tiny_model)
    try:
        a.up()
        b = _box_b(tmp_path, a, inference_port)
        b.base_model = str(tiny_model)
        b.up()
        assert {p.name for p in a.state.procs} >= {"redis", "s3", "api", "registry", "trainer", "deployer"}
        assert not {"evaluator", "inference"} & {p.name for p in a.state.procs}
        assert {p.name for p in b.state.procs} == {"evaluator", "inference"}
        r = redis.Redis.from_url(a.state.redis_url)
        with httpx.Client(base_url=a.state.api_url, headers=AUTH, timeout=30) as api:
            with open(demo_dataset_path(), "rb") as f:
                res = api.post("/api/jobs/upload", files={"file": ("demo.jsonl", f)},
                               data={"spec": json.dumps({**SPEC, "base_model": str(tiny_model)})})
            assert res.status_code == 201, res.text
            job_id = res.json()["job_id"]
            poll("box B's baseline snapshot", lambda: any(
                e.payload.get("step") == 0 for e in _events(r, streams.EVOLUTION, job_id, "snapshot.captured")),
                 300, 0.2)
            b.kill("evaluator")  # box B's evaluator dies mid-job
            killed_at = utcnow()
            assert not _events(r, streams.JOBS, job_id, "job.completed"), "the job ended before the kill"
            job = poll("training to complete without an evaluator", lambda: (
                lambda j: j if j.get("state") in ("completed", "failed") else None)(
                api.get(f"/api/jobs/{job_id}").json()), 600, 1.0)
            assert job["state"] == "completed", job
            b.restart("evaluator")
            steps = list(range(0, STEPS + 1, EVERY))
            poll("snapshots of every checkpoint", lambda: len(
                api.get(f"/api/evolution/{job_id}/curve").json()) == len(steps) or None, 600, 1.0)
            curve = api.get(f"/api/evolution/{job_id}/curve").json()
            assert [p["step"] for p in curve] == steps  # no gap
            captured = [e.payload["step"] for e in _events(r, streams.EVOLUTION, job_id, "snapshot.captured")]
            assert sorted(captured) == steps  # no duplicate
            dep = poll("the on-complete deployment to box B", lambda: next((
                d for d in api.get("/api/deployments").json()["data"]
                if d.get("status") in ("verified", "failed", "rolled_back")), None), 300, 1.0)
            assert dep["status"] == "verified" and dep["target"] == "boxb", dep
        _training_never_waited(r, job_id, killed_at)
    finally:
        down(tmp_path / "box-b")
        down(tmp_path / "box-a")


def _training_never_waited(r: redis.Redis, job_id: str, killed_at) -> None:
    """Checkpoints kept coming while box B's evaluator was dead, and the job completed before the evaluator
    came back: the snapshots of those checkpoints were all taken after the job's end."""
    completed = _events(r, streams.JOBS, job_id, "job.completed")[0]
    later = {e.payload["step"] for e in _events(r, streams.CHECKPOINTS, job_id, "checkpoint.saved")
             if e.occurred_at > killed_at}
    assert len(later) >= 2, later
    snaps = [e for e in _events(r, streams.EVOLUTION, job_id, "snapshot.captured") if e.payload["step"] in later]
    assert len(snaps) == len(later) and all(e.occurred_at >= completed.occurred_at for e in snaps)


def test_inference_role_without_reachable_peers_says_what_to_start(tmp_path: Path) -> None:
    dead = free_port("127.0.0.1")
    env = {**os.environ, "TRAINYARD_REDIS_URL": f"redis://127.0.0.1:{dead}/0",
           "TRAINYARD_S3_ENDPOINT": f"127.0.0.1:{dead}", "TRAINYARD_STATE_DIR": str(tmp_path / "b")}
    cli = Path(sys.executable).with_name("trainyard")
    proc = subprocess.run([str(cli), "up", "--role", "inference"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"cannot reach the training box's Redis at 127.0.0.1:{dead} (TRAINYARD_REDIS_URL)" in lines[0]
    assert "trainyard up --role training" in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "b" / "stack.json").exists()  # nothing was started
