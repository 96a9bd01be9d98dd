"""Keeping the bucket honest: verify (and repair from the replica), rebuild Redis from S3, inventory,
backup status and the local disk guard (``gc``)."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.registry.context import Registry
from services.registry.handlers import version_stored_event
from services.registry.projection import VersionsProjection, get_aliases, get_version, list_versions
from shared import storage
from shared.bus import publish
from shared.events import (
    AliasMoved,
    Event,
    RegistryVerifyFailed,
    VersionProtected,
    VersionReplicated,
    VersionTrashed,
)
from shared.projection import ProjectionRunner

log = logging.getLogger(__name__)
Progress = Callable[[str, int], None]  # (what, bytes) after each item


@dataclass
class VerifyReport:
    checked_blobs: int = 0
    checked_bytes: int = 0
    missing: list[str] = field(default_factory=list)  # "blob:<sha256>" or "manifest:<version id>"
    corrupt: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    unrepaired: list[str] = field(default_factory=list)
    affected_versions: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.corrupt) or not self.unrepaired and bool(self.repaired)


def blob_index(reg: Registry) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """(version id -> manifest, sha256 -> {"size", "versions"}) over the primary bucket."""
    manifests = {vid: reg.primary.manifest(vid) for vid in reg.primary.list_version_ids()}
    blobs: dict[str, dict[str, Any]] = {}
    for vid, m in manifests.items():
        for f in m["files"]:
            blobs.setdefault(f["sha256"], {"size": f["size"], "versions": []})["versions"].append(vid)
    return manifests, blobs


def verify(reg: Registry, repair: bool = False, progress: Progress | None = None) -> VerifyReport:
    """Rehash every blob of every version; with ``repair``, restore bad ones from the replica (verified)."""
    report = VerifyReport()
    manifests, blobs = blob_index(reg)
    affected: set[str] = set()
    for digest, info in sorted(blobs.items()):
        got = reg.primary.hash_blob(digest)
        report.checked_blobs += 1
        report.checked_bytes += info["size"]
        if got != digest:
            (report.missing if got is None else report.corrupt).append(f"blob:{digest}")
            affected.update(info["versions"])
            if repair:
                _repair_blob(reg, digest, info["size"], report)
        if progress:
            progress(digest, info["size"])
    for v in _view_versions(reg):  # versions the view knows whose manifest left the bucket
        if v not in manifests:
            report.missing.append(f"manifest:{v}")
            affected.add(v)
            if repair:
                doc = reg.replica.get_json(storage.manifest_key(v))
                if doc is not None:
                    for f in doc["files"]:
                        if not reg.primary.has_blob(f["sha256"], f["size"]):
                            _repair_blob(reg, f["sha256"], f["size"], report)
                    reg.primary.put_manifest(doc)
                    report.repaired.append(f"manifest:{v}")
                else:
                    report.unrepaired.append(f"manifest:{v}")
    report.affected_versions = sorted(affected)
    if report.missing or report.corrupt:
        reg.emit("registry.verify_failed", RegistryVerifyFailed(
            missing=report.missing, corrupt=report.corrupt, repaired=report.repaired))
    return report


def _view_versions(reg: Registry) -> list[str]:
    return [v["version_id"] for v in list_versions(reg.r, include_trashed=True)]


def _repair_blob(reg: Registry, digest: str, size: int, report: VerifyReport) -> None:
    try:
        with tempfile.TemporaryDirectory(dir=reg.tmp_dir) as tmp:
            local = reg.replica.fetch_blob(digest, Path(tmp) / digest)  # raises unless the hash matches
            reg.primary.put_blob(local, digest, force=True)
        if reg.primary.hash_blob(digest) != digest:
            raise RuntimeError("still wrong after re-upload")
        report.repaired.append(f"blob:{digest}")
    except Exception as exc:  # noqa: BLE001 - reported, the rest still gets repaired
        log.error("cannot repair blob %s from the replica: %s", digest, exc)
        report.unrepaired.append(f"blob:{digest}")


@dataclass
class RebuildFromS3Report:
    versions: int = 0
    aliases: int = 0
    republished: int = 0
    skipped_unreadable: list[str] = field(default_factory=list)


def rebuild_from_s3(reg: Registry, catch_up: bool = True) -> RebuildFromS3Report:
    """Re-publish what the bucket holds (versions, pins, trash, aliases, replicas) that the view lacks.

    After a FLUSHALL this reconstructs the versions view from S3 alone; on a healthy view it publishes
    nothing. Events carry ``rebuilt=True`` where the payload has it, so other services need not react."""
    report = RebuildFromS3Report()
    location = reg.replica.location
    events = []
    for vid in reg.primary.list_version_ids():
        try:
            manifest = reg.primary.manifest(vid)
        except Exception as exc:  # noqa: BLE001 - an unreadable manifest is reported, not fatal
            report.skipped_unreadable.append(f"{vid}: {exc}")
            continue
        report.versions += 1
        view = get_version(reg.r, vid)
        state = reg.primary.get_state(vid)
        job_id = (manifest.get("lineage") or {}).get("job_id")
        if view is None:
            events.append(version_stored_event(manifest, rebuilt=True))
        if state.get("pinned") and not (view and view.get("pinned")):
            events.append(_ev("version.protected", VersionProtected(
                version_id=vid, protected=True, reason=state.get("pin_reason", "")), job_id))
        if state.get("trashed_at") and not (view and view.get("trashed_at")):
            events.append(_ev("version.trashed", VersionTrashed(
                version_id=vid, retention_days=float(state.get("retention_days") or 0),
                trashed_at=state["trashed_at"]), job_id))
        if not (view and location in view.get("replicas", [])) and reg.replica.has_manifest(vid):
            events.append(_ev("version.replicated", VersionReplicated(version_id=vid, replica=location), job_id))
    live = get_aliases(reg.r)
    for alias, doc in sorted(reg.primary.list_aliases().items()):
        report.aliases += 1
        if live.get(alias) != doc.get("version_id"):
            events.append(_ev("alias.moved", AliasMoved(
                alias=alias, version_id=doc["version_id"], previous=doc.get("previous"),
                target=doc.get("target"), metric=doc.get("metric"), value=doc.get("value"), rebuilt=True), None))
    for event in events:
        publish(reg.r, event)
    report.republished = len(events)
    if catch_up:
        ProjectionRunner(reg.r, VersionsProjection()).catch_up()
    return report


def _ev(type_: str, payload: Any, job_id: str | None) -> Event:
    return Event.create(type_, payload, job_id=job_id)


def inventory(reg: Registry) -> dict[str, Any]:
    """Everything the bucket stores: per version its size, lineage, aliases, state and where copies live."""
    manifests, blobs = blob_index(reg)
    aliases = reg.primary.list_aliases()
    rows = []
    for vid, m in sorted(manifests.items(), key=lambda kv: (kv[1].get("created_at") or "", kv[0])):
        state = reg.primary.get_state(vid)
        lineage = m.get("lineage") or {}
        rows.append({
            "version_id": vid, "kind": m["kind"], "name": m.get("name", ""), "note": m.get("note", ""),
            "created_at": m.get("created_at"), "files": len(m["files"]),
            "size": sum(f["size"] for f in m["files"]),
            "aliases": sorted(a for a, d in aliases.items() if d.get("version_id") == vid),
            "pinned": bool(state.get("pinned")), "trashed_at": state.get("trashed_at"),
            "lineage": {k: lineage.get(k) for k in ("job_id", "step", "base_model", "base_version_id",
                                                    "dataset_version_id", "parent_version_id", "source_path")},
            "copies": [reg.primary.location] + ([reg.replica.location] if reg.replica.has_manifest(vid) else []),
        })
    return {
        "versions": rows, "count": len(rows), "logical_bytes": sum(r["size"] for r in rows),
        "stored_bytes": sum(b["size"] for b in blobs.values()), "blobs": len(blobs),
        "primary": reg.primary.location, "replica": reg.replica.location,
    }
