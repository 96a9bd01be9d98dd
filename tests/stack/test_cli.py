"""`trainyard up --detach`, `status`, `down` through the real console script: every process starts, listens
on loopback only, and stops."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from services.stack.servers import free_port

TRAINYARD = str(Path(sys.executable).parent / "trainyard")


def _run(args: list[str], env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([TRAINYARD, *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_up_status_down(tmp_path: Path, tiny_model: Path) -> None:
    env = {**os.environ, "TRAINYARD_DEV": "1", "TRAINYARD_STATE_DIR": str(tmp_path / "state"),
           "TRAINYARD_INFERENCE_BASE_MODEL": str(tiny_model)}
    for name in ("REDIS_PORT", "S3_PORT", "API_PORT", "INFERENCE_PORT", "DASHBOARD_PORT"):
        env[f"TRAINYARD_{name}"] = str(free_port())
    try:
        up = _run(["up", "--detach"], env)
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"http://127.0.0.1:{env['TRAINYARD_API_PORT']}" in up.stdout
        st = _run(["status", "--json"], env, timeout=30)
        assert st.returncode == 0, st.stdout + st.stderr
        rows = json.loads(st.stdout)
        names = {r["name"] for r in rows}
        assert {"redis", "s3", "registry", "evaluator", "deployer", "trainer", "inference", "api",
                "rq-dashboard"} <= names
        assert all(r["alive"] for r in rows)
        if shutil.which("ss"):
            pids = {str(r["pid"]) for r in rows}
            listening = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout.splitlines()
            ours = [line for line in listening if any(f"pid={p}," in line for p in pids)]
            assert ours, "no listening sockets found for the stack's processes"
            for line in ours:
                local = line.split()[3]
                assert re.match(r"^(127\.0\.0\.1|\[::1\]|\[::ffff:127\.0\.0\.1\]):\d+$", local), line
    finally:
        down = _run(["down"], env, timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    st = _run(["status", "--json"], env, timeout=30)
    assert all(not r["alive"] for r in json.loads(st.stdout or "[]"))
