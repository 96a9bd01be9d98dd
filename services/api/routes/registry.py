"""Registry health and backup status."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.api import backends as b
from services.api.deps import READ, WRITE, RedisDep, RegistryDep, S3Dep, SettingsDep
from services.api.problems import READ_ERRORS, WRITE_ERRORS
from services.api.routes.versions import registry_settings
from shared import streams

router = APIRouter(prefix="/api/registry", tags=["registry"])


@router.get("/health", dependencies=READ, responses=READ_ERRORS)
def registry_health(r: RedisDep, registry: RegistryDep) -> dict[str, Any]:
    """Is the bucket reachable, how many versions, anything dead-lettered or failing verification."""
    try:
        bucket_ok = registry.s3.bucket_exists(registry.bucket)
        s3_error = None
    except Exception as exc:  # noqa: BLE001 - reported, not raised: this is a health page
        bucket_ok, s3_error = False, f"{type(exc).__name__}: {exc}"
    versions = b.call(b.REGISTRY_PROJECTION, "list_versions", r, include_trashed=True) \
        if b.available(b.REGISTRY_PROJECTION) else []
    verify_failed = [e for _, e in _last(r, streams.REGISTRY, 200) if e.get("type") == "registry.verify_failed"]
    return {"bucket": registry.bucket, "bucket_reachable": bucket_ok, "s3_error": s3_error,
            "versions": len(versions), "trashed": sum(1 for v in versions if v.get("trashed")),
            "dead_lettered": r.xlen(streams.DEAD_LETTER), "last_verify_failed": verify_failed[:1]}


def _last(r: Any, stream: str, n: int) -> list[tuple[str, dict]]:
    import json

    out = []
    for eid, fields in r.xrevrange(stream, count=n):
        raw = fields.get(b"event") or fields.get("event")
        try:
            out.append((eid.decode() if isinstance(eid, bytes) else eid, json.loads(raw)))
        except (TypeError, ValueError):
            continue
    return out


@router.get("/backup", dependencies=READ, responses=READ_ERRORS)
def backup_status(settings: SettingsDep, r: RedisDep, s3: S3Dep, registry: RegistryDep) -> Any:
    """What is replicated and what is not yet."""
    return b.call_with(b.REGISTRY_COMMANDS, "backup_status", settings=registry_settings(settings), r=r, s3=s3,
                       registry=registry)


@router.post("/verify", status_code=200, dependencies=WRITE, responses=WRITE_ERRORS)
def verify(settings: SettingsDep, r: RedisDep, s3: S3Dep, registry: RegistryDep,
           repair: Annotated[bool, Query()] = False) -> Any:
    """Rehash every blob; report missing or corrupt ones (``repair`` restores them from the replica)."""
    return b.call_with(b.REGISTRY_COMMANDS, "verify", settings=registry_settings(settings), r=r, s3=s3,
                       registry=registry, repair=repair)
