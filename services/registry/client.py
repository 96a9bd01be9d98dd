"""Registry client: content-addressed blobs and manifests in the S3 bucket.

Other services use this to store datasets, read manifests and materialise versions; the registry service
itself uses it to turn checkpoints into versions.

Every S3 call is retried with exponential backoff while the server is unreachable (``retry_s`` in all), so
an outage during an upload delays it instead of failing it. Uploads are verified: the file is hashed in the
same pass that computes the S3 ETag it must produce (single PUT or multipart with ``part_size`` parts), and
the stored object's size and ETag are checked after the upload. A multipart upload resumes after a crash or
an outage, keeping the parts already stored (``upload.py``); memory does not grow with the file's size.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
import tempfile
from collections.abc import Callable, Collection, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import urllib3
from minio import Minio
from minio.error import S3Error, ServerError
from tenacity import Retrying, before_sleep_log, retry_if_exception, stop_after_delay, wait_exponential

from services.registry.exceptions import IntegrityError, NotFoundError
from services.registry.upload import Advance, UploadMismatchError, upload_file
from shared import storage

__all__ = ["IntegrityError", "NotFoundError", "RegistryClient"]

log = logging.getLogger(__name__)
T = TypeVar("T")
MiB = 1024 * 1024
MISSING = ("NoSuchKey", "NoSuchObject", "NotFound")
TRANSIENT_CODES = ("InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "NoSuchUpload",
                   "XMinioServerNotInitialized")


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, S3Error):
        return exc.code in TRANSIENT_CODES
    return isinstance(exc, urllib3.exceptions.HTTPError | ServerError | ConnectionError | TimeoutError
                      | UploadMismatchError)


class RegistryClient:
    def __init__(self, s3: Minio, bucket: str, *, part_size_mb: int = 64, retry_s: float = 600.0,
                 parallel_uploads: int = 3) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.part_size = max(5, part_size_mb) * MiB  # S3's minimum part is 5 MiB
        self.retry_s = retry_s
        self.parallel_uploads = parallel_uploads

    @property
    def location(self) -> str:
        return f"s3://{self.s3._base_url.host}/{self.bucket}"  # noqa: SLF001 - minio exposes no getter

    def _call(self, fn: Callable[[], T]) -> T:
        """Run one S3 operation, retrying with backoff while the server is unreachable."""
        retrying = Retrying(
            retry=retry_if_exception(_transient), wait=wait_exponential(multiplier=0.25, max=5),
            stop=stop_after_delay(self.retry_s), reraise=True,
            before_sleep=before_sleep_log(log, logging.WARNING),
        )
        return retrying(fn)

    def ensure_bucket(self) -> None:
        self._call(lambda: storage.ensure_bucket(self.s3, self.bucket))

    # -- blobs --------------------------------------------------------------------------------------
    def stat_blob(self, digest: str) -> Any | None:
        try:
            return self._call(lambda: self.s3.stat_object(self.bucket, storage.blob_key(digest)))
        except S3Error as exc:
            if exc.code in MISSING:
                return None
            raise

    def has_blob(self, digest: str, size: int | None = None) -> bool:
        stat = self.stat_blob(digest)
        return stat is not None and (size is None or stat.size == size)

    def put_blob(self, path: Path, digest: str | None = None, progress: Advance | None = None,
                 force: bool = False) -> tuple[str, int, int]:
        """Store a file under its sha256 unless already stored. Returns (sha256, size, bytes sent).

        ``digest``, when given, is what the caller believes the file hashes to: the file is then read once,
        hashed while it uploads, and a mismatch (the file changed since it was described) removes the
        object and raises IntegrityError. ``force`` overwrites a stored blob (repairing a corrupt one).
        A multipart upload interrupted by a crash or an outage resumes: its verified parts are not sent again
        (``services/registry/upload.py``). ``progress(n)``: n more bytes done (sent or kept)."""
        size = path.stat().st_size
        if digest is None:
            digest = storage.sha256_file(path)
        if not force and self.has_blob(digest, size):
            return digest, size, 0
        key = storage.blob_key(digest)
        sent = 0
        first = True

        def upload() -> None:
            nonlocal sent, first
            if not (first or force) and self.has_blob(digest, size):
                return  # a retry after the object was completed (by us or a concurrent uploader)
            first = False
            done = upload_file(self.s3, self.bucket, key, path, part_size=self.part_size,
                               parallel=self.parallel_uploads, metadata={"x-amz-meta-sha256": digest},
                               progress=progress)
            sent += done.sent
            if done.sha256 != digest:
                self.s3.remove_object(self.bucket, key)
                raise IntegrityError(f"{path} hashes to {done.sha256}, not {digest}: it changed on disk")
            stat = self.s3.stat_object(self.bucket, key)
            if stat.size != size or (stat.etag or "").strip('"') != done.etag:
                raise UploadMismatchError(
                    f"{key}: stored size {stat.size} etag {stat.etag}, sent {size} {done.etag}")

        try:
            self._call(upload)
        except UploadMismatchError as exc:
            raise IntegrityError(f"upload of {path} was not stored intact: {exc}") from exc
        return digest, size, sent

    def hash_blob(self, digest: str) -> str | None:
        """The sha256 of the stored bytes of a blob (None when the blob is missing)."""
        def consume(resp: Any) -> str:
            h = hashlib.sha256()
            for chunk in resp.stream(storage.CHUNK):
                h.update(chunk)
            return h.hexdigest()

        return self._read_or_none(storage.blob_key(digest), consume)

    def _read_or_none(self, key: str, consume: Any) -> Any | None:
        """``consume`` the object's response (retried like every call); None when the object is missing."""
        def read() -> Any:
            resp = self.s3.get_object(self.bucket, key)
            try:
                return consume(resp)
            finally:
                resp.close()
                resp.release_conn()

        try:
            return self._call(read)
        except S3Error as exc:
            if exc.code in MISSING:
                return None
            raise

    def fetch_blob(self, digest: str, dest: Path) -> Path:
        """Download a blob to ``dest``, verifying its sha256 (a mismatch leaves nothing at ``dest``)."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False, prefix=".part-") as tmp:
            tmp_path = Path(tmp.name)
        try:
            try:
                self._call(lambda: self.s3.fget_object(self.bucket, storage.blob_key(digest), str(tmp_path)))
            except S3Error as exc:
                if exc.code in MISSING:
                    raise NotFoundError(f"blob {digest} is missing from bucket {self.bucket}") from exc
                raise
            got = storage.sha256_file(tmp_path)
            if got != digest:
                raise IntegrityError(f"blob {digest} is corrupt (its bytes hash to {got})")
            shutil.move(tmp_path, dest)
        finally:
            tmp_path.unlink(missing_ok=True)
        return dest

    def delete_key(self, key: str) -> None:
        self._call(lambda: self.s3.remove_object(self.bucket, key))

    def list_keys(self, prefix: str) -> Iterator[str]:
        objs = self._call(lambda: list(self.s3.list_objects(self.bucket, prefix=prefix, recursive=True)))
        for obj in objs:
            yield obj.object_name

    def presigned_blob_url(self, digest: str, expires_s: int = 3600) -> str:
        return self.s3.presigned_get_object(self.bucket, storage.blob_key(digest), expires=timedelta(seconds=expires_s))

    # -- JSON documents -----------------------------------------------------------------------------
    def put_json(self, key: str, obj: Any) -> None:
        data = json.dumps(obj, indent=1, sort_keys=True, default=str).encode()
        self._call(lambda: self.s3.put_object(self.bucket, key, io.BytesIO(data), len(data),
                                              content_type="application/json"))

    def get_json(self, key: str) -> Any | None:
        return self._read_or_none(key, lambda resp: json.loads(resp.read()))

    # -- versions -----------------------------------------------------------------------------------
    def manifest(self, version_id: str) -> dict[str, Any]:
        doc = self.get_json(storage.manifest_key(version_id))
        if doc is None:
            raise NotFoundError(f"no version {version_id} in bucket {self.bucket}")
        return doc

    def has_manifest(self, version_id: str) -> bool:
        try:
            self._call(lambda: self.s3.stat_object(self.bucket, storage.manifest_key(version_id)))
            return True
        except S3Error as exc:
            if exc.code in MISSING:
                return False
            raise

    def put_manifest(self, manifest: dict[str, Any]) -> None:
        self.put_json(storage.manifest_key(manifest["version_id"]), manifest)

    def list_version_ids(self) -> list[str]:
        return sorted(k.removeprefix("manifests/").removesuffix(".json")
                      for k in self.list_keys("manifests/") if k.endswith(".json"))

    def materialize(self, version_id: str, dest: Path, only: Collection[str] | None = None,
                    manifest: dict[str, Any] | None = None) -> Path:
        """Write every file of a version (or the paths in ``only``) under ``dest``, byte-identical to what was
        stored. ``manifest``: the version's manifest when the caller has read it already."""
        manifest = manifest if manifest is not None else self.manifest(version_id)
        dest.mkdir(parents=True, exist_ok=True)
        for f in manifest["files"]:
            if only is not None and f["path"] not in only:
                continue
            rel = storage.safe_relpath(f["path"])
            target = dest / rel
            if target.exists() and target.stat().st_size == f["size"] and storage.sha256_file(target) == f["sha256"]:
                continue
            self.fetch_blob(f["sha256"], target)
        return dest

    def store_dataset(self, path: Path, *, name: str, job_id: str | None = None, note: str = "") -> dict[str, Any]:
        """Store a dataset file as a version of kind ``dataset`` (idempotent by content). Returns its manifest."""
        digest, size, _ = self.put_blob(path)
        version_id = f"ds-{digest[:16]}"
        existing = self.get_json(storage.manifest_key(version_id))
        if existing is not None:
            return existing
        manifest = {
            "version_id": version_id,
            "kind": "dataset",
            "name": name,
            "note": note,
            "created_at": datetime.now(UTC).isoformat(),
            "files": [{"path": storage.safe_relpath(path.name), "sha256": digest, "size": size}],
            "size": size,
            "lineage": {"job_id": job_id, "dataset_sha256": digest},
        }
        self.put_manifest(manifest)
        return manifest

    # -- aliases and per-version state ----------------------------------------------------------------
    def get_alias(self, alias: str) -> dict[str, Any] | None:
        return self.get_json(storage.alias_key(alias))

    def put_alias(self, alias: str, doc: dict[str, Any]) -> None:
        self.put_json(storage.alias_key(alias), doc)

    def delete_alias(self, alias: str) -> None:
        self.delete_key(storage.alias_key(alias))

    def list_aliases(self) -> dict[str, dict[str, Any]]:
        out = {}
        for key in self.list_keys("aliases/"):
            doc = self.get_json(key)
            if doc is not None:
                out[key.removeprefix("aliases/").removesuffix(".json")] = doc
        return out

    def get_state(self, version_id: str) -> dict[str, Any]:
        return self.get_json(state_key(version_id)) or {}

    def put_state(self, version_id: str, state: dict[str, Any]) -> None:
        self.put_json(state_key(version_id), state)


def state_key(version_id: str) -> str:
    """Mutable per-version state (pinned, trashed) beside the immutable manifest, so rebuild sees it."""
    return f"state/{version_id}.json"
