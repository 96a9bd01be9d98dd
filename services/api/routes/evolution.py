"""Evolution: jobs with snapshots, curves, the example browser, one example's history, one step, export."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from services.api.deps import READ, RedisDep
from services.api.exceptions import NotFound, found
from services.api.problems import NOT_FOUND, READ_ERRORS
from services.api.schemas_evolution import (
    ComparePublic,
    CurvePointPublic,
    EvolutionExport,
    EvolutionJobList,
    ExampleHistoryPublic,
    ExamplePage,
    StepSnapshotPublic,
)
from services.evaluator import api as evolution

router = APIRouter(prefix="/api/evolution", tags=["evolution"], dependencies=READ,
                   responses={**READ_ERRORS, **NOT_FOUND})

ERRORS = {**READ_ERRORS, **NOT_FOUND}


def _known_job(r: Any, job_id: str) -> None:
    jobs = evolution.list_jobs(r)
    ids = {j.get("job_id", j.get("id")) if isinstance(j, dict) else j for j in jobs}
    if job_id not in ids:
        raise NotFound(f"no evolution snapshots for job {job_id}")


@router.get("", response_model=EvolutionJobList)
def evolution_jobs(r: RedisDep) -> dict:
    """Jobs that have evolution snapshots."""
    jobs = evolution.list_jobs(r)
    return {"data": jobs, "count": len(jobs)}


@router.get("/compare", response_model=ComparePublic, responses={**ERRORS, 422: {"description": "no shared example"}})
def compare(r: RedisDep, jobs: Annotated[str, Query(description="job ids, comma-separated; the first is A",
                                                    examples=["job-a,job-b"])],
            fmt: Annotated[Literal["json", "csv"], Query()] = "json") -> Any:
    """The tracked examples the jobs share (by id or the same text), each run's state and final metrics and the
    difference from the first job, sorted by the largest change; and all runs' curves on one axis (steps, or
    the fraction of training when their lengths differ). 422 when they share no example; a warning when
    their base models differ."""
    ids = [j.strip() for j in jobs.split(",") if j.strip()]
    for job_id in ids:
        _known_job(r, job_id)
    out = evolution.compare(r, ids)
    if fmt == "csv":
        return Response(evolution.compare_csv(out), media_type="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="compare.csv"'})
    return out


@router.get("/{job_id}/curve", response_model=list[CurvePointPublic])
def curve(job_id: str, r: RedisDep) -> Any:
    """Aggregate curves per step: loss and each metric, train vs held-out, learned/forgotten/never counts."""
    _known_job(r, job_id)
    return found(evolution.curve(r, job_id), f"no evolution snapshots for job {job_id}")


@router.get("/{job_id}/examples", response_model=ExamplePage)
def examples(
    job_id: str, r: RedisDep,
    state: Annotated[Literal["learned", "forgotten", "never_learned"] | None, Query()] = None,
    region: Annotated[Literal["easy-to-learn", "ambiguous", "hard-to-learn"] | None, Query()] = None,
    split: Annotated[Literal["train", "heldout"] | None, Query()] = None,
    q: Annotated[str | None, Query(max_length=200, description="text search in id/question/target/prediction")] = None,
    sort: Annotated[str, Query(pattern=r"^-?(idx|learned_at|loss|confidence|f1|forgetting)$",
                               description="field, '-' in front for descending")] = "idx",
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> Any:
    """The tracked examples of a job, filtered and sorted (a page with data and count)."""
    _known_job(r, job_id)
    out = evolution.examples(r, job_id, state=state, region=region, q=q or None, sort=sort,
                 offset=offset, limit=limit, **({"split": split} if split else {}))
    if isinstance(out, list):
        return {"data": out, "count": len(out), "offset": offset, "limit": limit}
    return out


@router.get("/{job_id}/examples/{idx}", response_model=ExampleHistoryPublic)
def example_history(job_id: str, idx: int, r: RedisDep) -> Any:
    """One example at every step: prediction, metrics and a structured diff against the target."""
    return _one(r, job_id, lambda: evolution.example_history(r, job_id, idx), f"no tracked example {idx} in job {job_id}")


@router.get("/{job_id}/steps/{step}", response_model=StepSnapshotPublic)
def step_snapshot(job_id: str, step: int, r: RedisDep) -> Any:
    """Every tracked example at one step."""
    return _one(r, job_id, lambda: evolution.step_snapshot(r, job_id, step), f"no snapshot at step {step} of job {job_id}")


def _one(r: Any, job_id: str, read: Callable[[], Any], missing: str) -> Any:
    """One item of a known job; the read model calls an unknown index or step a bad query, for a URL it is a 404."""
    _known_job(r, job_id)
    try:
        return found(read(), missing)
    except evolution.InvalidQueryError as exc:
        raise NotFound(missing) from exc


@router.get("/{job_id}/export", response_class=Response, responses={200: {
    "model": EvolutionExport, "description": "the evolution as JSON, or as CSV with ?fmt=csv",
    "content": {"text/csv": {"schema": {"type": "string"}}}}})
def export(job_id: str, r: RedisDep, fmt: Annotated[Literal["json", "csv"], Query()] = "json") -> Response:
    """The whole evolution of a job as JSON or CSV."""
    _known_job(r, job_id)
    body = evolution.export(r, job_id, fmt=fmt)
    if not isinstance(body, (str, bytes)):
        import json

        body = json.dumps(body, default=str)
    media = "text/csv" if fmt == "csv" else "application/json"
    return Response(body, media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="evolution-{job_id}.{fmt}"'})
