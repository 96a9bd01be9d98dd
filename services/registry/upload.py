"""Resumable, verified upload of one file to S3 (the registry's blob writer).

A file larger than one part goes up as an S3 multipart upload, and the upload's id lives on the server: after a
crash (kill -9, lost connection) the next attempt finds the upload still open at the blob's key
(ListMultipartUploads), lists its parts (ListParts) and keeps every part whose size and MD5 match the file's
bytes at that place; only the other parts are sent again. The file is read once, in order, one part at a time,
with at most ``parallel`` parts in flight, so memory stays near (parallel + 1) x part size whatever the file's
size. The same pass hashes the whole file (sha256), and the completed object's size and multipart ETag are
checked against the bytes read. Small files (one part) are a single PUT.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from minio import Minio
from minio.datatypes import Part
from minio.error import MinioException

log = logging.getLogger(__name__)

class UploadMismatchError(MinioException):
    """What the server stored differs from the bytes sent (retried by the client, then IntegrityError)."""


Advance = Callable[[int], None]  # bytes newly done (sent, or found already stored)


@dataclass(frozen=True)
class UploadResult:
    sha256: str  # of every byte read from the file
    etag: str  # the S3 ETag those bytes must have when stored in ``part_size`` parts
    size: int
    sent: int  # bytes sent in this attempt
    reused: int  # bytes of parts kept from an interrupted upload


def multipart_etag(part_md5s: list[bytes]) -> str:
    if len(part_md5s) == 1:
        return part_md5s[0].hex()
    return hashlib.md5(b"".join(part_md5s), usedforsecurity=False).hexdigest() + f"-{len(part_md5s)}"


def open_upload(s3: Minio, bucket: str, key: str, headers: dict[str, str]) -> tuple[str, dict[int, Part]]:
    """The newest open multipart upload at ``key`` with its stored parts, else a new one (no parts)."""
    uploads = [u for u in s3._list_multipart_uploads(bucket, prefix=key).uploads  # noqa: SLF001
               if u.object_name == key and u.upload_id]
    if uploads:
        newest = max(uploads, key=lambda u: u.initiated_time.timestamp() if u.initiated_time else 0)
        return newest.upload_id, list_parts(s3, bucket, key, newest.upload_id)
    return s3._create_multipart_upload(bucket, key, dict(headers)), {}  # noqa: SLF001


def list_parts(s3: Minio, bucket: str, key: str, upload_id: str) -> dict[int, Part]:
    parts: dict[int, Part] = {}
    marker: str | None = None
    while True:
        res = s3._list_parts(bucket, key, upload_id, part_number_marker=marker)  # noqa: SLF001
        parts.update({p.part_number: p for p in res.parts})
        if not res.is_truncated or not res.parts:
            return parts
        marker = str(res.parts[-1].part_number)


def upload_file(s3: Minio, bucket: str, key: str, path: Path, *, part_size: int, parallel: int = 3,
                metadata: dict[str, str] | None = None, progress: Advance | None = None) -> UploadResult:
    """Upload ``path`` to ``key``, resuming an interrupted multipart upload there. ``metadata``: full header
    names (``x-amz-meta-sha256``). Raises on an S3 error; the parts sent so far stay for the next attempt."""
    size = path.stat().st_size
    metadata = dict(metadata or {})
    if size <= part_size:
        data = path.read_bytes()
        s3.put_object(bucket, key, io.BytesIO(data), size, metadata=metadata)
        if progress:
            progress(size)
        md5 = hashlib.md5(data, usedforsecurity=False).digest()
        return UploadResult(hashlib.sha256(data).hexdigest(), md5.hex(), size, size, 0)
    upload_id, stored = open_upload(s3, bucket, key, {"Content-Type": "application/octet-stream", **metadata})
    read = _send_parts(s3, bucket, key, path, upload_id, stored, part_size, parallel, progress)
    if read.reused:
        log.info("%s: resumed upload %s: kept %d of %d parts (%d bytes not sent again)", key, upload_id[:16],
                 read.parts_reused, len(read.md5s), read.reused)
    parts = [Part(n, md5.hex()) for n, md5 in enumerate(read.md5s, start=1)]
    s3._complete_multipart_upload(bucket, key, upload_id, parts)  # noqa: SLF001
    return UploadResult(read.sha256, multipart_etag(read.md5s), size, read.sent, read.reused)


@dataclass
class _Read:
    sha256: str = ""
    md5s: list[bytes] = field(default_factory=list)
    sent: int = 0
    reused: int = 0
    parts_reused: int = 0


def _send_parts(s3: Minio, bucket: str, key: str, path: Path, upload_id: str, stored: dict[int, Part],
                part_size: int, parallel: int, progress: Advance | None) -> _Read:
    """Read the file part by part: keep a stored part that matches, send the others (``parallel`` at once)."""
    sha = hashlib.sha256()
    out = _Read()
    in_flight: set[Future[int]] = set()
    parallel = max(1, parallel)

    def collect(block: bool) -> None:
        done = wait(in_flight, return_when=FIRST_COMPLETED)[0] if block else {f for f in in_flight if f.done()}
        for f in done:
            in_flight.discard(f)
            n = f.result()  # raises the part's S3 error
            out.sent += n
            if progress:
                progress(n)

    with open(path, "rb") as f, ThreadPoolExecutor(parallel, thread_name_prefix="upload") as pool:
        while chunk := f.read(part_size):
            number = len(out.md5s) + 1
            sha.update(chunk)
            md5 = hashlib.md5(chunk, usedforsecurity=False).digest()
            out.md5s.append(md5)
            have = stored.get(number)
            if have is not None and have.etag.strip('"') == md5.hex() and have.size in (None, len(chunk)):
                out.reused += len(chunk)
                out.parts_reused += 1
                if progress:
                    progress(len(chunk))
            else:
                in_flight.add(pool.submit(_put_part, s3, bucket, key, upload_id, number, chunk))
            collect(block=len(in_flight) >= parallel)
        while in_flight:
            collect(block=True)
    out.sha256 = sha.hexdigest()
    return out


def _put_part(s3: Minio, bucket: str, key: str, upload_id: str, number: int, data: bytes) -> int:
    etag = s3._upload_part(bucket, key, data, None, upload_id, number)  # noqa: SLF001
    expected = hashlib.md5(data, usedforsecurity=False).hexdigest()
    if etag.strip('"') != expected:
        raise UploadMismatchError(f"{key} part {number}: stored with ETag {etag}, the part's MD5 is {expected}")
    return len(data)
