"""Submitting a job: validate the data, store it in the registry, record and queue the job.

    job_id = submit_job(settings, r, s3, Path("data.jsonl"), spec={"max_steps": 200}, source="cli")
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import redis
from minio import Minio

from services.registry.client import RegistryClient
from services.trainer import admission, jobstore, queueing, trainability
from services.trainer.datasets import describe, load_and_validate
from services.trainer.emit import emit
from services.trainer.exceptions import DatasetError
from services.trainer.spec import JobSpec, parse_spec
from services.trainer.states import Action, JobState, Priority
from shared import streams
from shared.events import DatasetRef, DatasetRejected, DatasetStored, JobControlRequested, JobQueued
from shared.settings import TrainerSettings


def new_job_id() -> str:
    return "job-" + uuid.uuid4().hex[:12]


def submit_job(settings: TrainerSettings, r: redis.Redis, s3: Minio, dataset_path: Path, *,
               spec: dict[str, Any] | JobSpec | None = None, source: str = "api", name: str | None = None,
               priority: str | None = None) -> str:
    """Validate, store and queue a training job; returns its id.

    Raises ``SpecError`` for a bad spec (including a base model that cannot be loaded and a held-out path
    outside the allowed directories, see ``services.trainer.admission``) and ``DatasetError`` (``.report`` lists each bad line) for bad data,
    including examples that leave no loss token within ``max_seq_len`` (``services.trainer.trainability``),
    after publishing ``dataset.rejected``. The dataset file is never modified.
    """
    dataset_path = Path(dataset_path)
    if settings.default_base_model and not isinstance(spec, JobSpec) and not (spec or {}).get("base_model"):
        spec = {**(spec or {}), "base_model": settings.default_base_model}
    job_spec = parse_spec(spec, name=name, priority=priority)
    heldout_file = admission.check(settings, job_spec, dataset_path)
    job_id = new_job_id()
    try:
        dataset = load_and_validate(dataset_path, job_spec.dataset_format)
        trainability.check(job_spec, dataset)
        heldout_sha = None
        if heldout_file is not None:
            heldout = load_and_validate(heldout_file)
            heldout_sha = heldout.sha256
    except DatasetError as exc:
        emit(r, "dataset.rejected", DatasetRejected(file=str(dataset_path), errors=exc.report), None)
        raise
    registry = RegistryClient(s3, settings.bucket)
    registry.ensure_bucket()
    ds_name = job_spec.name or dataset_path.stem
    manifest = registry.store_dataset(dataset_path, name=ds_name, job_id=job_id, note=f"submitted via {source}")
    emit(r, "dataset.stored", DatasetStored(version_id=manifest["version_id"], sha256=dataset.sha256,
                                            name=ds_name), job_id)
    if heldout_sha is not None:
        assert heldout_file is not None
        hmanifest = registry.store_dataset(heldout_file, name=f"{ds_name}-heldout",
                                           job_id=job_id, note="held-out tracked examples")
        emit(r, "dataset.stored", DatasetStored(version_id=hmanifest["version_id"], sha256=heldout_sha,
                                                name=f"{ds_name}-heldout"), job_id)
    tracked = job_spec.tracked.model_copy(update={"heldout_sha256": heldout_sha})
    job_spec = job_spec.model_copy(update={
        "name": ds_name, "dataset_sha256": dataset.sha256, "dataset_version_id": manifest["version_id"],
        "dataset_format": dataset.format, "tracked": tracked,
    })
    ref = DatasetRef(name=ds_name, path=str(dataset_path), sha256=dataset.sha256, format=dataset.format.value,
                     n_examples=dataset.n_examples, version_id=manifest["version_id"], file_type=dataset.file_type,
                     n_tool_examples=dataset.n_tool_examples)
    prio = job_spec.priority.value
    jobstore.create(r, job_id, spec=job_spec.to_dict(), dataset=ref.model_dump(mode="json"), priority=prio,
                    name=ds_name)
    emit(r, "job.queued", JobQueued(spec=job_spec.to_dict(), dataset=ref, priority=prio, source=source), job_id)
    queueing.enqueue(r, job_id, prio, first=True)
    if job_spec.preempt:
        preempt_lower(r, job_id, job_spec.priority)
    return job_id


def submitted_dataset(r: redis.Redis, job_id: str) -> dict[str, Any]:
    """What was detected in a job's dataset: format, file type, counts and ``detected`` (the UI's sentence)."""
    ref = DatasetRef.model_validate(jobstore.load(r, job_id)["dataset"])
    return {"format": ref.format, "file_type": ref.file_type, "n_examples": ref.n_examples,
            "n_tool_examples": ref.n_tool_examples,
            "detected": describe(ref.format, ref.file_type, ref.n_examples, ref.n_tool_examples)}


def preempt_lower(r: redis.Redis, job_id: str, priority: Priority) -> list[str]:
    """Ask every running job of lower priority to pause for ``job_id``; returns the preempted ids."""
    hit = []
    for running in jobstore.running_jobs(r):
        try:
            rec = jobstore.load(r, running)
        except Exception:  # noqa: BLE001 - a record deleted under us is not running anymore
            continue
        if rec["state"] == JobState.running.value and Priority(rec["priority"]).rank < priority.rank:
            r.hset(streams.CONTROL_KEY, running, f"{Action.preempt.value}:{job_id}")
            emit(r, "job.control_requested", JobControlRequested(action=Action.preempt.value, source=job_id),
                 running)
            hit.append(running)
    return hit
