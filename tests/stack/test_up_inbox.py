"""The README's quick start, literally: `trainyard up` in a project folder, then `cp my_data.jsonl inbox/`.

`up` prints where the inbox and control folders are (beside where it runs), and a file copied into that inbox
becomes a job that trains to completion. With no replica configured, `up` and every service that stores say
so at start-up."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from services.stack.servers import free_port
from shared.modeling import demo_dataset_path

TRAINYARD = str(Path(sys.executable).parent / "trainyard")


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([TRAINYARD, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_cp_into_inbox_beside_up_trains(tmp_path: Path, tiny_model: Path) -> None:
    project = tmp_path / "my project"
    project.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("TRAINYARD_INBOX_DIR", "TRAINYARD_CONTROL_DIR", "TRAINYARD_STATE_DIR")}
    env.update({"TRAINYARD_DEV": "1", "TRAINYARD_INFERENCE_BASE_MODEL": str(tiny_model),
                "TRAINYARD_INBOX_STABLE_S": "0.3", "TRAINYARD_INBOX_POLL_S": "0.2", "COLUMNS": "80"})
    ports = {name: free_port() for name in ("REDIS_PORT", "S3_PORT", "API_PORT", "INFERENCE_PORT", "DASHBOARD_PORT")}
    env.update({f"TRAINYARD_{k}": str(v) for k, v in ports.items()})
    try:
        up = _run(["up", "--detach"], project, env)
        assert up.returncode == 0, up.stdout + up.stderr
        lines = up.stdout.splitlines()
        assert any(line.startswith("inbox") and str(project / "inbox") in line for line in lines), up.stdout
        assert any(line.startswith("control") and str(project / "control") in line for line in lines), up.stdout
        assert (project / "inbox").is_dir() and (project / "control").is_dir()
        # no replica configured: said loudly by `up` and at start-up by every service that stores
        assert "WARNING: no replica is configured" in up.stderr and "not a backup" in up.stderr, up.stderr

        # the user's `cp my_data.jsonl inbox/` (with a job spec beside it naming the local model)
        spec = {"base_model": str(tiny_model), "max_steps": 2, "checkpoint_every": 2, "batch_size": 2,
                "grad_accum": 1, "warmup_steps": 0, "max_seq_len": 64, "tracked": {"count": 2}, "device": "cpu"}
        (project / "inbox" / "my_data.yaml").write_text(yaml.safe_dump(spec))
        shutil.copy(demo_dataset_path(), project / "inbox" / "my_data.jsonl")
        # ... and a file with no spec at all trains the model `up` serves (not a hub id it cannot reach)
        shutil.copy(demo_dataset_path(), project / "inbox" / "bare.jsonl")

        api = f"http://127.0.0.1:{ports['API_PORT']}"
        deadline, jobs = time.monotonic() + 300, []
        while time.monotonic() < deadline:
            jobs = httpx.get(f"{api}/api/jobs", timeout=10).json()["data"]
            if len(jobs) == 2 and all(j["state"] in ("completed", "failed") for j in jobs):
                break
            time.sleep(1)
        bare = httpx.get(f"{api}/api/jobs/{next(j['id'] for j in jobs if j['name'] == 'bare')}", timeout=10).json()
        assert sorted((j["name"], j["state"]) for j in jobs) == [("bare", "completed"), ("my_data", "completed")], bare
        assert bare["spec"]["base_model"] == str(tiny_model)
        assert (project / "inbox" / "accepted" / "my_data.jsonl").exists()
        for service in ("registry", "trainer", "evaluator", "deployer", "api"):
            log = project / ".state" / "logs" / f"{service}.log"
            line = f"{service}: WARNING: no replica is configured"
            deadline = time.monotonic() + 120
            while line not in log.read_text() and time.monotonic() < deadline:
                time.sleep(1)
            assert line in log.read_text(), (service, log.read_text()[-2000:])
    finally:
        down = _run(["down"], project, env, timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr


def test_inbox_and_control_can_be_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from services.stack.supervisor import Stack
    from shared.settings import StackSettings

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRAINYARD_INBOX_DIR", raising=False)
    monkeypatch.delenv("TRAINYARD_CONTROL_DIR", raising=False)
    env = Stack(StackSettings(dev=True), base_model="m").env()
    assert (env["TRAINYARD_INBOX_DIR"], env["TRAINYARD_CONTROL_DIR"]) == (str(tmp_path / "inbox"),
                                                                          str(tmp_path / "control"))
    monkeypatch.setenv("TRAINYARD_INBOX_DIR", str(tmp_path / "drop"))
    monkeypatch.setenv("TRAINYARD_CONTROL_DIR", "ctl")
    env = Stack(StackSettings(dev=True), base_model="m").env()
    assert (env["TRAINYARD_INBOX_DIR"], env["TRAINYARD_CONTROL_DIR"]) == (str(tmp_path / "drop"),
                                                                          str(tmp_path / "ctl"))
