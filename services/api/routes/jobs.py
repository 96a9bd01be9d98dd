"""Jobs: submit (upload or registry dataset), list, get, metrics, pause/resume/stop/skip/cancel, priority."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, UploadFile

from services.api import uploads
from services.api.deps import READ, WRITE, PageDep, RedisDep, RegistryDep, S3Dep, SettingsDep
from services.api.exceptions import BadInput, NotFound, found
from services.api.problems import NOT_FOUND, READ_ERRORS, WRITE_ERRORS
from services.api.schemas import (
    ControlAccepted,
    JobCreate,
    JobPublic,
    JobSubmitted,
    MetricsPublic,
    Page,
    Reprioritise,
    paginate,
)
from services.registry import api as registry_api
from services.trainer import api as trainer
from shared.settings import ApiSettings, CommonSettings, TrainerSettings

router = APIRouter(prefix="/api/jobs", tags=["jobs"])

CONTROL = {"pause": trainer.pause, "resume": trainer.resume, "stop": trainer.stop, "skip": trainer.skip,
           "cancel": trainer.cancel}


def trainer_settings(settings: ApiSettings) -> TrainerSettings:
    return TrainerSettings(**{k: getattr(settings, k) for k in CommonSettings.model_fields})


def load_job(r: Any, job_id: str) -> dict[str, Any]:
    return found(trainer.get_job(r, job_id), f"no job {job_id}")


@router.get("", response_model=Page[JobPublic], dependencies=READ, responses=READ_ERRORS)
def list_jobs(r: RedisDep, page: PageDep,
              state: Annotated[str | None, Query(description="only jobs in this state")] = None) -> dict:
    jobs = trainer.list_jobs(r)
    if state:
        jobs = [j for j in jobs if j.get("state") == state]
    return paginate(jobs, *page)


@router.get("/{job_id}", response_model=JobPublic, dependencies=READ, responses={**READ_ERRORS, **NOT_FOUND})
def get_job(job_id: str, r: RedisDep) -> dict:
    return load_job(r, job_id)


@router.get("/{job_id}/metrics", response_model=MetricsPublic, dependencies=READ,
            responses={**READ_ERRORS, **NOT_FOUND})
def job_metrics(job_id: str, r: RedisDep, since_step: Annotated[int, Query(ge=0)] = 0) -> dict:
    load_job(r, job_id)
    points = trainer.job_metrics(r, job_id, since_step=since_step)
    return {"job_id": job_id, "data": points, "count": len(points)}


def _submit(settings: ApiSettings, r: Any, s3: Any, path: Path, spec: dict[str, Any], priority: str | None,
            name: str | None, source: str) -> str:
    return trainer.submit_job(trainer_settings(settings), r, s3, path, spec=spec,
                  source=source, name=name, priority=priority)


@router.post("", response_model=JobSubmitted, status_code=201, dependencies=WRITE, responses=WRITE_ERRORS)
def submit_from_registry(body: JobCreate, settings: SettingsDep, r: RedisDep, s3: S3Dep,
                         registry: RegistryDep) -> dict:
    """Queue a job on a dataset version already stored in the registry."""
    try:
        manifest = registry.manifest(body.dataset_version_id)
    except registry_api.NotFoundError as exc:
        raise NotFound(f"no dataset version {body.dataset_version_id}") from exc
    if manifest.get("kind") != "dataset":
        raise BadInput(f"dataset_version_id: {body.dataset_version_id} is a {manifest.get('kind')}, not a dataset")
    dest = Path(settings.uploads_dir) / uuid.uuid4().hex
    registry.materialize(body.dataset_version_id, dest)
    path = dest / manifest["files"][0]["path"]
    job_id = _submit(settings, r, s3, path, body.spec, body.priority, body.name or manifest.get("name"), "api")
    return {"job_id": job_id}


@router.post("/upload", response_model=JobSubmitted, status_code=201, dependencies=WRITE, responses=WRITE_ERRORS)
def submit_upload(
    settings: SettingsDep, r: RedisDep, s3: S3Dep,
    file: Annotated[UploadFile, File(description="dataset: .jsonl, .json (an array), .csv or .parquet "
                                                 "(chat, prompt/completion, alpaca, sharegpt, text)")],
    spec: Annotated[str, Form(description="JobSpec overrides as a JSON object")] = "{}",
    priority: Annotated[str | None, Form(pattern="^(high|default|low)$")] = None,
    name: Annotated[str | None, Form()] = None,
    source: Annotated[str, Form(pattern="^(api|cli|ui)$")] = "api",
) -> dict:
    """Upload a dataset file and queue a job on it (the dataset is validated and stored in the registry)."""
    overrides = uploads.spec_overrides(spec)
    upload = uploads.save(settings.uploads_dir, file)
    with uploads.named_as_sent(upload):
        job_id = _submit(settings, r, s3, upload.path, overrides, priority, name or upload.stem,
                         "cli" if source == "cli" else "api")
    return {"job_id": job_id, **trainer.submitted_dataset(r, job_id)}


def _control(action: str, job_id: str, settings: ApiSettings, r: Any) -> dict:
    # The trainer's control functions check the job's state themselves (JobNotFound -> 404,
    # InvalidTransition -> 409); they do not wait for the projection to catch up.
    args: tuple[Any, ...] = (trainer_settings(settings), r, job_id) if action == "resume" else (r, job_id)
    result = CONTROL[action](*args)
    return {"job_id": job_id, "action": action, "result": _jsonable(result)}


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)


def _control_route(action: str) -> None:
    def handler(job_id: str, settings: SettingsDep, r: RedisDep) -> dict:
        return _control(action, job_id, settings, r)

    handler.__name__ = f"{action}_job"
    handler.__doc__ = f"Request {action} of a job (the trainer acts on it at its next step)."
    router.post(f"/{{job_id}}/{action}", response_model=ControlAccepted, status_code=202,
                dependencies=WRITE, responses=WRITE_ERRORS, name=f"{action}_job")(handler)


for _action in CONTROL:
    _control_route(_action)


@router.post("/{job_id}/priority", response_model=ControlAccepted, status_code=202, dependencies=WRITE,
             responses=WRITE_ERRORS)
def reprioritise(job_id: str, body: Reprioritise, r: RedisDep) -> dict:
    result = trainer.reprioritise(r, job_id, body.priority, front=body.front)
    return {"job_id": job_id, "action": f"priority:{body.priority}", "result": _jsonable(result)}
