"""The CLI finds a stack started on non-default ports with a non-default token through stack.json alone:
`trainyard up --detach --json` in a directory, then `trainyard versions trash ID` from the same directory
with nothing in the environment, then one line once the stack is down."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.stack.servers import free_port

TRAINYARD = str(Path(sys.executable).parent / "trainyard")


def trainyard(env: dict[str, str], cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([TRAINYARD, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def ok_json(res: subprocess.CompletedProcess) -> object:
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stdout + res.stderr
    return json.loads(res.stdout)


@pytest.mark.slow
def test_cli_finds_a_stack_on_other_ports_through_stack_json(tmp_path: Path, tiny_model: Path) -> None:
    shell = {k: v for k, v in os.environ.items() if not k.startswith("TRAINYARD_")}
    shell.update(TRAINYARD_DEV="1", HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "config"))
    ports = {f"TRAINYARD_{n}_PORT": str(free_port()) for n in ("REDIS", "S3", "API", "INFERENCE", "DASHBOARD")}
    up_env = {**shell, **ports, "TRAINYARD_API_TOKEN": "a-token-only-up-knows",
              "TRAINYARD_INFERENCE_BASE_MODEL": str(tiny_model)}
    try:
        state = ok_json(trainyard(up_env, tmp_path, "up", "--detach", "--json", timeout=300))
        api_url = f"http://127.0.0.1:{ports['TRAINYARD_API_PORT']}"
        assert state["api_url"] == api_url and "api_token" not in state
        stack_json = tmp_path / ".state" / "stack.json"
        assert stat.S_IMODE(stack_json.stat().st_mode) == 0o600
        assert json.loads(stack_json.read_text())["api_token"] == "a-token-only-up-knows"

        # the user's shell knows nothing: no URL, token, Redis or S3 settings
        vid = ok_json(trainyard(shell, tmp_path, "registry", "import", str(tiny_model), "--json"))["version_id"]
        deadline = time.monotonic() + 60
        while vid not in [v["version_id"] for v in ok_json(trainyard(shell, tmp_path, "versions", "list", "--json"))]:
            assert time.monotonic() < deadline, "the registry never listed the imported version"
            time.sleep(1)
        doc = ok_json(trainyard(shell, tmp_path, "versions", "trash", vid, "--json"))
        assert doc == {"version_id": vid, "action": "trash", "result": doc["result"]} and doc["result"]
        unauthorised = trainyard({**shell, "TRAINYARD_API_TOKEN": "wrong"}, tmp_path, "versions", "restore", vid)
        assert unauthorised.returncode == 1 and "401" in unauthorised.stderr  # the environment beats stack.json
    finally:
        down = trainyard(shell, tmp_path, "down", "--json", timeout=120)
    assert "api" in ok_json(down)["stopped"]
    res = trainyard(shell, tmp_path, "versions", "trash", vid)
    assert res.returncode == 1 and res.stderr.strip() == (
        f"trainyard: cannot reach the API at {api_url} (connection refused; URL from stack.json in .state); "
        "start the stack with `trainyard up`")


@pytest.mark.slow
def test_demo_json_prints_its_result_as_json(tmp_path: Path) -> None:
    shell = {k: v for k, v in os.environ.items() if not k.startswith("TRAINYARD_")}
    shell.update(TRAINYARD_DEV="1", HOME=str(tmp_path), OMP_NUM_THREADS="1")
    res = trainyard(shell, tmp_path, "demo", "--json", "--steps", "4", "--state-dir", str(tmp_path / "demo"),
                    timeout=900)
    doc = json.loads(res.stdout)  # the progress and the summary table went to stderr
    assert "Traceback" not in res.stderr
    assert doc["ok"] is (res.returncode == 0) and doc["job"]["state"] == "completed", res.stderr[-2000:]
    assert doc["versions"] and doc["api_url"].startswith("http://127.0.0.1:")
