"""The local disk guard (``trainyard gc``): free checkpoint and model directories only where every file is
stored and verified in the registry and its versions have a verified replica copy, so deleting a folder never
leaves a model with a single copy. A dry run by default; every decision comes with its reason."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from services.registry.context import Registry
from services.registry.maintenance import blob_index
from services.registry.replica import replica_has
from shared import storage

Progress = Callable[[str, int], None]


@dataclass
class GcItem:
    path: str
    safe: bool
    bytes: int
    reason: str
    removed: bool = False


def gc(reg: Registry, paths: list[Path], dry_run: bool = True, progress: Progress | None = None) -> list[GcItem]:
    """Free local directories only where every file is stored in a live (not trashed) version and its blob
    is present in the bucket with the same size and recorded sha256. Dry run by default."""
    manifests, blobs = blob_index(reg)
    live = {vid for vid in manifests if not reg.primary.get_state(vid).get("trashed_at")}
    items = []
    for root in paths:
        items.append(_gc_one(reg, Path(root), blobs, live, manifests, dry_run, progress))
    return items


def _gc_one(reg: Registry, root: Path, blobs: dict, live: set[str], manifests: dict, dry_run: bool,
            progress: Progress | None) -> GcItem:
    if not root.is_dir():
        return GcItem(str(root), False, 0, "not a directory")
    try:
        files = storage.list_files(root)
    except ValueError as exc:
        return GcItem(str(root), False, 0, f"kept: {exc}")
    replicated = cache(lambda vid: replica_has(reg, manifests[vid]))
    total, versions, problems = 0, set(), []
    for p in files:
        rel, size = p.relative_to(root).as_posix(), p.stat().st_size
        total += size
        digest = storage.sha256_file(p)
        info = blobs.get(digest)
        owners = set(info["versions"]) & live if info else set()
        stat = reg.primary.stat_blob(digest) if owners else None
        backed = {v for v in owners if replicated(v)}
        if not owners:
            problems.append(f"{rel} is in no stored version")
        elif stat is None or stat.size != size or (stat.metadata or {}).get("x-amz-meta-sha256") not in (None, digest):
            problems.append(f"{rel}: its blob is missing or wrong in the bucket (run `trainyard registry verify`)")
        elif not backed:
            problems.append(f"{rel}: no version holding it has a verified replica copy yet, so this folder is its "
                            "second copy (see `trainyard backup status`)")
        else:
            versions.update(backed)
        if progress:
            progress(rel, size)
    if not files:
        return GcItem(str(root), False, 0, "kept: empty directory (nothing to free)")
    if problems:
        return GcItem(str(root), False, total, "kept: " + "; ".join(problems[:5])
                      + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""))
    reason = (f"safe: all {len(files)} files ({total} bytes) are stored and verified in version(s) "
              f"{', '.join(sorted(versions))}, and in the replica")
    if not dry_run:
        shutil.rmtree(root)
    return GcItem(str(root), True, total, reason, removed=not dry_run)
