"""Hashing what is uploaded: the sha256 and the S3 ETag (single PUT or multipart) of a file, in one read."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from shared import storage


class HashingReader:
    """A file reader that computes the sha256 and the S3 ETag (per-part MD5s) of what the SDK reads."""

    def __init__(self, f: Any, part_size: int) -> None:
        self.f = f
        self.part_size = part_size
        self._sha = hashlib.sha256()
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._parts: list[bytes] = []
        self._in_part = 0
        self._size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self._sha.update(data)
        self._size += len(data)
        view = memoryview(data)
        while view:
            take = min(len(view), self.part_size - self._in_part)
            self._md5.update(view[:take])
            self._in_part += take
            view = view[take:]
            if self._in_part == self.part_size:
                self._parts.append(self._md5.digest())
                self._md5, self._in_part = hashlib.md5(usedforsecurity=False), 0
        return data

    def sha256(self) -> str:
        return self._sha.hexdigest()

    def etag(self) -> str:
        parts = self._parts + ([self._md5.digest()] if self._in_part or not self._parts else [])
        if len(parts) == 1:
            return parts[0].hex()
        return hashlib.md5(b"".join(parts), usedforsecurity=False).hexdigest() + f"-{len(parts)}"


def file_digests(path: Path, part_size: int) -> tuple[str, str, int]:
    """(sha256, expected S3 ETag for an upload in ``part_size`` parts, size), in one read of the file."""
    with open(path, "rb") as f:
        reader = HashingReader(f, part_size)
        while reader.read(storage.CHUNK):
            pass
    return reader.sha256(), reader.etag(), reader._size  # noqa: SLF001
