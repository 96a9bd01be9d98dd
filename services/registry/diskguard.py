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
    listed = [describe(Path(root), progress) for root in paths]
    items = judge(reg, [d for d in listed if isinstance(d, dict)])
    verdicts = iter(items)
    out = [d if isinstance(d, GcItem) else next(verdicts) for d in listed]
    if not dry_run:
        for item in out:
            if item.safe:
                shutil.rmtree(item.path)
                item.removed = True
    return out


def describe(root: Path, progress: Progress | None = None) -> dict | GcItem:
    """A local directory as ``{"path", "files": [{"path", "sha256", "size"}]}`` (what ``judge`` takes), or
    the reason it is kept without asking the bucket."""
    if not root.is_dir():
        return GcItem(str(root), False, 0, "not a directory")
    try:
        files = storage.list_files(root)
    except ValueError as exc:
        return GcItem(str(root), False, 0, f"kept: {exc}")
    if not files:
        return GcItem(str(root), False, 0, "kept: empty directory (nothing to free)")
    described = []
    for p in files:
        rel, size = p.relative_to(root).as_posix(), p.stat().st_size
        described.append({"path": rel, "sha256": storage.sha256_file(p), "size": size})
        if progress:
            progress(rel, size)
    return {"path": str(root), "files": described}


def judge(reg: Registry, dirs: list[dict]) -> list[GcItem]:
    """Whether each described directory may be freed (``safe``) and why; deletes nothing. The CLI hashes
    its own folders (``describe``) and asks this through the API."""
    if not dirs:
        return []
    manifests, blobs = blob_index(reg)
    live = {vid for vid in manifests if not reg.primary.get_state(vid).get("trashed_at")}
    return [_verdict(reg, d["path"], d["files"], blobs, live, manifests) for d in dirs]


def _verdict(reg: Registry, root: str, files: list[dict], blobs: dict, live: set[str], manifests: dict) -> GcItem:
    replicated = cache(lambda vid: replica_has(reg, manifests[vid]))
    total, versions, problems = 0, set(), []
    for f in files:
        rel, size, digest = f["path"], int(f["size"]), f["sha256"]
        total += size
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
    if not files:
        return GcItem(root, False, 0, "kept: empty directory (nothing to free)")
    if problems:
        return GcItem(root, False, total, "kept: " + "; ".join(problems[:5])
                      + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""))
    reason = (f"safe: all {len(files)} files ({total} bytes) are stored and verified in version(s) "
              f"{', '.join(sorted(versions))}, and in the replica")
    return GcItem(root, True, total, reason)
