"""The resumable multipart upload (services/registry/upload.py) against the real S3 server: an interrupted
upload keeps its verified parts, a stored part that does not match the file is sent again, and memory stays
bounded by the parts in flight, not the file's size."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.registry.client import RegistryClient
from services.registry.upload import open_upload, upload_file
from shared import storage
from shared.settings import CommonSettings
from tests.support.registry import drop_bucket

MiB = 1024 * 1024


class Crash(Exception):
    """Stands for the process dying after some parts reached the server."""


@pytest.fixture
def client(common_settings: CommonSettings) -> Iterator[RegistryClient]:
    c = RegistryClient(storage.s3_client(common_settings), common_settings.bucket, part_size_mb=5,
                       retry_s=5, parallel_uploads=2)
    c.ensure_bucket()
    yield c
    drop_bucket(c)


def crash_after(limit: int):
    done = [0]

    def progress(n: int) -> None:
        done[0] += n
        if done[0] >= limit:
            raise Crash

    return progress


def test_an_interrupted_upload_resumes_with_its_parts(client: RegistryClient, tmp_path: Path) -> None:
    f = tmp_path / "big.bin"
    f.write_bytes(os.urandom(23 * MiB))  # 5 parts of 5 MiB
    digest = storage.sha256_file(f)
    key = storage.blob_key(digest)
    with pytest.raises(Crash):
        upload_file(client.s3, client.bucket, key, f, part_size=5 * MiB, parallel=1, progress=crash_after(10 * MiB))
    assert not client.has_blob(digest)  # nothing visible under the blob's key yet
    _, stored = open_upload(client.s3, client.bucket, key, {})
    assert sorted(stored) == [1, 2]
    seen: list[int] = []
    got, size, sent = client.put_blob(f, digest, progress=seen.append)
    assert (got, size) == (digest, f.stat().st_size)
    assert sent == size - 10 * MiB, "the two stored parts must not be sent again"
    assert sum(seen) == size  # the kept parts count as done on the progress bar
    assert client.hash_blob(digest) == digest
    assert client.stat_blob(digest).etag.strip('"').endswith("-5")
    assert not client.s3._list_multipart_uploads(client.bucket, prefix=key).uploads  # noqa: SLF001


def test_a_stored_part_that_does_not_match_the_file_is_sent_again(client: RegistryClient, tmp_path: Path) -> None:
    data = os.urandom(12 * MiB)
    f = tmp_path / "big.bin"
    f.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    key = storage.blob_key(digest)
    upload_id, _ = open_upload(client.s3, client.bucket, key, {})
    client.s3._upload_part(client.bucket, key, os.urandom(5 * MiB), None, upload_id, 1)  # noqa: SLF001 - wrong bytes
    client.s3._upload_part(client.bucket, key, data[5 * MiB:10 * MiB], None, upload_id, 2)  # noqa: SLF001
    _, size, sent = client.put_blob(f, digest)
    assert sent == size - 5 * MiB  # part 1 re-sent (its MD5 differs), part 2 kept, part 3 sent
    assert client.hash_blob(digest) == digest


def test_a_file_that_changed_is_refused_even_when_resumed(client: RegistryClient, tmp_path: Path) -> None:
    from services.registry.exceptions import IntegrityError

    f = tmp_path / "big.bin"
    f.write_bytes(os.urandom(11 * MiB))
    announced = storage.sha256_file(f)
    with pytest.raises(Crash):
        upload_file(client.s3, client.bucket, storage.blob_key(announced), f, part_size=5 * MiB, parallel=1,
                    progress=crash_after(5 * MiB))
    with open(f, "r+b") as fh:  # the tail changes after the first part went up
        fh.seek(8 * MiB)
        fh.write(b"changed")
    with pytest.raises(IntegrityError, match="changed on disk"):
        client.put_blob(f, announced)
    assert not client.has_blob(announced)


def test_memory_is_bounded_by_the_parts_in_flight(client: RegistryClient, tmp_path: Path) -> None:
    f = tmp_path / "big.bin"
    with open(f, "wb") as fh:
        for _ in range(12):
            fh.write(os.urandom(5 * MiB))  # 60 MiB
    tracemalloc.start()
    try:
        digest, size, sent = client.put_blob(f)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sent == size == 60 * MiB and client.hash_blob(digest) == digest
    # parallel_uploads=2: two parts in flight plus the one being read; the file is 12 parts
    assert peak < 4 * 5 * MiB, f"peak {peak / MiB:.1f} MiB"
