"""Adapter uploads on local disk: declared files with sha256 and size, resumable chunks, verified commit.

Layout under ``adapters_dir``::

    .uploads/<upload_id>/manifest.json     declared files, state
    .uploads/<upload_id>/files/<path>      bytes received so far (their length is the resume offset)
    <upload_id>/<path>                     after a verified commit (what ``load_lora_adapter`` is given)

Nothing under ``.uploads`` can be loaded. ``commit`` hashes every file, and only when all of them match
renames the whole ``files`` directory into place in one step; a mismatched file is emptied so the client
can send it again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

from services.inference.adapters import UPLOADS_SUBDIR
from services.inference.exceptions import (
    BadRequestError,
    ChecksumMismatchError,
    UploadConflictError,
    UploadNotFoundError,
    UploadTooLargeError,
)
from services.inference.schemas import UploadFile

COMPONENT_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")
ID_RE = re.compile(r"^[0-9a-f]{32}$")
MAX_DEPTH = 4


class UploadState(StrEnum):
    OPEN = "open"
    COMMITTED = "committed"


@dataclass(frozen=True)
class FileStatus:
    path: str
    size: int
    sha256: str
    received: int

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256, "received": self.received}


def check_path(path: str) -> str:
    """A declared file path: relative, POSIX, plain names only (no '..', no hidden or absolute paths)."""
    parts = path.split("/")
    if len(parts) > MAX_DEPTH or not all(COMPONENT_RE.match(p) for p in parts):
        raise BadRequestError(
            f"invalid file path {path!r}: use relative POSIX paths of letters, digits, '.', '_', '-' "
            f"(at most {MAX_DEPTH} levels, no '..' and no leading dot)")
    return path


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class UploadStore:
    def __init__(self, adapters_dir: Path, max_file_bytes: int) -> None:
        self.adapters_dir = adapters_dir
        self.root = adapters_dir / UPLOADS_SUBDIR
        self.max_file_bytes = max_file_bytes
        self.root.mkdir(parents=True, exist_ok=True)

    # -- manifest -----------------------------------------------------------------------------------
    def _dir(self, upload_id: str) -> Path:
        if not ID_RE.match(upload_id) or not (self.root / upload_id / "manifest.json").is_file():
            raise UploadNotFoundError(f"no upload {upload_id!r}")
        return self.root / upload_id

    def _manifest(self, upload_id: str) -> dict[str, Any]:
        return json.loads((self._dir(upload_id) / "manifest.json").read_text())

    def _write_manifest(self, upload_id: str, manifest: dict[str, Any]) -> None:
        d = self.root / upload_id
        tmp = d / "manifest.json.tmp"
        tmp.write_text(json.dumps(manifest, indent=1))
        os.replace(tmp, d / "manifest.json")

    def _declared(self, upload_id: str, path: str) -> dict[str, Any]:
        for f in self._manifest(upload_id)["files"]:
            if f["path"] == path:
                return f
        raise BadRequestError(f"file {path!r} is not part of upload {upload_id}")

    def _open_manifest(self, upload_id: str) -> dict[str, Any]:
        manifest = self._manifest(upload_id)
        if manifest["state"] != UploadState.OPEN:
            raise UploadConflictError(f"upload {upload_id} is already committed to {manifest['lora_path']}")
        return manifest

    # -- operations ---------------------------------------------------------------------------------
    def create(self, files: list[UploadFile]) -> str:
        paths = [check_path(f.path) for f in files]
        if len(set(paths)) != len(paths):
            raise BadRequestError("duplicate file paths in the upload")
        for f in files:
            if f.size > self.max_file_bytes:
                raise UploadTooLargeError(f"{f.path} declares {f.size} bytes; the limit is {self.max_file_bytes}")
        upload_id = uuid.uuid4().hex
        d = self.root / upload_id
        (d / "files").mkdir(parents=True)
        for f in files:
            target = d / "files" / f.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()
        self._write_manifest(upload_id, {
            "upload_id": upload_id, "state": UploadState.OPEN.value, "lora_path": None,
            "files": [{"path": f.path, "sha256": f.sha256.lower(), "size": f.size} for f in files],
        })
        return upload_id

    def status(self, upload_id: str) -> dict[str, Any]:
        manifest = self._manifest(upload_id)
        committed = manifest["state"] == UploadState.COMMITTED
        base = Path(manifest["lora_path"]) if committed else self._dir(upload_id) / "files"
        files = []
        for f in manifest["files"]:
            p = base / f["path"]
            received = p.stat().st_size if p.is_file() else 0
            files.append(FileStatus(f["path"], f["size"], f["sha256"], received))
        return {"upload_id": upload_id, "files": [f.as_dict() for f in files],
                "complete": all(f.received == f.size for f in files),
                "committed": committed, "lora_path": manifest["lora_path"]}

    def open_at(self, upload_id: str, path: str, offset: int) -> tuple[BinaryIO, int]:
        """A handle positioned at ``offset`` and the byte limit left; earlier bytes beyond it are dropped."""
        self._open_manifest(upload_id)
        declared = self._declared(upload_id, path)
        target = self._dir(upload_id) / "files" / path
        received = target.stat().st_size
        if offset < 0 or offset > received:
            raise UploadConflictError(f"offset {offset} for {path}: the server has {received} bytes; "
                                      f"resume from {received}", {"received": received})
        f = open(target, "r+b")  # noqa: SIM115 - the caller closes it after streaming the body
        f.truncate(offset)
        f.seek(offset)
        return f, declared["size"] - offset

    def target_path(self, upload_id: str, path: str) -> Path:
        self._open_manifest(upload_id)
        self._declared(upload_id, path)
        return self._dir(upload_id) / "files" / path

    def received(self, upload_id: str, path: str) -> int:
        return (self._dir(upload_id) / "files" / path).stat().st_size

    def commit(self, upload_id: str) -> str:
        """Verify every file, then move them to ``adapters_dir/<upload_id>/``; return that directory."""
        manifest = self._manifest(upload_id)
        if manifest["state"] == UploadState.COMMITTED:
            return manifest["lora_path"]
        files_dir = self._dir(upload_id) / "files"
        short = []
        for f in manifest["files"]:
            got = (files_dir / f["path"]).stat().st_size
            if got != f["size"]:
                short.append({"file": f["path"], "expected_size": f["size"], "actual_size": got})
        if short:
            names = ", ".join(f"{b['file']} ({b['actual_size']}/{b['expected_size']} bytes)" for b in short)
            raise ChecksumMismatchError(f"size mismatch (upload incomplete): {names}; nothing was committed",
                                        {"file": short[0]["file"], "mismatches": short})
        bad = []
        for f in manifest["files"]:
            p = files_dir / f["path"]
            actual = sha256_file(p)
            if actual != f["sha256"]:
                bad.append({"file": f["path"], "expected_sha256": f["sha256"], "actual_sha256": actual,
                            "size": f["size"]})
                with open(p, "r+b") as fh:  # make the client send it again
                    fh.truncate(0)
        if bad:
            names = ", ".join(b["file"] for b in bad)
            raise ChecksumMismatchError(f"sha256 mismatch in {names}: nothing was committed; "
                                        f"send {'it' if len(bad) == 1 else 'them'} again",
                                        {"file": bad[0]["file"], "mismatches": bad})
        dest = self.adapters_dir / upload_id
        if dest.exists():
            raise UploadConflictError(f"{dest} already exists")
        os.rename(files_dir, dest)  # one step: the adapter directory appears complete or not at all
        manifest.update(state=UploadState.COMMITTED.value, lora_path=str(dest.resolve()))
        self._write_manifest(upload_id, manifest)
        return manifest["lora_path"]

    def delete(self, upload_id: str) -> None:
        shutil.rmtree(self._dir(upload_id))
