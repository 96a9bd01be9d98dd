"""Drill support: a real embedded stack on fresh loopback ports, waits and the invariants.

The drills in ``tests/drills/`` import it.
"""

from __future__ import annotations

import json
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import torch
from safetensors.torch import load_file

from services.stack.demo import _ports, demo_spec
from services.stack.supervisor import Stack, down
from shared import streams
from shared.bus import read_all
from shared.events import Event
from shared.modeling import build_tiny_model, demo_dataset_path
from shared.runtime import poll
from shared.settings import CommonSettings, StackSettings

SERVICES_TO_KILL = ("trainer", "evaluator", "registry", "deployer", "api")


@dataclass
class Drill:
    stack: Stack
    r: redis.Redis
    model_dir: Path
    secrets: dict[str, str]
    log: list[str]

    @property
    def state_dir(self) -> Path:
        return self.stack.state_dir

    def note(self, line: str) -> None:
        self.log.append(f"{time.strftime('%H:%M:%S')} {line}")

    def common(self) -> CommonSettings:
        assert self.stack.state is not None
        s = self.stack.settings
        return CommonSettings(dev=True, redis_url=self.stack.state.redis_url, s3_endpoint=self.stack.state.s3_endpoint,
                              s3_access_key=s.s3_access_key, s3_secret_key=s.s3_secret_key, bucket=s.bucket,
                              state_dir=self.state_dir)


def start_stack(root: Path, model_dir: Path, **extra_env: str) -> Drill:
    """``trainyard up`` on fresh ports with non-default secrets (so the logs can be searched for them)."""
    state_dir = (root / "stack").resolve()
    api_token, inference_token, s3_secret = (secrets.token_hex(16) for _ in range(3))
    ports = _ports("127.0.0.1")
    settings = StackSettings(dev=True, state_dir=state_dir, s3_secret_key=s3_secret, **ports)
    env = {"TRAINYARD_API_TOKEN": api_token, "TRAINYARD_INFERENCE_TOKEN": inference_token,
           "TRAINYARD_TARGETS": json.dumps([{"name": "local", "url": f"http://127.0.0.1:{ports['inference_port']}",
                                             "token": inference_token, "kind": "trainyard"}]),
           "TRAINYARD_INBOX_DIR": str(state_dir / "inbox"), "TRAINYARD_CONTROL_DIR": str(state_dir / "control"),
           "TRAINYARD_CHECKPOINTS_DIR": str(state_dir / "checkpoints"), "OMP_NUM_THREADS": "1",
           "TRAINYARD_INBOX_STABLE_S": "0.3", "TRAINYARD_INBOX_POLL_S": "0.2", **extra_env}
    stack = Stack(settings, base_model=str(model_dir), extra_env=env)
    try:
        state = stack.up()
    except Exception:
        down(state_dir)
        raise
    r = redis.Redis.from_url(state.redis_url)
    return Drill(stack, r, model_dir, {"api_token": api_token, "inference_token": inference_token,
                                       "s3_secret": s3_secret}, [])


def tiny_model_copy(tiny_model: Path, root: Path) -> Path:
    dest = root / "model"
    if not (dest / "config.json").exists():
        shutil.copytree(tiny_model, dest) if tiny_model.exists() else build_tiny_model(dest)
    return dest


def drop_job(drill: Drill, name: str, steps: int, **overrides: Any) -> Path:
    """A dataset and its sidecar spec into the inbox (the spec first, the dataset renamed from .part)."""
    import yaml

    inbox = drill.state_dir / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    spec = {**demo_spec(drill.model_dir, steps), "name": name, "log_every": 1, "device": "cpu", **overrides}
    (inbox / f"{name}.yaml").write_text(yaml.safe_dump(spec))
    part = inbox / f"{name}.jsonl.part"
    shutil.copyfile(demo_dataset_path(), part)
    part.rename(inbox / f"{name}.jsonl")
    return inbox / f"{name}.jsonl"


def wait(what: str, fn: Callable[[], Any], timeout: float, every: float = 0.5) -> Any:
    return poll(what, fn, timeout, every)


def events(r: redis.Redis, stream: str, job_id: str | None = None) -> list[Event]:
    return [e for _, e in read_all(r, stream) if job_id is None or e.job_id == job_id]


def job_by_name(r: redis.Redis, name: str) -> dict[str, Any] | None:
    from services.trainer.projection import list_jobs

    return next((j for j in list_jobs(r) if j.get("name") == name), None)


def job_state(r: redis.Redis, job_id: str) -> str | None:
    from services.trainer.projection import get_job

    return (get_job(r, job_id) or {}).get("state")


def snapshot_versions(r: redis.Redis, job_id: str) -> list[str | None]:
    return [e.payload["version_id"] for e in events(r, streams.EVOLUTION, job_id) if e.type == "snapshot.captured"]


def adapter_versions(r: redis.Redis, job_id: str) -> list[dict[str, Any]]:
    from services.registry.projection import list_versions

    return list_versions(r, kind="adapter", job_id=job_id)


