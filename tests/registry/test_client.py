"""RegistryClient on a real S3 server: dedup, verified fetch, materialise, dataset versions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.registry.client import IntegrityError, NotFoundError, RegistryClient
from shared import storage
from shared.settings import CommonSettings
from tests.support.registry import drop_bucket


@pytest.fixture
def client(common_settings: CommonSettings) -> Iterator[RegistryClient]:
    c = RegistryClient(storage.s3_client(common_settings), common_settings.bucket)
    c.ensure_bucket()
    yield c
    drop_bucket(c)  # SeaweedFS has a limited number of volume slots; every bucket takes 7


def test_blob_dedup_and_verified_fetch(client: RegistryClient, tmp_path: Path) -> None:
    f = tmp_path / "a.bin"
    f.write_bytes(b"x" * 1000)
    digest, size, uploaded = client.put_blob(f)
    assert (size, uploaded) == (1000, 1000)
    assert client.put_blob(f) == (digest, 1000, 0)  # stored once
    out = client.fetch_blob(digest, tmp_path / "out" / "a.bin")
    assert out.read_bytes() == f.read_bytes()
    with pytest.raises(NotFoundError):
        client.fetch_blob("0" * 64, tmp_path / "missing")


def test_corrupt_blob_is_detected(client: RegistryClient, tmp_path: Path) -> None:
    import io

    f = tmp_path / "b.bin"
    f.write_bytes(b"good bytes")
    digest, _, _ = client.put_blob(f)
    client.s3.put_object(client.bucket, storage.blob_key(digest), io.BytesIO(b"evil bytes"), 10)
    with pytest.raises(IntegrityError):
        client.fetch_blob(digest, tmp_path / "o" / "b.bin")
    assert not (tmp_path / "o" / "b.bin").exists()


def test_dataset_version_is_idempotent_and_materialises(client: RegistryClient, tmp_path: Path) -> None:
    ds = tmp_path / "data.jsonl"
    ds.write_text('{"text": "hello"}\n')
    m1 = client.store_dataset(ds, name="data")
    m2 = client.store_dataset(ds, name="data")
    assert m1["version_id"] == m2["version_id"] and m1["kind"] == "dataset"
    out = client.materialize(m1["version_id"], tmp_path / "restored")
    assert (out / "data.jsonl").read_bytes() == ds.read_bytes()


def test_upload_of_a_file_that_changed_since_it_was_hashed_is_refused(client: RegistryClient, tmp_path: Path) -> None:
    f = tmp_path / "c.bin"
    f.write_bytes(b"original")
    announced = storage.sha256_file(f)
    f.write_bytes(b"modified")
    with pytest.raises(IntegrityError, match="changed on disk"):
        client.put_blob(f, announced)
    assert not client.has_blob(announced)


def test_multipart_upload_is_verified_by_etag(common_settings: CommonSettings, tmp_path: Path) -> None:
    import os

    c = RegistryClient(storage.s3_client(common_settings), common_settings.bucket, part_size_mb=5)
    c.ensure_bucket()
    f = tmp_path / "big.bin"
    f.write_bytes(os.urandom(11 * 1024 * 1024))  # three parts
    try:
        digest, size, sent = c.put_blob(f)
        assert sent == size and c.stat_blob(digest).etag.strip('"').endswith("-3")
        assert c.hash_blob(digest) == digest
    finally:
        drop_bucket(c)
