"""One-shot container job: create the Trainyard buckets and turn on object versioning.

Runs against MinIO (official path) or SeaweedFS (offline path) with the same settings as the services
(``TRAINYARD_S3_*``, ``TRAINYARD_BUCKET``, ``TRAINYARD_REPLICA_BUCKET``). Waits up to
``TRAINYARD_S3_WAIT_S`` (default 120 s) for the server, exits 0 once every bucket exists with versioning
enabled, non-zero with one clear line otherwise. Safe to run again.
"""

from __future__ import annotations

import logging
import os
import sys
import time

from minio import Minio
from minio.commonconfig import ENABLED
from minio.versioningconfig import VersioningConfig

from shared.settings import RegistrySettings, load
from shared.storage import ensure_bucket, s3_client

log = logging.getLogger("bucket-init")


def wait_for_s3(client: Minio, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client.list_buckets()
            return
        except Exception as exc:  # noqa: BLE001 - not up yet: retried until the deadline
            if time.monotonic() > deadline:
                raise SystemExit(f"bucket-init: S3 server not answering after {timeout_s:.0f}s: {exc}") from exc
            time.sleep(1.0)


def init_bucket(client: Minio, bucket: str) -> str:
    ensure_bucket(client, bucket)
    client.set_bucket_versioning(bucket, VersioningConfig(ENABLED))
    status = client.get_bucket_versioning(bucket).status
    if status != ENABLED:
        raise SystemExit(f"bucket-init: versioning on {bucket!r} is {status!r} after enabling it")
    return status


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s bucket-init %(levelname)s: %(message)s")
    settings = load(RegistrySettings)
    client = s3_client(settings)
    wait_for_s3(client, float(os.environ.get("TRAINYARD_S3_WAIT_S", "120")))
    buckets = [settings.bucket]
    if settings.replica_endpoint is None:  # the replica lives on the same server
        buckets.append(settings.replica_bucket)
    for bucket in buckets:
        log.info("bucket %s on %s: versioning %s", bucket, settings.s3_endpoint, init_bucket(client, bucket))


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - one clear line for `docker compose logs`
        sys.stderr.write(f"bucket-init: {type(exc).__name__}: {exc}\n")
        raise SystemExit(1) from None
