"""Trainer test support: settings, a tiny spec, the worker subprocess, event waits."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

from shared.bus import read_all
from shared.events import Event, parse_event
from shared.settings import TrainerSettings, as_env

ROOT = Path(__file__).resolve().parents[2]


def make_settings(settings_kwargs: dict, tmp_path: Path, **extra: Any) -> TrainerSettings:
    kw = {**settings_kwargs, "checkpoints_dir": tmp_path / "ckpt", "inbox_dir": tmp_path / "inbox",
          "control_dir": tmp_path / "control", "inbox_poll_s": 0.1, "inbox_stable_s": 0.3, **extra}
    return TrainerSettings(**kw)


def env_for(settings: TrainerSettings) -> dict[str, str]:
    env = {**os.environ, **as_env(settings)}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return env


def tiny_spec(tiny_model: Path, **kw: Any) -> dict[str, Any]:
    return {"base_model": str(tiny_model), "lr": 3e-3, "max_steps": 6, "checkpoint_every": 3, "log_every": 1,
            "batch_size": 4, "grad_accum": 1, "warmup_steps": 0, "tracked": {"count": 5}, "device": "cpu",
            "max_seq_len": 64, **kw}


def start_worker(settings: TrainerSettings, log_path: Path) -> subprocess.Popen:
    log = open(log_path, "ab")  # noqa: SIM115 - the child owns it
    return subprocess.Popen([sys.executable, "-m", "services.trainer.main"], cwd=ROOT, env=env_for(settings),
                            stdout=log, stderr=subprocess.STDOUT)


def events(r: redis.Redis, stream: str, job_id: str | None = None) -> list[Event]:
    return [e for _, e in read_all(r, stream) if job_id is None or e.job_id == job_id]


def wait_for(r: redis.Redis, stream: str, pred: Any, timeout: float = 60.0, proc: Any = None) -> Event:
    """Block on ``stream`` until an event satisfying ``pred`` arrives (from the start of the stream)."""
    deadline = time.monotonic() + timeout
    last = "0-0"
    while time.monotonic() < deadline:
        got = r.xread({stream: last}, block=50, count=100)
        for _s, entries in got or []:
            for eid, fields in entries:
                last = eid.decode()
                ev = parse_event(fields[b"event"])
                if pred(ev):
                    return ev
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"worker exited with {proc.returncode}")
    raise AssertionError(f"timed out waiting on {stream}")


def stop_worker(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)
