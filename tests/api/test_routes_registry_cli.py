"""The REST routes the CLI needed: inventory, the gc check and purge, over the real registry (Redis + S3),
with problem+json errors and the bearer token on the mutations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from services.api.main import create_app
from services.registry import commands
from services.registry.context import Registry
from services.registry.projection import VersionsProjection
from shared.projection import ProjectionRunner
from shared.settings import ApiSettings, RegistrySettings
from tests.support.registry import dropped_after

TOKEN = "routes-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def reg(settings_kwargs: dict, r: redis.Redis, bucket: str) -> Iterator[Registry]:
    with dropped_after(Registry.open(RegistrySettings(**settings_kwargs, replica_bucket=f"{bucket}-replica"), r)) as reg:
        yield reg


@pytest.fixture
def client(settings_kwargs: dict, tmp_path: Path, reg: Registry) -> Iterator[TestClient]:
    app = create_app(ApiSettings(**settings_kwargs, api_token=TOKEN, uploads_dir=tmp_path / "up"), targets=[])
    app.state.registry_ctx = reg
    with TestClient(app) as c:
        yield c


def stored_folder(reg: Registry, tmp_path: Path) -> tuple[str, Path]:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "train.jsonl").write_text('{"text": "hello"}\n')
    vid = commands.import_dir(reg, folder, name="data", kind="dataset")["version_id"]
    ProjectionRunner(reg.r, VersionsProjection()).catch_up()
    return vid, folder


def test_inventory_lists_versions_and_their_copies(client: TestClient, reg: Registry, tmp_path: Path) -> None:
    vid, _ = stored_folder(reg, tmp_path)
    inv = client.get("/api/registry/inventory").json()
    assert inv["count"] == 1 and inv["versions"][0]["version_id"] == vid
    assert inv["versions"][0]["copies"] == [reg.primary.location]
    commands.replicate_pending(reg)
    assert client.get("/api/registry/inventory").json()["versions"][0]["copies"] == [reg.primary.location,
                                                                                    reg.replica.location]


def test_gc_check_needs_a_token_names_bad_fields_and_judges_like_gc(client: TestClient, reg: Registry,
                                                                   tmp_path: Path) -> None:
    _, folder = stored_folder(reg, tmp_path)
    described = commands.describe(folder)
    body = {"dirs": [described, {"path": "/elsewhere", "files": [{"path": "x", "sha256": "0" * 64, "size": 1}]}]}
    res = client.post("/api/registry/gc-check", json=body)
    assert res.status_code == 401 and res.headers["content-type"] == "application/problem+json"
    bad = client.post("/api/registry/gc-check", headers=AUTH,
                      json={"dirs": [{"path": "p", "files": [{"path": "x", "sha256": "nope", "size": 1}]}]})
    assert bad.status_code == 422 and "dirs.0.files.0.sha256" in bad.json()["detail"]

    first, other = client.post("/api/registry/gc-check", headers=AUTH, json=body).json()
    assert not first["safe"] and "has a verified replica copy yet" in first["reason"]
    assert first["path"] == str(folder) and first["bytes"] == described["files"][0]["size"]
    assert not other["safe"] and "x is in no stored version" in other["reason"]
    commands.replicate_pending(reg)
    first, _ = client.post("/api/registry/gc-check", headers=AUTH, json=body).json()
    assert first["safe"] and folder.exists()  # the API judges; only the CLI deletes, on its own machine


def test_purge_is_refused_until_trashed_and_replicated(client: TestClient, reg: Registry, tmp_path: Path) -> None:
    vid, _ = stored_folder(reg, tmp_path)
    assert client.post(f"/api/versions/{vid}/purge", json={}).status_code == 401
    missing = client.post("/api/versions/nope/purge", headers=AUTH, json={})
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]
    assert client.post(f"/api/versions/{vid}/purge", headers=AUTH, json={}).status_code == 409  # not trashed
    assert client.post(f"/api/versions/{vid}/trash", headers=AUTH).status_code == 202
    ProjectionRunner(reg.r, VersionsProjection()).catch_up()
    refused = client.post(f"/api/versions/{vid}/purge", headers=AUTH, json={"force": vid})
    assert refused.status_code == 409 and "replica" in refused.json()["detail"]  # the only copy
    commands.replicate_pending(reg)
    done = client.post(f"/api/versions/{vid}/purge", headers=AUTH, json={"force": vid})
    assert done.status_code == 200, done.text
    assert done.json() == {"version_id": vid, "blobs_deleted": 1, "bytes_freed": 18, "override": True}
    assert not reg.primary.has_manifest(vid) and reg.replica.has_manifest(vid)
