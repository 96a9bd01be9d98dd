"""Resuming a job on a worker that has no local checkpoint of it (its first worker, or that worker's box, is
gone): the job's newest checkpoint comes back from the registry, byte-identical, with its optimizer,
scheduler, RNG states and data position (``trainer_state.json``), so training continues exactly.

A job never silently restarts from step 0 when a checkpoint of it exists anywhere: when the jobs view
records a checkpoint (``checkpoint.saved``) whose version cannot be fetched within ``wait_s`` (the registry
has not stored it yet, or it is gone), ``NotRecoverable`` says why and the job pauses with that reason.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import redis

from services.registry.api import RegistryClient, list_versions
from services.trainer import checkpoints
from services.trainer.projection import get_job

log = logging.getLogger(__name__)

# what HF Trainer needs besides the adapter to continue exactly (rng_state*.pth: one per process)
RESUME_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt", checkpoints.SPEC_FILE)


class NotRecoverable(Exception):
    """A checkpoint of the job exists somewhere, but no worker here can fetch it: pause, never restart."""


def saved_steps(r: redis.Redis, job_id: str) -> list[int]:
    """Steps of the job's checkpoints as recorded by ``checkpoint.saved`` (the jobs view)."""
    job = get_job(r, job_id) or {}
    return sorted(int(s) for s in job.get("checkpoints") or [])


def resumable(version: dict[str, Any]) -> bool:
    paths = {f["path"] for f in version.get("files") or []}
    return all(name in paths for name in RESUME_FILES) and any(p.startswith("rng_state") for p in paths)


def newest_version(r: redis.Redis, job_id: str) -> dict[str, Any] | None:
    found = [v for v in list_versions(r, kind="adapter", job_id=job_id) if v.get("step") is not None]
    return max(found, key=lambda v: int(v["step"])) if found else None


def resume_point(r: redis.Redis, registry: RegistryClient, job_id: str, output_dir: Path,
                 wait_s: float = 60.0) -> Path | None:
    """Where the job continues from: this worker's newest checkpoint when it is the job's newest, else the
    newest from the registry (another worker went on further, or this one never had it); None: step 0."""
    local = checkpoints.latest(output_dir)
    steps = saved_steps(r, job_id)
    if local is not None and (not steps or checkpoints.step_of(local) >= steps[-1]):
        return local
    return fetch_latest(r, registry, job_id, output_dir, wait_s=wait_s)


def fetch_latest(r: redis.Redis, registry: RegistryClient, job_id: str, output_dir: Path,
                 wait_s: float = 60.0, interval_s: float = 1.0) -> Path | None:
    """The job's newest checkpoint as a local directory under ``output_dir``, fetched from the registry;
    None when the job never saved one (it starts at step 0). Raises ``NotRecoverable``."""
    steps = saved_steps(r, job_id)
    if not steps:
        return None
    deadline = time.monotonic() + wait_s
    version = newest_version(r, job_id)
    while (version is None or int(version["step"]) < steps[-1]) and time.monotonic() < deadline:
        time.sleep(interval_s)  # the registry may still be storing the newest checkpoint
        version = newest_version(r, job_id)
    if version is None or int(version["step"]) < steps[-1]:
        have = f"its newest version is of step {version['step']}" if version else "it has no version of it"
        raise NotRecoverable(
            f"checkpoint step {steps[-1]} of {job_id} is not on this worker and the registry cannot give it "
            f"({have}); resume the job once the registry has stored it, or on the worker that holds it")
    manifest = registry.manifest(version["version_id"])
    if not resumable(manifest):
        raise NotRecoverable(f"version {version['version_id']} (step {version['step']}) lacks the optimizer, "
                             "scheduler or RNG state needed to continue exactly; resume it where it was saved")
    return _materialize(registry, manifest, output_dir, int(version["step"]))


def _materialize(registry: RegistryClient, manifest: dict[str, Any], output_dir: Path, step: int) -> Path:
    final = output_dir / f"{checkpoints.PREFIX}{step}"
    partial = output_dir / f".fetch-{checkpoints.PREFIX}{step}"
    shutil.rmtree(partial, ignore_errors=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    registry.materialize(manifest["version_id"], partial, manifest=manifest)  # hashes verified per blob
    shutil.rmtree(final, ignore_errors=True)  # an incomplete local copy (no spec file) is never resumed from
    os.replace(partial, final)
    log.info("fetched checkpoint step %d from version %s (%d files, %.1fs)", step, manifest["version_id"],
             len(manifest["files"]), time.perf_counter() - t0)
    return final
