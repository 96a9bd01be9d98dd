"""Jobs API on real Redis and S3: upload-submit, list, control, reprioritise, bad input as problem+json."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.api.main import create_app
from services.trainer.projection import JobsProjection
from shared.projection import ProjectionRunner
from shared.settings import ApiSettings
from shared.storage import ensure_bucket, s3_client

TOKEN = "test-token-jobs"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DEMO = Path(__file__).resolve().parents[2] / "shared" / "demo_data" / "demo.jsonl"


@pytest.fixture
def client(settings_kwargs: dict, tmp_path: Path) -> Iterator[TestClient]:
    settings = ApiSettings(**settings_kwargs, api_token=TOKEN, uploads_dir=tmp_path / "uploads")
    ensure_bucket(s3_client(settings), settings.bucket)
    with TestClient(create_app(settings, targets=[])) as c:
        yield c


def project(r) -> None:
    ProjectionRunner(r, JobsProjection()).catch_up()


def submit(client: TestClient, path: Path = DEMO, **form: str) -> str:
    with path.open("rb") as f:
        res = client.post("/api/jobs/upload", headers=AUTH, files={"file": (path.name, f, "application/jsonl")},
                          data={"spec": json.dumps({"max_steps": 20}), **form})
    assert res.status_code == 201, res.text
    return res.json()["job_id"]


def test_submit_list_pause_resume_cancel(client: TestClient, r) -> None:
    job_id = submit(client, priority="low")
    project(r)
    listing = client.get("/api/jobs").json()
    assert listing["count"] == 1 and listing["data"][0]["id"] == job_id
    job = client.get(f"/api/jobs/{job_id}").json()
    assert job["state"] == "queued" and job["priority"] == "low" and job["max_steps"] == 20

    queue = client.get("/api/queue").json()
    assert [q["id"] for q in queue["data"]] == [job_id]

    assert client.post(f"/api/jobs/{job_id}/pause", headers=AUTH).status_code == 202
    project(r)
    assert client.get(f"/api/jobs/{job_id}").json()["state"] == "paused"
    assert client.get("/api/queue").json()["count"] == 0

    # resuming puts it back in the queue; skipping a job that is not running is a conflict
    assert client.post(f"/api/jobs/{job_id}/resume", headers=AUTH).status_code == 202
    project(r)
    assert client.get(f"/api/jobs/{job_id}").json()["state"] == "queued"
    res = client.post(f"/api/jobs/{job_id}/skip", headers=AUTH)
    assert res.status_code == 409 and res.headers["content-type"] == "application/problem+json"
    assert "queued" in res.json()["detail"]

    res = client.post(f"/api/jobs/{job_id}/priority", headers=AUTH, json={"priority": "high", "front": True})
    assert res.status_code == 202
    project(r)
    assert client.get(f"/api/jobs/{job_id}").json()["priority"] == "high"

    assert client.post(f"/api/jobs/{job_id}/cancel", headers=AUTH).status_code == 202
    project(r)
    assert client.get(f"/api/jobs/{job_id}").json()["state"] == "cancelled"
    assert client.get("/api/jobs", params={"state": "queued"}).json()["count"] == 0


def test_pagination(client: TestClient, r) -> None:
    ids = {submit(client) for _ in range(3)}
    project(r)
    first = client.get("/api/jobs", params={"limit": 2}).json()
    second = client.get("/api/jobs", params={"limit": 2, "offset": 2}).json()
    assert first["count"] == second["count"] == 3
    assert len(first["data"]) == 2 and len(second["data"]) == 1
    assert {j["id"] for j in first["data"] + second["data"]} == ids
    assert client.get("/api/jobs", params={"limit": 0}).status_code == 422


def test_unknown_ids_are_404_naming_the_id(client: TestClient, r) -> None:
    for res in (client.get("/api/jobs/job-nope"), client.get("/api/jobs/job-nope/metrics"),
                client.post("/api/jobs/job-nope/pause", headers=AUTH),
                client.post("/api/jobs/job-nope/priority", headers=AUTH, json={"priority": "high"})):
        assert res.status_code == 404, res.text
        assert res.headers["content-type"] == "application/problem+json"
        body = res.json()
        assert "job-nope" in body["detail"] and body["status"] == 404 and body["title"] == "Not found"


def test_invalid_bodies_name_the_field(client: TestClient, r) -> None:
    job_id = submit(client)
    res = client.post(f"/api/jobs/{job_id}/priority", headers=AUTH, json={"priority": "urgent"})
    assert res.status_code == 422 and res.headers["content-type"] == "application/problem+json"
    assert res.json()["errors"][0]["field"] == "priority" and "priority" in res.json()["detail"]
    res = client.post("/api/jobs", headers=AUTH, json={"spec": {}})
    assert res.status_code == 422 and "dataset_version_id" in res.json()["detail"]
    res = client.post("/api/jobs/upload", headers=AUTH, files={"file": ("d.jsonl", b"{}", "text/plain")},
                      data={"spec": "not json"})
    assert res.status_code == 422 and res.json()["detail"].startswith("spec:")


def test_bad_dataset_is_rejected_with_line_numbers(client: TestClient, r, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    good = DEMO.read_text().splitlines()[0]
    bad.write_text(f"{good}\nnot json at all\n{good}\n")
    with bad.open("rb") as f:
        res = client.post("/api/jobs/upload", headers=AUTH, files={"file": ("bad.jsonl", f, "text/plain")})
    assert res.status_code == 422, res.text
    body = res.json()
    assert "line 2" in body["detail"] and body["report"]
    project(r)
    assert client.get("/api/jobs").json()["count"] == 0  # nothing queued
    assert bad.read_text().count("\n") == 3  # the user's file is untouched


def test_submit_from_registry_dataset(client: TestClient, r) -> None:
    with DEMO.open("rb") as f:
        res = client.post("/api/datasets", headers=AUTH, files={"file": ("demo.jsonl", f, "text/plain")},
                          data={"name": "demo"})
    assert res.status_code == 201, res.text
    ds = res.json()
    assert ds["version_id"].startswith("ds-") and ds["n_examples"] > 10
    assert client.get(f"/api/datasets/{ds['version_id']}").json()["kind"] == "dataset"
    res = client.post("/api/jobs", headers=AUTH, json={"dataset_version_id": ds["version_id"],
                                                       "spec": {"max_steps": 5}, "priority": "high"})
    assert res.status_code == 201, res.text
    project(r)
    job = client.get(f"/api/jobs/{res.json()['job_id']}").json()
    assert job["priority"] == "high" and job["dataset"]["sha256"] == ds["sha256"]
    res = client.post("/api/jobs", headers=AUTH, json={"dataset_version_id": "ds-missing"})
    assert res.status_code == 404 and "ds-missing" in res.json()["detail"]
