"""Registry client: content-addressed blobs and manifests in the S3 bucket.

Other services use this to store datasets, read manifests and materialise versions; the registry service
itself uses it to turn checkpoints into versions.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from minio import Minio
from minio.error import S3Error

from shared import storage


class IntegrityError(Exception):
    """A stored blob's bytes do not match its sha256."""


class NotFoundError(Exception):
    """No such version, blob or document in the bucket."""


class RegistryClient:
    def __init__(self, s3: Minio, bucket: str) -> None:
        self.s3 = s3
        self.bucket = bucket

    def ensure_bucket(self) -> None:
        storage.ensure_bucket(self.s3, self.bucket)

    # -- blobs --------------------------------------------------------------------------------------
    def has_blob(self, digest: str) -> bool:
        try:
            self.s3.stat_object(self.bucket, storage.blob_key(digest))
            return True
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                return False
            raise

    def put_blob(self, path: Path, digest: str | None = None) -> tuple[str, int, int]:
        """Store a file under its sha256 unless already stored. Returns (sha256, size, bytes uploaded)."""
        digest = digest or storage.sha256_file(path)
        size = path.stat().st_size
        if self.has_blob(digest):
            return digest, size, 0
        self.s3.fput_object(self.bucket, storage.blob_key(digest), str(path),
                            metadata={"x-amz-meta-sha256": digest})
        return digest, size, size

    def fetch_blob(self, digest: str, dest: Path) -> Path:
        """Download a blob to ``dest``, verifying its sha256 (a mismatch leaves nothing at ``dest``)."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False, prefix=".part-") as tmp:
            tmp_path = Path(tmp.name)
        try:
            try:
                self.s3.fget_object(self.bucket, storage.blob_key(digest), str(tmp_path))
            except S3Error as exc:
                if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                    raise NotFoundError(f"blob {digest} is missing from bucket {self.bucket}") from exc
                raise
            got = storage.sha256_file(tmp_path)
            if got != digest:
                raise IntegrityError(f"blob {digest} is corrupt (its bytes hash to {got})")
            shutil.move(tmp_path, dest)
        finally:
            tmp_path.unlink(missing_ok=True)
        return dest

    def presigned_blob_url(self, digest: str, expires_s: int = 3600) -> str:
        return self.s3.presigned_get_object(self.bucket, storage.blob_key(digest), expires=timedelta(seconds=expires_s))

    # -- JSON documents -----------------------------------------------------------------------------
    def put_json(self, key: str, obj: Any) -> None:
        data = json.dumps(obj, indent=1, sort_keys=True, default=str).encode()
        self.s3.put_object(self.bucket, key, io.BytesIO(data), len(data), content_type="application/json")

    def get_json(self, key: str) -> Any | None:
        try:
            resp = self.s3.get_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                return None
            raise
        try:
            return json.loads(resp.read())
        finally:
            resp.close()
            resp.release_conn()

    # -- versions -----------------------------------------------------------------------------------
    def manifest(self, version_id: str) -> dict[str, Any]:
        doc = self.get_json(storage.manifest_key(version_id))
        if doc is None:
            raise NotFoundError(f"no version {version_id}")
        return doc

    def materialize(self, version_id: str, dest: Path) -> Path:
        """Write every file of a version under ``dest``, byte-identical to what was stored."""
        manifest = self.manifest(version_id)
        dest.mkdir(parents=True, exist_ok=True)
        for f in manifest["files"]:
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
            "lineage": {"job_id": job_id, "dataset_sha256": digest},
        }
        self.put_json(storage.manifest_key(version_id), manifest)
        return manifest
