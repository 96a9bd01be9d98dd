"""Protection, soft deletion and purging. Every change is written to the version's S3 state document (the
truth a rebuild reads) and then published as an event.

Protected = pinned by a user, or named by any alias (``latest``, ``best``, ``production:<target>`` = a
deployment, user aliases). Protected versions cannot be trashed; purging needs the trash retention to have
passed AND a hash-verified copy in the replica; an override naming the version id skips the retention,
never the replica check.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from services.registry.context import Registry
from services.registry.exceptions import NotFoundError, ProtectedError, PurgeRefusedError
from services.registry.replica import replica_has
from services.registry.versioning import now_iso, purge_refusal
from shared import storage
from shared.events import VersionProtected, VersionPurged, VersionRestored, VersionTrashed

log = logging.getLogger(__name__)


def _require(reg: Registry, version_id: str) -> dict:
    if not reg.primary.has_manifest(version_id):
        raise NotFoundError(f"no version {version_id}")
    return reg.primary.get_state(version_id)


def protection_reasons(reg: Registry, version_id: str) -> list[str]:
    """Why a version is protected, from the bucket (pins and aliases); empty when it is not."""
    state = reg.primary.get_state(version_id)
    reasons = [f"it is pinned ({state.get('pin_reason') or 'by request'})"] if state.get("pinned") else []
    for alias, doc in sorted(reg.primary.list_aliases().items()):
        if doc.get("version_id") == version_id:
            deployed = f" (deployed to {alias.split(':', 1)[1]})" if alias.startswith("production:") else ""
            reasons.append(f"alias {alias!r} points to it{deployed}")
    return reasons


def protect(reg: Registry, version_id: str, reason: str = "") -> None:
    state = _require(reg, version_id)
    reg.primary.put_state(version_id, {**state, "pinned": True, "pin_reason": reason})
    reg.emit("version.protected", VersionProtected(version_id=version_id, protected=True, reason=reason))


def unprotect(reg: Registry, version_id: str) -> None:
    state = _require(reg, version_id)
    reg.primary.put_state(version_id, {**state, "pinned": False, "pin_reason": ""})
    reg.emit("version.protected", VersionProtected(version_id=version_id, protected=False))


def trash(reg: Registry, version_id: str) -> str:
    """Move a version to the trash (soft delete). Returns when it may be purged. Refused when protected."""
    state = _require(reg, version_id)
    reasons = protection_reasons(reg, version_id)
    if reasons:
        raise ProtectedError(f"refusing to delete {version_id}: it is protected because " + "; ".join(reasons)
                             + ". Move the alias or unprotect it first.")
    if state.get("trashed_at"):
        return state["trashed_at"]
    trashed_at = now_iso()
    days = reg.settings.trash_retention_days
    reg.primary.put_state(version_id, {**state, "trashed_at": trashed_at, "retention_days": days})
    reg.emit("version.trashed", VersionTrashed(version_id=version_id, retention_days=days, trashed_at=trashed_at))
    return trashed_at


def restore(reg: Registry, version_id: str) -> None:
    state = _require(reg, version_id)
    if not state.get("trashed_at"):
        return
    reg.primary.put_state(version_id, {**state, "trashed_at": None, "retention_days": None})
    reg.emit("version.restored", VersionRestored(version_id=version_id))


@dataclass(frozen=True)
class PurgeResult:
    version_id: str
    blobs_deleted: int
    bytes_freed: int
    override: bool


def purge(reg: Registry, version_id: str, override: str | None = None) -> PurgeResult:
    """Delete a trashed version from the primary bucket for good (the replica keeps its copy)."""
    state = _require(reg, version_id)
    manifest = reg.primary.manifest(version_id)
    replicated = bool(state.get("trashed_at")) and replica_has(reg, manifest, deep=True)
    refusal = purge_refusal(version_id=version_id, trashed_at=state.get("trashed_at"),
                            retention_days=float(state.get("retention_days") or reg.settings.trash_retention_days),
                            replicated=replicated, override=override)
    if refusal:
        raise PurgeRefusedError(refusal)
    reasons = protection_reasons(reg, version_id)
    if reasons:
        raise ProtectedError(f"refusing to purge {version_id}: " + "; ".join(reasons))
    still_used: set[str] = set()
    for other in reg.primary.list_version_ids():
        if other != version_id:
            still_used.update(f["sha256"] for f in reg.primary.manifest(other)["files"])
    deleted = freed = 0
    for f in manifest["files"]:
        if f["sha256"] not in still_used and reg.primary.has_blob(f["sha256"]):
            reg.primary.delete_key(storage.blob_key(f["sha256"]))
            deleted, freed = deleted + 1, freed + f["size"]
            still_used.add(f["sha256"])  # a digest listed twice is deleted once
    reg.primary.delete_key(storage.manifest_key(version_id))
    reg.primary.delete_key(f"state/{version_id}.json")
    reg.emit("version.purged", VersionPurged(version_id=version_id, override=override is not None))
    log.warning("purged %s (%d blobs, %d bytes freed; override=%s)", version_id, deleted, freed, override is not None)
    return PurgeResult(version_id, deleted, freed, override is not None)
