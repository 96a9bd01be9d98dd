"""Driving a Trainyard compose project from tests: engine probe, build, up/down, service kill/restart, REST.

Each ``ComposeStack`` is its own compose project (unique name, so its own volumes and network) on the
offline path (compose.yaml + compose.offline.yaml), with random secrets and free loopback host ports.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from services.stack.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = os.environ.get("TRAINYARD_BASE_IMAGE", "trainyard/debian:bookworm")
TERMINAL_FAILED = {"failed", "cancelled", "stopped", "skipped"}


class ComposeError(Exception):
    """A docker compose command failed."""


def engine_problem() -> str | None:
    """None when a Docker engine and compose v2 answer; else the reason the compose tests must skip."""
    if shutil.which("docker") is None:
        return "no docker CLI on PATH (bash scripts/ci_docker.sh installs the engine and compose)"
    try:
        info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True,
                              text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "docker info timed out: the Docker engine does not answer"
    if info.returncode != 0:
        said = ((info.stderr or info.stdout).strip().splitlines() or ["no answer"])[-1]
        return f"no Docker engine reachable ({said}); bash scripts/ci_docker.sh starts one"
    compose = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=20)
    if compose.returncode != 0:
        return "docker compose v2 not installed (bash scripts/ci_docker.sh installs it)"
    return None


def ensure_images(log: Callable[[str], None] = lambda _m: None) -> float:
    """Build the base image (once per machine) and the compose images (cached layers); seconds taken."""
    t0 = time.monotonic()
    probe = subprocess.run(["docker", "image", "inspect", BASE_IMAGE], capture_output=True)
    if probe.returncode != 0:
        log(f"building {BASE_IMAGE} with debootstrap")
        _check(subprocess.run(["bash", str(ROOT / "docker" / "build-base-image.sh")], capture_output=True,
                              text=True, timeout=900), "build-base-image.sh")
    _check(subprocess.run(["bash", str(ROOT / "docker" / "prepare-build.sh")], capture_output=True, text=True,
                          timeout=300), "prepare-build.sh")
    stack = ComposeStack(project="trainyard-build")
    stack.compose("build", "--quiet", timeout=1800)
    return time.monotonic() - t0


def _check(proc: subprocess.CompletedProcess, what: str) -> subprocess.CompletedProcess:
    if proc.returncode != 0:
        raise ComposeError(f"{what} failed ({proc.returncode}):\n{(proc.stdout or '')[-3000:]}\n"
                           f"{(proc.stderr or '')[-3000:]}")
    return proc


@dataclass
class ComposeStack:
    project: str = field(default_factory=lambda: "tytest" + secrets.token_hex(4))
    files: tuple[str, ...] = ("compose.yaml", "compose.offline.yaml", "tests/compose/compose.test.yaml")
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.env = {
            "TRAINYARD_REDIS_PASSWORD": secrets.token_hex(16),
            "TRAINYARD_S3_ACCESS_KEY": "trainyard",
            "TRAINYARD_S3_SECRET_KEY": secrets.token_hex(16),
            "TRAINYARD_API_TOKEN": secrets.token_hex(16),
            "TRAINYARD_INFERENCE_TOKEN": secrets.token_hex(16),
            "TRAINYARD_DEV": "0",
            "TRAINYARD_PUBLISH_HOST": "127.0.0.1",
            "TRAINYARD_API_HOST_PORT": str(free_port()),
            "TRAINYARD_DASHBOARD_HOST_PORT": str(free_port()),
            "TRAINYARD_INFERENCE_HOST_PORT": str(free_port()),
            "TRAINYARD_BASE_IMAGE": BASE_IMAGE,
            **self.env,
        }

    # -- compose ------------------------------------------------------------------------------------
    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        cmd = ["docker", "compose", "-p", self.project]
        for f in self.files:
            cmd += ["-f", str(ROOT / f)]
        # Only what compose needs: PATH/HOME/DOCKER_* from here, the stack's settings from self.env (an
        # engineer's own .env or TRAINYARD_* exports must not leak into the test stack).
        base = {k: v for k, v in os.environ.items() if not k.startswith("TRAINYARD_")}
        proc = subprocess.run([*cmd, *args], cwd=ROOT, env={**base, **self.env}, capture_output=True, text=True,
                              timeout=timeout)
        if check:
            _check(proc, "docker compose " + " ".join(args))
        return proc

    def up(self, timeout: float = 600) -> float:
        t0 = time.monotonic()
        proc = self.compose("up", "-d", "--wait", "--wait-timeout", str(int(timeout)), "--no-build",
                            timeout=timeout + 60, check=False)
        if proc.returncode != 0:
            raise ComposeError(f"up failed:\n{proc.stderr[-3000:]}\n{self.logs(tail=60)}")
        return time.monotonic() - t0

    def down(self) -> None:
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "20", timeout=300, check=False)

    def logs(self, *services: str, tail: int = 200) -> str:
        proc = self.compose("logs", "--no-color", "--tail", str(tail), *services, timeout=60, check=False)
        return proc.stdout[-20000:]

    def ps(self) -> list[dict[str, Any]]:
        out = self.compose("ps", "--all", "--format", "json", timeout=60).stdout.strip()
        if not out:
            return []
        if out.startswith("["):
            return json.loads(out)
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def health(self) -> dict[str, str]:
        return {p["Service"]: p.get("Health") or p.get("State", "") for p in self.ps()}

    def wait_healthy(self, service: str, timeout: float = 300) -> float:
        t0 = time.monotonic()
        wait_for(f"{service} healthy", lambda: self.health().get(service) == "healthy", timeout, interval=2)
        return time.monotonic() - t0

    # -- HTTP ---------------------------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.env['TRAINYARD_API_HOST_PORT']}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.env['TRAINYARD_DASHBOARD_HOST_PORT']}"

    @property
    def inference_url(self) -> str:
        return f"http://127.0.0.1:{self.env['TRAINYARD_INFERENCE_HOST_PORT']}"

    def api(self, timeout: float = 30) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, timeout=timeout,
                            headers={"Authorization": f"Bearer {self.env['TRAINYARD_API_TOKEN']}"})

    def inference(self, timeout: float = 60) -> httpx.Client:
        return httpx.Client(base_url=self.inference_url, timeout=timeout,
                            headers={"Authorization": f"Bearer {self.env['TRAINYARD_INFERENCE_TOKEN']}"})


def wait_for(what: str, fn: Callable[[], Any], timeout: float, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            got = fn()
        except httpx.HTTPError as exc:  # a restarting service: try again until the deadline
            got, last_error = None, exc
        if got:
            return got
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}"
                       + (f" (last error: {last_error})" if last_error else ""))


def items(payload: Any) -> list[Any]:
    """The list inside an API answer: a page ``{"data": [...]}`` or a bare list."""
    if isinstance(payload, dict):
        for key in ("data", "points", "items"):
            if isinstance(payload.get(key), list):
                return payload[key]
        return []
    return list(payload or [])
