"""Turning files on disk into a stored version: blobs first (each verified), the manifest last.

A manifest exists in the bucket only once every blob it names is stored and verified, so a crash halfway
leaves no version that cannot be materialised; storing it again uploads only what is missing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.registry.client import RegistryClient
from services.registry.exceptions import InvalidInputError, PickledWeightsError
from services.registry.versioning import VersionKind, build_manifest, refuse_pickled, version_id_for
from shared import storage

log = logging.getLogger(__name__)

FileProgress = Callable[[str, int], None]  # (relative path, bytes more done)


@dataclass(frozen=True)
class Stored:
    manifest: dict[str, Any]
    bytes_uploaded: int
    created: bool  # False when the version already existed (redelivery, re-import)


def describe_dir(root: Path, progress: FileProgress | None = None) -> list[dict[str, Any]]:
    """Every regular file under ``root`` with its sha256 and size (symlinks and pickled weights refused)."""
    if not root.is_dir():
        raise InvalidInputError(f"{root} is not a directory")
    try:
        paths = storage.list_files(root)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from exc
    if not paths:
        raise InvalidInputError(f"{root} holds no files")
    files = []
    for p in paths:
        rel = p.relative_to(root).as_posix()
        files.append({"path": rel, "sha256": storage.sha256_file(p), "size": p.stat().st_size})
        if progress:
            progress(rel, p.stat().st_size)
    return files


def check_storable(root: Path, files: Iterable[Mapping[str, Any]]) -> None:
    pickled = refuse_pickled(files)
    if pickled:
        raise PickledWeightsError(
            f"{root}: refusing pickled weights {', '.join(pickled)}; only safetensors are stored "
            "(re-save with save_pretrained(..., safe_serialization=True))")
    for f in files:
        p = root / storage.safe_relpath(f["path"])
        if not p.is_file():
            raise InvalidInputError(f"{p} is missing: the checkpoint directory changed or was deleted "
                                    "before the registry stored it")


def store_version(
    client: RegistryClient, root: Path, files: Iterable[Mapping[str, Any]], *, kind: VersionKind | str,
    name: str = "", note: str = "", lineage: Mapping[str, Any] | None = None,
    progress: FileProgress | None = None,
) -> Stored:
    """Store ``files`` (relative to ``root``) as one version; idempotent by content. ``progress(path, n)``:
    n more bytes of ``path`` uploaded (or found stored), as the upload goes."""
    files = list(files)
    version_id = version_id_for(kind, files)
    existing = client.get_json(storage.manifest_key(version_id))
    if existing is not None:
        return Stored(existing, 0, False)
    check_storable(root, files)
    manifest = build_manifest(kind=kind, files=files, name=name, note=note, lineage=lineage)
    uploaded = 0
    for f in manifest["files"]:
        done = [0]

        def advance(n: int, f: dict[str, Any] = f, done: list[int] = done) -> None:
            n = min(n, f["size"] - done[0])  # a retried upload counts its kept parts again
            done[0] += n
            if progress and n:
                progress(f["path"], n)

        _, _, sent = client.put_blob(root / f["path"], f["sha256"], progress=advance)
        uploaded += sent
        if progress and f["size"] > done[0]:  # already stored: done at once
            progress(f["path"], f["size"] - done[0])
    client.put_manifest(manifest)  # only now, with every blob stored and verified, does the version exist
    log.info("stored %s (%s, %d files, %d bytes uploaded)", version_id, manifest["kind"], len(files), uploaded)
    return Stored(manifest, uploaded, True)
