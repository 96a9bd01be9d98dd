"""Reactions to other services' events (consumer group ``registry``).

* ``checkpoint.saved`` -> one adapter version (idempotent), ``latest`` (and maybe ``best``) moved, then
  ``version.stored``, published in the same transaction as the "already published" marker.
* ``dataset.stored`` (the trainer's submit stored the file) -> ``version.stored`` of kind dataset, so the
  versions view and the replica see datasets too.
* ``snapshot.captured`` -> ``best`` moved when the evaluation metric improved.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from services.registry.aliases import consider_best, set_alias
from services.registry.context import PUBLISHED_KEY, Registry
from services.registry.projection import get_version, list_versions
from services.registry.store import Stored, store_version
from services.registry.versioning import VersionKind, dataset_version_id, normalise_files
from shared import storage
from shared.bus import Handler, publish
from shared.events import CheckpointSaved, DatasetStored, Event, SnapshotCaptured, VersionStored

log = logging.getLogger(__name__)


def version_stored_event(manifest: dict[str, Any], *, bytes_uploaded: int = 0, cause: Event | None = None,
                         rebuilt: bool = False) -> Event:
    lineage = manifest.get("lineage") or {}
    payload = VersionStored(
        version_id=manifest["version_id"], kind=manifest["kind"],
        manifest_key=storage.manifest_key(manifest["version_id"]), files=manifest["files"],
        step=lineage.get("step"), base_model=lineage.get("base_model"),
        dataset_sha256=lineage.get("dataset_sha256"), checkpoint_event_id=lineage.get("checkpoint_event_id"),
        final=bool(lineage.get("final")), bytes_uploaded=bytes_uploaded, name=manifest.get("name", ""),
        note=manifest.get("note", ""), created_at=manifest.get("created_at"),
        size=manifest.get("size") or sum(f["size"] for f in manifest["files"]), lineage=lineage, rebuilt=rebuilt,
    )
    return Event.create("version.stored", payload, job_id=lineage.get("job_id"), cause=cause)


def publish_stored(reg: Registry, source_id: str, stored: Stored, cause: Event | None = None) -> Event:
    """XADD ``version.stored`` and record ``source_id`` as published, atomically."""
    event = version_stored_event(stored.manifest, bytes_uploaded=stored.bytes_uploaded, cause=cause)
    pipe = reg.r.pipeline(transaction=True)
    publish(pipe, event)
    pipe.hset(PUBLISHED_KEY, source_id, stored.manifest["version_id"])
    pipe.execute()
    return event


def find_base_version(reg: Registry, base_model: str | None) -> str | None:
    """The stored base version a checkpoint was trained from, matched by name or by imported path."""
    if not base_model:
        return None
    keys = {base_model, str(Path(base_model).expanduser().resolve())}
    for v in reversed(list_versions(reg.r, kind="base")):
        if keys & {v.get("name"), (v.get("lineage") or {}).get("source_path")}:
            return v["version_id"]
    for key in reg.primary.list_keys("manifests/base-"):  # the view may lag (or be rebuilding): ask S3
        m = reg.primary.get_json(key) or {}
        if keys & {m.get("name"), (m.get("lineage") or {}).get("source_path")}:
            return m["version_id"]
    return None


def parent_version(reg: Registry, job_id: str | None, step: int) -> str | None:
    if not job_id:
        return None
    earlier = [v for v in list_versions(reg.r, kind="adapter", job_id=job_id, include_trashed=True)
               if (v.get("step") or 0) < step]
    return max(earlier, key=lambda v: v.get("step") or 0)["version_id"] if earlier else None


def on_checkpoint_saved(reg: Registry, event: Event) -> None:
    if reg.r.hexists(PUBLISHED_KEY, event.id):
        return  # redelivered after version.stored went out
    p = event.typed()
    assert isinstance(p, CheckpointSaved)
    files = normalise_files(f.model_dump() for f in p.files)
    ds_id = dataset_version_id(p.dataset_sha256)
    lineage = {
        "base_model": p.base_model, "base_version_id": find_base_version(reg, p.base_model),
        "dataset_sha256": p.dataset_sha256,
        "dataset_version_id": ds_id if ds_id and reg.primary.has_manifest(ds_id) else None,
        "job_id": event.job_id, "step": p.step, "parent_version_id": parent_version(reg, event.job_id, p.step),
        "spec": p.spec, "metrics": p.metrics, "checkpoint_event_id": event.id, "final": p.final,
        "tracked_key": p.tracked_key, "checkpoint_dir": p.checkpoint_dir,
    }
    name = f"{event.job_id or 'job'}@step{p.step}" + (" (final)" if p.final else "")
    stored = store_version(reg.primary, Path(p.checkpoint_dir), files, kind=VersionKind.ADAPTER, name=name,
                           lineage=lineage)
    version_id = stored.manifest["version_id"]
    set_alias(reg, "latest", version_id, cause=event)
    consider_best(reg, version_id, p.metrics, cause=event, spec_metric=(p.spec or {}).get("best_metric"))
    publish_stored(reg, event.id, stored, cause=event)
    log.info("checkpoint %s (job %s step %d) -> version %s, %d bytes uploaded", event.id, event.job_id, p.step,
             version_id, stored.bytes_uploaded)


def on_dataset_stored(reg: Registry, event: Event) -> None:
    p = event.typed()
    assert isinstance(p, DatasetStored)
    if reg.r.hexists(PUBLISHED_KEY, p.version_id) or get_version(reg.r, p.version_id) is not None:
        return
    manifest = reg.primary.manifest(p.version_id)
    publish_stored(reg, p.version_id, Stored(manifest, 0, False), cause=event)


def on_snapshot_captured(reg: Registry, event: Event) -> None:
    p = event.typed()
    assert isinstance(p, SnapshotCaptured)
    if p.version_id and reg.primary.has_manifest(p.version_id):
        spec = (reg.primary.manifest(p.version_id).get("lineage") or {}).get("spec") or {}
        consider_best(reg, p.version_id, p.aggregates, cause=event, spec_metric=spec.get("best_metric"))


def handlers(reg: Registry) -> dict[str, Handler]:
    return {
        "checkpoint.saved": lambda e: on_checkpoint_saved(reg, e),
        "dataset.stored": lambda e: on_dataset_stored(reg, e),
        "snapshot.captured": lambda e: on_snapshot_captured(reg, e),
    }
