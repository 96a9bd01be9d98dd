"""The bucket budget: what a thinning would remove and why the rest stays; carrying it out."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from services.api.deps import READ, WRITE, RedisDep, RegistryCtxDep
from services.api.problems import READ_ERRORS, WRITE_ERRORS
from services.api.schemas_registry import StorageApplyPublic, StoragePlanPublic
from services.registry.budget import storage_apply, storage_plan
from services.trainer.projection import list_jobs

router = APIRouter(prefix="/api/storage", tags=["storage"])

FINISHED = {"completed", "failed", "cancelled", "stopped", "skipped"}


def unfinished_jobs(r: Any) -> set[str]:
    """Jobs that may still train (running, paused, queued, preempted): everything of theirs stays."""
    return {j["id"] for j in list_jobs(r) if j.get("state") not in FINISHED}


@router.get("/plan", response_model=StoragePlanPublic, dependencies=READ, responses=READ_ERRORS)
def plan(r: RedisDep, reg: RegistryCtxDep) -> dict[str, Any]:
    """Against ``TRAINYARD_BUCKET_BUDGET_GB``: each version, whether it would go and every reason it stays."""
    return storage_plan(reg, unfinished_jobs(r)).as_dict()


@router.post("/apply", response_model=StorageApplyPublic, dependencies=WRITE, responses=WRITE_ERRORS)
def apply(r: RedisDep, reg: RegistryCtxDep) -> dict[str, Any]:
    """Plan again now and remove what it names (trash + purge, each guarded and an event)."""
    report = storage_apply(reg, unfinished_jobs(r))
    return {"plan": report.plan.as_dict(), "removed": report.removed, "refused": report.refused,
            "bytes_freed": report.bytes_freed}
