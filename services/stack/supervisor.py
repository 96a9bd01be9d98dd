"""The embedded stack: every server and service as its own process on this machine, no Docker.

``Stack.up()`` starts redis-server (AOF on) and the SeaweedFS S3 server (unless an external S3/MinIO
endpoint is configured), then registry, evaluator, deployer, trainer (the RQ worker), inference, api and
rq-dashboard; it waits for each to be healthy, writes logs under ``<state_dir>/logs`` and records the
processes in ``<state_dir>/stack.json`` so ``trainyard status`` and ``trainyard down`` find them.
Everything binds to 127.0.0.1 unless ``TRAINYARD_BIND`` says otherwise.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from services.stack.servers import RedisServer, S3Server, ServerError, port_open
from shared.settings import DEV_SECRET, StackSettings

log = logging.getLogger(__name__)

SERVICES = ("registry", "evaluator", "deployer", "trainer", "inference", "api")


@dataclass
class ProcInfo:
    name: str
    pid: int
    port: int | None = None
    log: str = ""


@dataclass
class StackState:
    state_dir: str
    redis_url: str
    s3_endpoint: str
    api_url: str
    inference_url: str
    dashboard_url: str
    inbox_dir: str = ""
    control_dir: str = ""
    procs: list[ProcInfo] = field(default_factory=list)
    api_token: str = ""  # so the CLI on this machine finds the API and its token (services/api/connect.py)

    @classmethod
    def load(cls, state_dir: Path) -> StackState | None:
        path = state_dir / "stack.json"
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        data["procs"] = [ProcInfo(**p) for p in data.get("procs", [])]
        return cls(**data)

    def save(self) -> None:
        path = Path(self.state_dir) / "stack.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the API token
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(asdict(self), indent=1))

    def public(self) -> dict:
        """What ``trainyard up --json`` prints: the URLs, paths and processes (never the token)."""
        return {k: v for k, v in asdict(self).items() if k != "api_token"}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); look at its state.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@dataclass
class Stack:
    settings: StackSettings
    base_model: str
    extra_env: dict[str, str] = field(default_factory=dict)
    state: StackState | None = None

    @property
    def state_dir(self) -> Path:
        return self.settings.state_dir.resolve()

    def env(self) -> dict[str, str]:
        s = self.settings
        host = s.bind
        env = {
            **os.environ,
            "TRAINYARD_DEV": "1" if s.dev else "0",
            "TRAINYARD_REDIS_URL": self.state.redis_url if self.state else s.redis_url,
            "TRAINYARD_S3_ENDPOINT": self.state.s3_endpoint if self.state else s.s3_endpoint,
            "TRAINYARD_S3_ACCESS_KEY": s.s3_access_key,
            "TRAINYARD_S3_SECRET_KEY": s.s3_secret_key,
            "TRAINYARD_BUCKET": s.bucket,
            "TRAINYARD_STATE_DIR": str(self.state_dir),
            "TRAINYARD_HOST": host,
            "TRAINYARD_PORT": str(s.api_port),
            "TRAINYARD_INFERENCE_HOST": host,
            "TRAINYARD_INFERENCE_PORT": str(s.inference_port),
            "TRAINYARD_INFERENCE_BASE_MODEL": self.base_model,
            "TRAINYARD_DEFAULT_BASE_MODEL": os.environ.get("TRAINYARD_DEFAULT_BASE_MODEL", self.base_model),
            "TRAINYARD_INFERENCE_ADAPTERS_DIR": str(self.state_dir / "inference" / "adapters"),
            "TRAINYARD_INBOX_DIR": str(s.inbox_dir.resolve()),
            "TRAINYARD_CONTROL_DIR": str(s.control_dir.resolve()),
            "TRAINYARD_CHECKPOINTS_DIR": os.environ.get("TRAINYARD_CHECKPOINTS_DIR",
                                                        str(self.state_dir / "checkpoints")),
            "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONUNBUFFERED": "1",
        }
        if "TRAINYARD_TARGETS" not in os.environ:
            token = os.environ.get("TRAINYARD_INFERENCE_TOKEN", "trainyard-dev-secret")
            env["TRAINYARD_TARGETS"] = json.dumps([{
                "name": "local", "url": f"http://{host}:{s.inference_port}", "token": token, "kind": "trainyard",
            }])
        env.update(self.extra_env)
        return env

    # -- up -----------------------------------------------------------------------------------------
    def up(self, progress=None) -> StackState:
        s = self.settings
        existing = StackState.load(self.state_dir)
        if existing and any(alive(p.pid) for p in existing.procs):
            raise ServerError(f"a stack is already running from {self.state_dir} (trainyard down first)")
        (self.state_dir / "logs").mkdir(parents=True, exist_ok=True)
        host = s.bind
        self.state = StackState(
            state_dir=str(self.state_dir), redis_url="", s3_endpoint=s.s3_endpoint,
            api_url=f"http://{host}:{s.api_port}", inference_url=f"http://{host}:{s.inference_port}",
            dashboard_url=f"http://{host}:{s.dashboard_port}",
            api_token=self.env().get("TRAINYARD_API_TOKEN") or (DEV_SECRET if s.dev else ""),
        )
        env = self.env()
        for name in ("inbox_dir", "control_dir"):
            folder = Path(env[f"TRAINYARD_{name.upper()}"])
            folder.mkdir(parents=True, exist_ok=True)
            setattr(self.state, name, str(folder))
        note = progress or (lambda msg: log.info(msg))
        note(f"redis-server on {host}:{s.redis_port}")
        redis_srv = RedisServer(self.state_dir / "redis", port=s.redis_port, host=host).start()
        self.state.redis_url = redis_srv.url
        self._record("redis", redis_srv.proc, s.redis_port, self.state_dir / "redis" / "redis.log")
        if self._embedded_s3():
            note(f"SeaweedFS S3 on {host}:{s.s3_port}")
            s3 = S3Server(self.state_dir / "s3", s.s3_access_key, s.s3_secret_key, port=s.s3_port, host=host).start()
            self.state.s3_endpoint = s3.endpoint
            self._record("s3", s3.proc, s.s3_port, self.state_dir / "s3" / "weed.log")
        self.state.save()
        ports = {"inference": s.inference_port, "api": s.api_port}
        for name in SERVICES:
            note(f"starting {name}")
            self._spawn(name, [sys.executable, "-m", f"services.{name}.main"], ports.get(name))
        self._spawn("rq-dashboard", [str(Path(sys.executable).parent / "rq-dashboard"), "-b", host,
                                     "-p", str(s.dashboard_port), "-u", self.state.redis_url], s.dashboard_port)
        self.state.save()
        note("waiting for health")
        self.wait_healthy()
        return self.state

    def _embedded_s3(self) -> bool:
        return os.environ.get("TRAINYARD_EXTERNAL_S3", "0") != "1"

    def _spawn(self, name: str, args: list[str], port: int | None) -> None:
        assert self.state is not None
        log_path = self.state_dir / "logs" / f"{name}.log"
        with open(log_path, "ab") as logf:
            proc = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT, env=self.env(),
                                    start_new_session=True, cwd=os.getcwd())
        self._record(name, proc, port, log_path)

    def _record(self, name: str, proc: subprocess.Popen | None, port: int | None, log_path: Path) -> None:
        assert self.state is not None and proc is not None
        self.state.procs = [p for p in self.state.procs if p.name != name]
        self.state.procs.append(ProcInfo(name=name, pid=proc.pid, port=port, log=str(log_path)))

    def wait_healthy(self, timeout: float = 180) -> None:
        assert self.state is not None
        deadline = time.monotonic() + timeout
        checks = {
            "api": f"{self.state.api_url}/health",
            "inference": f"{self.state.inference_url}/ready",
        }
        pending = dict(checks)
        while pending and time.monotonic() < deadline:
            for p in self.state.procs:
                if not alive(p.pid):
                    tail = Path(p.log).read_text(errors="replace")[-3000:] if Path(p.log).exists() else ""
                    raise ServerError(f"{p.name} exited during start-up; last log lines:\n{tail}")
            for name, url in list(pending.items()):
                try:
                    if httpx.get(url, timeout=1.0).status_code == 200:
                        del pending[name]
                except httpx.HTTPError:
                    pass
            time.sleep(0.3)
        if pending:
            raise ServerError(f"not healthy after {timeout:.0f}s: {', '.join(pending)}")
        dash = next((p for p in self.state.procs if p.name == "rq-dashboard"), None)
        if dash and dash.port:
            end = time.monotonic() + 20
            while not port_open(self.settings.bind, dash.port) and time.monotonic() < end:
                time.sleep(0.2)

    # -- process control for fault drills (tests/drills/) ------------------------------
    @classmethod
    def attach(cls, settings: StackSettings, base_model: str, extra_env: dict[str, str] | None = None) -> Stack:
        """A Stack bound to the processes already recorded in ``settings.state_dir`` (started by ``up``)."""
        stack = cls(settings, base_model=base_model, extra_env=dict(extra_env or {}))
        stack.state = StackState.load(stack.state_dir)
        if stack.state is None:
            raise ServerError(f"no stack recorded in {stack.state_dir}")
        return stack

    def proc(self, name: str) -> ProcInfo:
        assert self.state is not None
        for p in self.state.procs:
            if p.name == name:
                return p
        raise ServerError(f"no process {name!r} in this stack")

    def kill(self, name: str, sig: int = signal.SIGKILL, timeout: float = 30) -> None:
        """Send ``sig`` (default: kill -9) to the process group of ``name`` and wait until it is gone."""
        p = self.proc(name)
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:  # reap our own child so it does not linger as a zombie
                os.waitpid(p.pid, os.WNOHANG)
            except ChildProcessError:
                pass
            if not alive(p.pid):
                return
            time.sleep(0.05)
        raise ServerError(f"{name} (pid {p.pid}) still alive {timeout:.0f}s after signal {sig}")

    def restart(self, name: str, wait: bool = True) -> ProcInfo:
        """Start ``name`` again as ``up`` did (same ports, data dirs and environment); kill it first if alive."""
        assert self.state is not None
        s = self.settings
        if alive(self.proc(name).pid):
            self.kill(name)
        if name == "redis":
            srv = RedisServer(self.state_dir / "redis", port=s.redis_port, host=s.bind).start()
            self._record("redis", srv.proc, s.redis_port, self.state_dir / "redis" / "redis.log")
        elif name == "s3":
            s3 = S3Server(self.state_dir / "s3", s.s3_access_key, s.s3_secret_key, port=s.s3_port,
                          host=s.bind).start()
            self._record("s3", s3.proc, s.s3_port, self.state_dir / "s3" / "weed.log")
        elif name == "rq-dashboard":
            self._spawn(name, [str(Path(sys.executable).parent / "rq-dashboard"), "-b", s.bind,
                               "-p", str(s.dashboard_port), "-u", self.state.redis_url], s.dashboard_port)
        elif name in SERVICES:
            ports = {"inference": s.inference_port, "api": s.api_port}
            self._spawn(name, [sys.executable, "-m", f"services.{name}.main"], ports.get(name))
        else:
            raise ServerError(f"cannot restart unknown process {name!r}")
        self.state.save()
        if wait and name in ("api", "inference"):
            self.wait_healthy()
        return self.proc(name)


def down(state_dir: Path, timeout: float = 30) -> list[str]:
    """Stop every process of the stack recorded in ``state_dir`` (services first, servers last)."""
    state = StackState.load(state_dir)
    if state is None:
        return []
    stopped = []
    order = [p for p in state.procs if p.name not in ("redis", "s3")] + \
            [p for p in state.procs if p.name == "s3"] + [p for p in state.procs if p.name == "redis"]
    for p in order:
        if alive(p.pid):
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            stopped.append(p.name)
    deadline = time.monotonic() + timeout
    for p in order:
        while alive(p.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if alive(p.pid):
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    state.procs = []
    state.save()
    return stopped


def status(state_dir: Path) -> list[dict]:
    state = StackState.load(state_dir)
    if state is None:
        return []
    return [{"name": p.name, "pid": p.pid, "port": p.port, "alive": alive(p.pid), "log": p.log}
            for p in state.procs]
