"""What the model trains on: a job's first examples as the trainer receives them, or an upload's before submit.

Both run ``services.trainer.preview``, the training code path itself (features + the job's collator).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, UploadFile

from services.api import uploads
from services.api.deps import READ, WRITE, RedisDep, S3Dep, SettingsDep
from services.api.exceptions import Conflict
from services.api.problems import NOT_FOUND, READ_ERRORS, WRITE_ERRORS
from services.api.routes.jobs import load_job
from services.api.schemas_preview import PreviewPublic
from services.trainer import api as trainer

router = APIRouter(prefix="/api/jobs", tags=["jobs"])
Count = Annotated[int, Query(ge=1, le=64, description="examples to show with their tokens")]


@router.get("/{job_id}/preview", response_model=PreviewPublic, response_model_by_alias=True, dependencies=READ, responses={**READ_ERRORS, **NOT_FOUND})
def job_preview(job_id: str, settings: SettingsDep, r: RedisDep, s3: S3Dep, n: Count = 8) -> dict[str, Any]:
    """The job's first ``n`` training examples exactly as the trainer receives them: rendered template, tokens,
    which tokens carry loss, examples cut by ``max_seq_len``, the length histogram and (packing) the rows."""
    job = load_job(r, job_id)
    spec = job.get("spec") or {}
    if not spec.get("dataset_sha256"):
        raise Conflict(f"job {job_id} has no stored dataset to preview")
    cache = Path(settings.uploads_dir) / "preview-cache"
    out = trainer.job_preview(settings, s3, spec, cache, n)
    return {"job_id": job_id, **out}


@router.post("/preview", response_model=PreviewPublic, response_model_by_alias=True, dependencies=WRITE, responses=WRITE_ERRORS)
def upload_preview(
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="dataset: JSONL, as for POST /api/jobs/upload")],
    spec: Annotated[str, Form(description="JobSpec overrides as a JSON object")] = "{}",
    n: Annotated[int, Form(ge=1, le=64)] = 8,
) -> dict[str, Any]:
    """Preview a dataset before submitting it: nothing is stored or queued."""
    overrides = uploads.spec_overrides(spec)
    job_spec = trainer.parse_spec(overrides)
    upload = uploads.save(Path(settings.uploads_dir) / "preview", file)
    try:
        with uploads.named_as_sent(upload):
            return trainer.preview_file(upload.path, job_spec, n)
    finally:
        shutil.rmtree(upload.path.parent, ignore_errors=True)  # a preview keeps nothing
