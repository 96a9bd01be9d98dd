"""Dataset listing and the registry's health, backup and verify routes over the real registry (Redis + S3).

The API opens the registry's own command context (``services.registry.context.Registry``); the replica is a
second bucket on the same S3 server, named by ``TRAINYARD_REPLICA_BUCKET`` as in production.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import save_file

from services.api.main import create_app
from services.registry import commands, handlers
from services.registry.context import Registry
from services.registry.projection import VersionsProjection
from shared import streams
from shared.bus import Consumer, ConsumerConfig
from shared.projection import ProjectionRunner
from shared.settings import ApiSettings
from shared.storage import blob_key, s3_client

TOKEN = "registry-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DEMO = Path(__file__).resolve().parents[2] / "shared" / "demo_data" / "demo.jsonl"


@pytest.fixture
def reg(settings_kwargs: dict, bucket: str, r, monkeypatch: pytest.MonkeyPatch) -> Registry:
    monkeypatch.setenv("TRAINYARD_REPLICA_BUCKET", f"{bucket}-replica")  # dropped with the test's bucket
    return Registry.open(ApiSettings(**settings_kwargs), r)  # creates both buckets


@pytest.fixture
def client(settings_kwargs: dict, tmp_path: Path, reg: Registry) -> Iterator[TestClient]:
    settings = ApiSettings(**settings_kwargs, api_token=TOKEN, uploads_dir=tmp_path / "up")
    with TestClient(create_app(settings, targets=[])) as c:
        yield c


def project(r) -> None:
    ProjectionRunner(r, VersionsProjection()).catch_up()


def registry_pass(reg: Registry) -> None:
    """What the registry worker does with uploads: ``dataset.stored`` -> ``version.stored``, then the view."""
    worker = Consumer(reg.r, ConsumerConfig(group=streams.GROUP_REGISTRY, consumer="api-test",
                                            streams=(streams.REGISTRY,)), handlers.handlers(reg))
    worker.ensure_groups()
    while worker.run_once(block_ms=10):
        pass
    project(reg.r)


def upload(client: TestClient, name: str, body: bytes) -> dict:
    res = client.post("/api/datasets", headers=AUTH, files={"file": (f"{name}.jsonl", body, "text/plain")},
                      data={"name": name})
    assert res.status_code == 201, res.text
    return res.json()


def store_adapter(reg: Registry, root: Path) -> str:
    root.mkdir(parents=True)
    save_file({"w": torch.arange(16, dtype=torch.float32)}, str(root / "adapter_model.safetensors"))
    (root / "adapter_config.json").write_text('{"r": 4, "peft_type": "LORA"}')
    return commands.import_dir(reg, root, name="an-adapter", kind="adapter")["version_id"]


def test_datasets_list_only_datasets_paged_and_bad_uploads_store_nothing(client: TestClient, reg: Registry, r,
                                                                          tmp_path: Path) -> None:
    lines = DEMO.read_text().splitlines(keepends=True)
    first = upload(client, "first", "".join(lines[:12]).encode())
    second = upload(client, "second <b>", "".join(lines[12:24]).encode())
    store_adapter(reg, tmp_path / "adapter")
    registry_pass(reg)
    page = client.get("/api/datasets").json()
    assert page["count"] == 2 and {d["version_id"] for d in page["data"]} == {first["version_id"],
                                                                              second["version_id"]}
    assert all(d["kind"] == "dataset" for d in page["data"])
    assert {d["name"] for d in page["data"]} == {"first", "second <b>"}  # raw in JSON; the UI escapes
    one = client.get("/api/datasets", params={"limit": 1, "offset": 1}).json()
    assert (one["count"], len(one["data"]), one["offset"], one["limit"]) == (2, 1, 1, 1)
    assert client.get("/api/datasets", params={"limit": 0}).status_code == 422

    empty = client.post("/api/datasets", headers=AUTH, files={"file": ("e.jsonl", b"", "text/plain")})
    assert empty.status_code == 422 and "empty" in empty.json()["detail"]
    broken = client.post("/api/datasets", headers=AUTH,
                         files={"file": ("b.jsonl", (lines[0] + "{not json\n").encode(), "text/plain")})
    assert broken.status_code == 422 and "line 2" in broken.json()["detail"]
    assert client.post("/api/datasets", files={"file": ("x.jsonl", lines[0].encode(), "text/plain")}).status_code == 401
    registry_pass(reg)
    assert client.get("/api/datasets").json()["count"] == 2  # the refused uploads left nothing behind
    assert len(reg.primary.list_version_ids()) == 3


def test_backup_status_reports_what_the_replica_lacks(client: TestClient, reg: Registry, r, tmp_path: Path) -> None:
    ds = upload(client, "demo", DEMO.read_bytes())
    adapter = store_adapter(reg, tmp_path / "adapter")
    status = client.get("/api/registry/backup").json()
    assert (status["total"], status["replicated"]) == (2, 0)
    pending = {p["version_id"]: p for p in status["pending"]}
    assert set(pending) == {ds["version_id"], adapter}
    assert pending[ds["version_id"]]["size"] == DEMO.stat().st_size
    assert status["pending_bytes"] == sum(p["size"] for p in status["pending"])
    assert reg.replica.bucket in status["replica"]

    commands.replicate_version(reg, adapter)
    status = client.get("/api/registry/backup").json()
    assert (status["replicated"], [p["version_id"] for p in status["pending"]]) == (1, [ds["version_id"]])
    commands.replicate_pending(reg)
    status = client.get("/api/registry/backup").json()
    assert (status["total"], status["replicated"], status["pending"], status["pending_bytes"]) == (2, 2, [], 0)


def test_verify_finds_corruption_health_reports_it_and_repair_restores(client: TestClient, reg: Registry, r,
                                                                       tmp_path: Path) -> None:
    adapter = store_adapter(reg, tmp_path / "adapter")
    commands.replicate_pending(reg)
    project(r)
    health = client.get("/api/registry/health").json()
    assert health == {"bucket": reg.primary.bucket, "bucket_reachable": True, "s3_error": None, "versions": 1,
                      "trashed": 0, "dead_lettered": 0, "last_verify_failed": None}
    assert client.post("/api/registry/verify").status_code == 401

    clean = client.post("/api/registry/verify", headers=AUTH).json()
    assert clean["ok"] is True and clean["checked_blobs"] == 2 and clean["corrupt"] == clean["missing"] == []

    weights = next(f for f in reg.primary.manifest(adapter)["files"] if f["path"] == "adapter_model.safetensors")
    bad = b"x" * weights["size"]  # same size, other bytes: only a rehash notices
    reg.primary.s3.put_object(reg.primary.bucket, blob_key(weights["sha256"]), io.BytesIO(bad), len(bad))
    found = client.post("/api/registry/verify", headers=AUTH).json()
    assert found["ok"] is False and found["corrupt"] == [f"blob:{weights['sha256']}"]
    assert found["affected_versions"] == [adapter] and found["repaired"] == []
    project(r)
    failure = client.get("/api/registry/health").json()["last_verify_failed"]
    assert failure["corrupt"] == [f"blob:{weights['sha256']}"] and failure["at"]

    repaired = client.post("/api/registry/verify", headers=AUTH, params={"repair": True}).json()
    assert repaired["ok"] is True and repaired["repaired"] == [f"blob:{weights['sha256']}"]
    assert reg.primary.hash_blob(weights["sha256"]) == weights["sha256"]
    again = client.post("/api/registry/verify", headers=AUTH).json()
    assert again["ok"] is True and again["corrupt"] == []
    assert client.post("/api/registry/verify", headers=AUTH, params={"repair": "maybe"}).status_code == 422


def test_health_counts_trash_and_dead_letters_and_reports_a_missing_bucket(
        client: TestClient, reg: Registry, r, tmp_path: Path, settings_kwargs: dict, bucket: str) -> None:
    adapter = store_adapter(reg, tmp_path / "adapter")
    store_adapter(reg, tmp_path / "other")  # same bytes: the same version, stored once
    ds = upload(client, "demo", DEMO.read_bytes())
    registry_pass(reg)
    commands.trash(reg, ds["version_id"])
    r.xadd(streams.DEAD_LETTER, {"event": json.dumps({"type": "event.dead_lettered"})})
    project(r)
    health = client.get("/api/registry/health").json()
    assert (health["versions"], health["trashed"], health["dead_lettered"]) == (2, 1, 1)
    assert client.get(f"/api/versions/{adapter}").status_code == 200

    kwargs = {**settings_kwargs, "bucket": f"{bucket}-absent"}
    settings = ApiSettings(**kwargs, api_token=TOKEN, uploads_dir=tmp_path / "up2")
    with TestClient(create_app(settings, targets=[])) as other:
        missing = other.get("/api/registry/health")
    assert missing.status_code == 200
    assert missing.json()["bucket_reachable"] is False and missing.json()["bucket"] == f"{bucket}-absent"
    assert not s3_client(settings).bucket_exists(f"{bucket}-absent")  # a health check creates nothing
