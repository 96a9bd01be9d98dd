"""The replica worker: copies every stored version to a second S3 target, verified by hash.

Each blob is downloaded from the primary (its sha256 checked), uploaded to the replica (size and ETag of
the bytes sent checked by the replica's answer), and the manifest is written to the replica last; then
``version.replicated`` is published. Runs as consumer group ``registry-replica`` on the REGISTRY stream.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from services.registry.context import Registry
from services.registry.exceptions import NotFoundError
from services.registry.projection import get_version
from shared.bus import Consumer, ConsumerConfig
from shared.events import Event, VersionReplicated, VersionStored

log = logging.getLogger(__name__)
GROUP = "registry-replica"


def replica_has(reg: Registry, manifest: dict[str, Any], deep: bool = False) -> bool:
    """Whether the replica holds the version: its manifest and every blob (rehashed when ``deep``)."""
    if not reg.replica.has_manifest(manifest["version_id"]):
        return False
    for f in manifest["files"]:
        if deep:
            if reg.replica.hash_blob(f["sha256"]) != f["sha256"]:
                return False
        elif not reg.replica.has_blob(f["sha256"], f["size"]):
            return False
    return True


def copy_blob(reg: Registry, digest: str, size: int, src: Any = None, dst: Any = None) -> int:
    """Copy one blob between clients (primary -> replica by default), verified. Returns bytes sent."""
    src = src or reg.primary
    dst = dst or reg.replica
    if dst.has_blob(digest, size):
        return 0
    with tempfile.TemporaryDirectory(dir=reg.tmp_dir) as tmp:
        local = src.fetch_blob(digest, Path(tmp) / digest)
        _, _, sent = dst.put_blob(local, digest)
    return sent


def replicate_version(reg: Registry, version_id: str, cause: Event | None = None) -> bool:
    """Copy one version to the replica; publish ``version.replicated`` unless the view already shows it."""
    manifest = reg.primary.manifest(version_id)
    sent = 0
    for f in manifest["files"]:
        sent += copy_blob(reg, f["sha256"], f["size"])
    if not reg.replica.has_manifest(version_id):
        reg.replica.put_manifest(manifest)
    location = reg.replica.location
    view = get_version(reg.r, version_id)
    if view is None or location not in view.get("replicas", []):
        reg.emit("version.replicated", VersionReplicated(version_id=version_id, replica=location),
                 job_id=(manifest.get("lineage") or {}).get("job_id"), cause=cause)
    log.info("replicated %s to %s (%d bytes sent)", version_id, location, sent)
    return True


def replicate_pending(reg: Registry) -> list[str]:
    """Replicate every primary version the replica lacks (a sweep; the worker normally does it on events)."""
    done = []
    for version_id in reg.primary.list_version_ids():
        manifest = reg.primary.manifest(version_id)
        view = get_version(reg.r, version_id)
        if not replica_has(reg, manifest) or view is None or reg.replica.location not in view["replicas"]:
            replicate_version(reg, version_id)
            done.append(version_id)
    return done


def on_version_stored(reg: Registry, event: Event) -> None:
    p = event.typed()
    assert isinstance(p, VersionStored)
    try:
        replicate_version(reg, p.version_id, cause=event)
    except NotFoundError:
        log.warning("version %s vanished from the primary before replication (purged?)", p.version_id)


def replica_consumer(reg: Registry, consumer: str = "replica-1") -> Consumer:
    from shared import streams

    config = ConsumerConfig(group=GROUP, consumer=consumer, streams=(streams.REGISTRY,))
    return Consumer(reg.r, config, {"version.stored": lambda e: on_version_stored(reg, e)})