def wait_flow_done(drill: Drill, job_id: str, timeout: float = 900, deployment: bool = True) -> None:
    """Training completed, every adapter version snapshotted, and (if asked) the deployment settled."""
    from services.deployer.projection import list_deployments

    r = drill.r

    def completed() -> bool:
        state = job_state(r, job_id)
        assert state not in ("cancelled", "skipped", "stopped"), f"job ended {state}"
        return state == "completed"

    wait(f"{job_id} to complete", completed, timeout)

    def snapshotted() -> bool:
        versions = {v["version_id"] for v in adapter_versions(r, job_id)}
        final = [e for e in events(r, streams.REGISTRY, job_id) if e.type == "version.stored" and e.payload["final"]]
        return bool(final) and versions <= set(snapshot_versions(r, job_id))

    wait("a snapshot of every version", snapshotted, timeout)
    if deployment:
        wait("the on-complete deployment to settle",
             lambda: any(d.get("status") in ("verified", "rolled_back", "failed") for d in list_deployments(r)),
             timeout)


def quiesce(r: redis.Redis, timeout: float = 120) -> None:
    """Wait until no consumer group holds a pending entry (a restarted consumer reclaims a dead one's)."""
    wait("no pending stream entries", lambda: not pending(r), timeout, every=1.0)


def pending(r: redis.Redis) -> dict[str, int]:
    out = {}
    for stream in (*streams.ALL, streams.DEAD_LETTER):
        if not r.exists(stream):
            continue
        for g in r.xinfo_groups(stream):
            if g["pending"]:
                out[f"{stream}/{g['name'].decode() if isinstance(g['name'], bytes) else g['name']}"] = g["pending"]
    return out


# -- invariants --------------------------------------------------------------------------------------------
def check_invariants(drill: Drill, job_ids: list[str]) -> None:
    from services.stack.projections import all_projections
    from shared.projection import rebuild

    r = drill.r
    quiesce(r)
    stored = [e for e in events(r, streams.REGISTRY) if e.type == "version.stored" and e.payload["kind"] == "adapter"]
    by_ckpt: dict[str, set[str]] = {}
    for e in stored:
        by_ckpt.setdefault(e.payload["checkpoint_event_id"], set()).add(e.payload["version_id"])
    for job_id in job_ids:
        live = {v["version_id"] for v in adapter_versions(r, job_id)}
        for ck in (e for e in events(r, streams.CHECKPOINTS, job_id) if e.type == "checkpoint.saved"):
            got = by_ckpt.get(ck.id, set())
            assert len(got) == 1, f"checkpoint.saved {ck.id} (step {ck.payload['step']}) -> versions {got}"
            assert got <= live, f"version {got} of checkpoint step {ck.payload['step']} is not in the versions view"
        snaps = snapshot_versions(r, job_id)
        for vid in live:
            assert snaps.count(vid) == 1, f"version {vid} has {snaps.count(vid)} snapshots"
        failed = [e.payload for e in events(r, streams.EVOLUTION, job_id) if e.type == "snapshot.failed"]
        assert not failed, failed
    dead = [e.payload for e in events(r, streams.DEAD_LETTER)]
    assert not dead, f"dead-lettered entries: {dead}"
    assert not pending(r)
    reports = rebuild(r, all_projections(drill.common()))
    assert all(rep.equal for rep in reports), [(rep.projection, rep.differing[:5]) for rep in reports if not rep.equal]


def final_adapter(drill: Drill, job_id: str, dest: Path) -> dict[str, torch.Tensor]:
    from services.registry.client import RegistryClient
    from shared.storage import s3_client

    final = [e for e in events(drill.r, streams.REGISTRY, job_id)
             if e.type == "version.stored" and e.payload["final"]]
    assert final, f"no final version for {job_id}"
    reg = RegistryClient(s3_client(drill.common()), drill.stack.settings.bucket)
    out = reg.materialize(final[-1].payload["version_id"], dest)
    return load_file(out / "adapter_model.safetensors")


def assert_same_adapter(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys() and len(a) > 0
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=0, msg=lambda m, k=k: f"{k}: {m}")


def secrets_in_logs(drill: Drill) -> list[str]:
    """Every (log file, secret name) pair where a secret value shows up in a log of the stack."""
    hits = []
    logs = [*drill.state_dir.joinpath("logs").glob("*.log"), drill.state_dir / "redis" / "redis.log",
            drill.state_dir / "s3" / "weed.log"]
    for path in logs:
        if not path.exists():
            continue
        text = path.read_bytes()
        for name, value in drill.secrets.items():
            if value.encode() in text:
                hits.append(f"{path.name}: {name}")
    return hits


def listening_addresses(pids: set[int]) -> dict[int, str]:
    """{port: local address} of the TCP sockets in LISTEN state owned by ``pids`` (and their threads)."""
    inodes: dict[str, int] = {}
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        try:
            for fd in fd_dir.iterdir():
                try:
                    target = fd.readlink().as_posix()
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes[target[8:-1]] = pid
        except OSError:
            continue
    out = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            local, state, inode = parts[1], parts[3], parts[9]
            if state == "0A" and inode in inodes:
                addr, port = local.split(":")
                out[int(port, 16)] = addr
    return out


def children(pid: int) -> set[int]:
    """``pid`` and every descendant (the S3 server and uvicorn may fork)."""
    found = {pid}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            fields = (p / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) in found:
            found.add(int(p.name))
    return found
