"""Versions, deployments, targets and evolution routes over the real registry, deployer and evaluator views."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import save_file

from services.api.main import create_app
from services.deployer.projection import DeploymentsProjection
from services.registry import commands
from services.registry.context import Registry
from services.registry.projection import VersionsProjection
from shared.bus import read_all
from shared.projection import ProjectionRunner
from shared.settings import ApiSettings, TargetConfig
from shared.storage import ensure_bucket, s3_client
from tests.support.evolution import seed_evolution

TOKEN = "res-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def client(settings_kwargs: dict, tmp_path: Path) -> Iterator[TestClient]:
    settings = ApiSettings(**settings_kwargs, api_token=TOKEN, uploads_dir=tmp_path / "up")
    ensure_bucket(s3_client(settings), settings.bucket)
    with TestClient(create_app(settings, targets=[TargetConfig(name="box", url="http://127.0.0.1:9",
                                                               token="secret-of-box")])) as c:
        yield c


def adapter_dir(root: Path) -> Path:
    root.mkdir(parents=True)
    save_file({"w": torch.arange(8, dtype=torch.float32)}, str(root / "adapter_model.safetensors"))
    (root / "adapter_config.json").write_text('{"r": 4, "peft_type": "LORA"}')
    return root


def stored_version(client: TestClient, r, tmp_path: Path) -> str:
    reg = Registry.open(client.app.state.settings, r)
    manifest = commands.import_dir(reg, adapter_dir(tmp_path / "adapter"), name="demo-adapter", kind="adapter")
    ProjectionRunner(r, VersionsProjection()).catch_up()
    return manifest["version_id"]


def test_versions_protect_trash_restore_alias(client: TestClient, r, tmp_path: Path) -> None:
    vid = stored_version(client, r, tmp_path)
    page = client.get("/api/versions", params={"kind": "adapter"}).json()
    assert page["count"] == 1 and page["data"][0]["version_id"] == vid
    got = client.get(f"/api/versions/{vid}").json()
    assert got["manifest"]["name"] == "demo-adapter" and len(got["manifest"]["files"]) == 2
    graph = client.get(f"/api/versions/{vid}/lineage").json()
    assert [n["version_id"] for n in graph["nodes"]] == [vid]
    links = client.get(f"/api/versions/{vid}/download").json()["files"]
    assert {f["path"] for f in links} == {"adapter_model.safetensors", "adapter_config.json"}
    assert all(f["url"].startswith("http://127.0.0.1:") for f in links)
    used = client.get("/api/versions/storage").json()
    assert used["versions"] == 1 and used["unique_bytes"] > 0

    def act(path: str, **body: object) -> int:
        res = client.post(f"/api/versions/{vid}/{path}", headers=AUTH, json=body)
        ProjectionRunner(r, VersionsProjection()).catch_up()
        return res.status_code if res.status_code < 400 else res

    assert act("protect", reason="keep it") == 202
    refused = act("trash")
    assert refused.status_code == 409 and "protected" in refused.json()["detail"]
    assert act("unprotect") == 202
    assert act("trash") == 202
    assert client.get("/api/versions").json()["count"] == 0
    assert client.get("/api/versions", params={"include_trashed": True}).json()["data"][0]["status"] == "trashed"
    assert act("restore") == 202
    assert act("aliases", alias="favourite") == 202
    assert client.get("/api/versions/aliases").json()["favourite"] == vid
    bad = client.post(f"/api/versions/{vid}/aliases", headers=AUTH, json={"alias": "no spaces <b>"})
    assert bad.status_code == 422 and "alias" in bad.json()["detail"]
    missing = client.post("/api/versions/v-nope/trash", headers=AUTH)
    assert missing.status_code == 404 and "v-nope" in missing.json()["detail"]
    assert client.get("/api/versions/v-nope").status_code == 404


def test_deployments_and_targets(client: TestClient, r, tmp_path: Path) -> None:
    vid = stored_version(client, r, tmp_path)
    targets = client.get("/api/targets").json()
    assert targets == [{"name": "box", "url": "http://127.0.0.1:9", "kind": "trainyard", "current": None}]
    assert "secret-of-box" not in client.get("/api/targets").text
    res = client.post("/api/deployments", headers=AUTH, json={"version_id": vid, "target": "box"})
    assert res.status_code == 202, res.text
    dep_id = res.json()["deployment_id"]
    requested = [e for _, e in read_all(r, "ty:stream:deployments") if e.type == "deployment.requested"]
    assert [(e.payload["deployment_id"], e.payload["version_id"]) for e in requested] == [(dep_id, vid)]
    ProjectionRunner(r, DeploymentsProjection()).catch_up()
    assert client.get(f"/api/deployments/{dep_id}").json()["status"] == "requested"
    assert client.get("/api/deployments", params={"target": "box"}).json()["count"] == 1
    assert client.get("/api/targets/box/history").json()["data"][0]["deployment_id"] == dep_id

    res = client.post("/api/deployments", headers=AUTH, json={"version_id": vid, "target": "elsewhere"})
    assert res.status_code == 404 and "elsewhere" in res.json()["detail"]
    res = client.post("/api/deployments", headers=AUTH, json={"version_id": "v-nope", "target": "box"})
    assert res.status_code == 404 and "v-nope" in res.json()["detail"]
    res = client.post("/api/deployments", headers=AUTH, json={"target": "box"})
    assert res.status_code == 422 and "version_id" in res.json()["detail"]
    res = client.post("/api/targets/box/rollback", headers=AUTH, json={"to_deployment_id": "dep-nope"})
    assert res.status_code == 404 and "dep-nope" in res.json()["detail"]
    assert client.get("/api/deployments/dep-nope").status_code == 404


def test_evolution_routes(client: TestClient, r) -> None:
    seed_evolution(r, client.app.state.registry, "job-e", n_examples=20, steps=[0, 10, 20, 30], poison="<script>")
    jobs = client.get("/api/evolution").json()
    assert [j["job_id"] for j in jobs["data"]] == ["job-e"]
    curve = client.get("/api/evolution/job-e/curve").json()
    assert [p["step"] for p in curve] == [0, 10, 20, 30] and "train" in curve[0]["aggregates"]
    page = client.get("/api/evolution/job-e/examples", params={"limit": 5, "sort": "-loss"}).json()
    assert page["count"] == 20 and len(page["data"]) == 5
    losses = [e["loss"] for e in page["data"]]
    assert losses == sorted(losses, reverse=True)
    assert client.get("/api/evolution/job-e/examples", params={"q": "item 13?"}).json()["count"] == 1
    learned = client.get("/api/evolution/job-e/examples", params={"state": "learned"}).json()
    assert learned["count"] > 0 and all(e["state"] == "learned" for e in learned["data"])
    hist = client.get("/api/evolution/job-e/examples/0").json()
    assert [h["step"] for h in hist["history"]] == [0, 10, 20, 30] and hist["history"][0]["prediction"] == "<script>"
    assert any(op["op"] != "equal" for op in hist["history"][0]["diff"])
    step = client.get("/api/evolution/job-e/steps/10").json()
    assert len(step["examples"]) == 20
    exported = client.get("/api/evolution/job-e/export", params={"fmt": "csv"})
    assert exported.headers["content-type"].startswith("text/csv")
    assert len(list(csv.reader(io.StringIO(exported.text)))) == 1 + 20 * 4
    for path in ("/api/evolution/job-x/curve", "/api/evolution/job-e/examples/99", "/api/evolution/job-e/steps/15"):
        res = client.get(path)
        assert res.status_code == 404, path
    res = client.get("/api/evolution/job-e/examples", params={"sort": "bogus"})
    assert res.status_code == 422 and "sort" in res.json()["detail"]
