"""Registry health and backup status."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.api import backends as b
from services.api.deps import READ, WRITE, RedisDep, RegistryCtxDep, RegistryDep
from services.api.problems import READ_ERRORS, WRITE_ERRORS
from services.api.schemas import BackupStatus, BestAlias, RegistryHealth, VerifyReportPublic
from services.api.schemas_registry import GcCheckBody, GcVerdict, Inventory
from shared import streams

router = APIRouter(prefix="/api/registry", tags=["registry"])


@router.get("/health", response_model=RegistryHealth, dependencies=READ, responses=READ_ERRORS)
def registry_health(r: RedisDep, registry: RegistryDep) -> dict[str, Any]:
    """Is the bucket reachable, how many versions, anything dead-lettered or failing verification."""
    try:
        bucket_ok = registry.s3.bucket_exists(registry.bucket)
        s3_error = None
    except Exception as exc:  # noqa: BLE001 - reported, not raised: this is a health page
        bucket_ok, s3_error = False, f"{type(exc).__name__}: {exc}"
    have_view = b.available(b.REGISTRY_PROJECTION)
    versions = b.call(b.REGISTRY_PROJECTION, "list_versions", r, include_trashed=True) if have_view else []
    failure = b.call(b.REGISTRY_PROJECTION, "last_verify_failure", r) if have_view else None
    return {"bucket": registry.bucket, "bucket_reachable": bucket_ok, "s3_error": s3_error,
            "versions": len(versions), "trashed": sum(1 for v in versions if v.get("trashed_at")),
            "dead_lettered": r.xlen(streams.DEAD_LETTER), "last_verify_failed": failure}


@router.get("/backup", response_model=BackupStatus, dependencies=READ, responses=READ_ERRORS)
def backup_status(reg: RegistryCtxDep) -> Any:
    """What is replicated and what is not yet: a ``summary`` sentence, ``warnings`` and a row per version."""
    return b.call(b.REGISTRY_COMMANDS, "backup_status", reg)


@router.get("/best", response_model=BestAlias, dependencies=READ, responses=READ_ERRORS)
def best_alias(reg: RegistryCtxDep) -> Any:
    """Which version ``best`` names, by which metric and value, and the rule it follows."""
    return b.call(b.REGISTRY_COMMANDS, "best_status", reg)


@router.post("/verify", response_model=VerifyReportPublic, status_code=200, dependencies=WRITE, responses=WRITE_ERRORS)
def verify(reg: RegistryCtxDep, repair: Annotated[bool, Query()] = False) -> dict[str, Any]:
    """Rehash every blob; report missing or corrupt ones (``repair`` restores them from the replica)."""
    report = b.call(b.REGISTRY_COMMANDS, "verify", reg, repair=repair)
    out = dataclasses.asdict(report) if dataclasses.is_dataclass(report) else dict(report)
    out["ok"] = bool(getattr(report, "ok", not (out.get("missing") or out.get("corrupt"))))
    return out


@router.get("/inventory", response_model=Inventory, dependencies=READ, responses=READ_ERRORS)
def inventory(reg: RegistryCtxDep) -> dict[str, Any]:
    """Everything the bucket stores: per version its size, lineage, aliases, state and where copies live."""
    return b.call(b.REGISTRY_COMMANDS, "inventory", reg)


@router.post("/gc-check", response_model=list[GcVerdict], dependencies=WRITE, responses=WRITE_ERRORS)
def gc_check(body: GcCheckBody, reg: RegistryCtxDep) -> list[dict[str, Any]]:
    """May these directories (described by the client: each file's path, sha256 and size) be deleted? A folder
    is safe when every file is stored and verified in a live version that the replica also holds. Deletes
    nothing: ``trainyard gc`` hashes its local folders, asks here, and frees them itself."""
    items = b.call(b.REGISTRY_COMMANDS, "judge", reg, [d.model_dump() for d in body.dirs])
    return [dataclasses.asdict(i) for i in items]
