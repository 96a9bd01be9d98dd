"""Object-store contracts: the S3 client built from settings, object key layout and hashing helpers.

Layout of the bucket (the bucket alone is enough to rebuild the registry):
  blobs/sha256/<aa>/<digest>            content-addressed file bodies
  manifests/<version_id>.json           one manifest per version (files, lineage, kind)
  aliases/<alias>.json                  alias -> version id (latest, best, production[:target], user aliases)
  tracked/<job_id>.json                 the tracked examples of a job, fixed at job start
  evolution/<job_id>/step_000010.json   one evolution snapshot per checkpoint step
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path, PurePosixPath

from minio import Minio

from shared.settings import CommonSettings

CHUNK = 8 * 1024 * 1024


def s3_client(settings: CommonSettings) -> Minio:
    return Minio(
        settings.s3_endpoint,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key,
        secure=settings.s3_secure,
        region=settings.s3_region,
    )


def ensure_bucket(client: Minio, bucket: str) -> None:
    if not client.bucket_exists(bucket):
        try:
            client.make_bucket(bucket)
        except Exception as exc:  # noqa: BLE001 - a concurrent creator won the race
            if "BucketAlreadyOwnedByYou" not in str(exc) and "BucketAlreadyExists" not in str(exc):
                raise


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blob_key(digest: str) -> str:
    return f"blobs/sha256/{digest[:2]}/{digest}"


def manifest_key(version_id: str) -> str:
    return f"manifests/{version_id}.json"


def alias_key(alias: str) -> str:
    return f"aliases/{alias}.json"


def tracked_key(job_id: str) -> str:
    return f"tracked/{job_id}.json"


def snapshot_key(job_id: str, step: int) -> str:
    return f"evolution/{job_id}/step_{step:06d}.json"


def safe_relpath(path: str) -> str:
    """A relative POSIX path with no traversal, absolute parts or empty segments; raise ValueError if not."""
    p = PurePosixPath(path.replace("\\", "/"))
    if p.is_absolute() or not p.parts or any(part in ("..", "", ".") for part in p.parts):
        raise ValueError(f"unsafe path {path!r}")
    return str(p)


def list_files(root: Path) -> list[Path]:
    """Regular files under ``root``, sorted, symlinks refused."""
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_symlink():
            raise ValueError(f"refusing symlink {p}")
        if p.is_file():
            out.append(p)
    return out


WEIGHT_SUFFIXES_REFUSED = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def is_pickled_weights(name: str) -> bool:
    """Weight files that would need unpickling to load. Only safetensors weights are written or loaded."""
    base = PurePosixPath(name).name
    return base.endswith(WEIGHT_SUFFIXES_REFUSED) and ("model" in base or "adapter" in base)
