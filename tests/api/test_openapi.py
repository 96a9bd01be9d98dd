"""The OpenAPI document is complete and accurate: every JSON answer has a schema, and answers built from real
evaluator rows and real deployer events conform to it (schemathesis validates each one)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient

from services.api.main import create_app
from services.deployer.projection import DeploymentsProjection
from services.evaluator.engine import Generated, Scored
from services.evaluator.readmodel import EvolutionProjection
from services.evaluator.snapshot import TrackedExample, build_doc, example_row
from shared.bus import publish_many
from shared.events import (
    DeploymentFailed,
    DeploymentPushed,
    DeploymentRequested,
    DeploymentRolledBack,
    DeploymentVerified,
    Event,
    SnapshotCaptured,
    SnapshotFailed,
)
from shared.projection import ProjectionRunner
from shared.settings import ApiSettings, TargetConfig
from shared.storage import ensure_bucket, s3_client, snapshot_key

TOKEN = "openapi-token"
TARGET = "box"


@pytest.fixture
def client(settings_kwargs: dict, tmp_path: Path) -> Iterator[TestClient]:
    settings = ApiSettings(**settings_kwargs, api_token=TOKEN, uploads_dir=tmp_path / "up")
    ensure_bucket(s3_client(settings), settings.bucket)
    with TestClient(create_app(settings, targets=[TargetConfig(name=TARGET, url="http://127.0.0.1:9")])) as c:
        yield c


@pytest.fixture
def schema(client: TestClient) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_dict(client.get("/openapi.json").json())


def conforms(schema: schemathesis.BaseSchema, client: TestClient, path: str, template: str,
             **params: object) -> dict | list:
    res = client.get(path, params=params)
    assert res.status_code == 200, (path, res.text[:300])
    schema[template]["GET"].validate_response(res)  # raises with every violation listed
    return res.json()


def test_every_json_answer_has_a_named_schema(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    untyped = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            for code, resp in op["responses"].items():
                body = (resp.get("content") or {}).get("application/json")
                if not code.startswith("2") or body is None or path == "/api/events/stream":
                    continue
                s = body.get("schema") or {}
                typed = "$ref" in s or "properties" in s or "items" in s or "additionalProperties" in s
                if not typed or s.get("additionalProperties") is True:
                    untyped.append(f"{method.upper()} {path} {code}")
    assert untyped == []
    refs = {p: spec["paths"][p]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
            for p in ("/api/evolution/{job_id}/examples", "/api/deployments/{deployment_id}", "/api/registry/backup")}
    assert refs == {"/api/evolution/{job_id}/examples": {"$ref": "#/components/schemas/ExamplePage"},
                    "/api/deployments/{deployment_id}": {"$ref": "#/components/schemas/DeploymentPublic"},
                    "/api/registry/backup": {"$ref": "#/components/schemas/BackupStatus"}}
    export = spec["paths"]["/api/evolution/{job_id}/export"]["get"]["responses"]["200"]["content"]
    assert set(export) == {"application/json", "text/csv"}


def real_rows(step: int) -> list[dict]:
    """Rows built by the evaluator's own ``example_row``: a learned one, a wrong one, one with a NaN loss."""
    rows = []
    for i, (target, text) in enumerate([("Paris", "Paris" if step else "Lyon"), ("Rome", "<b>Rome</b> Rome Rome"),
                                        ("Madrid", "")]):
        ex = TrackedExample(idx=i, id=f"ex-{i}", split="heldout" if i == 2 else "train",
                            messages=[{"role": "user", "content": f"capital {i}?"},
                                      {"role": "assistant", "content": target}])
        loss = math.nan if i == 2 else 1.5 - step / 100
        rows.append(example_row(ex, target, Scored(loss=loss, confidence=0.2 + step / 100, n_target_tokens=2,
                                                   input_truncated=False),
                                Generated(text=text, n_tokens=len(text.split()) + 1, hit_limit=i == 1,
                                          input_truncated=False), semantic=None if i else 0.9))
    return rows


def test_evolution_answers_from_real_evaluator_rows_conform(client: TestClient, schema, r) -> None:
    registry = client.app.state.registry
    events = []
    for step in (0, 10, 20):
        doc = build_doc(job_id="job-real", version_id=f"v{step}" if step else None, step=step, max_new_tokens=8,
                        rows=real_rows(step), base_model="tiny", tracked_sha256=None, semantic_note=None)
        registry.put_json(snapshot_key("job-real", step), doc)
        events.append(Event.create("snapshot.captured", SnapshotCaptured(
            version_id=doc["version_id"], step=step, key=snapshot_key("job-real", step),
            aggregates=doc["aggregates"]), job_id="job-real"))
    events.append(Event.create("snapshot.failed", SnapshotFailed(version_id="v9", step=30, reason="blob gone"),
                               job_id="job-failed-only"))
    publish_many(r, events)
    ProjectionRunner(r, EvolutionProjection(registry)).catch_up()

    jobs = conforms(schema, client, "/api/evolution", "/api/evolution")
    assert {j["job_id"] for j in jobs["data"]} == {"job-real", "job-failed-only"}
    curve = conforms(schema, client, "/api/evolution/job-real/curve", "/api/evolution/{job_id}/curve")
    assert [p["step"] for p in curve] == [0, 10, 20] and curve[0]["aggregates"]["all"]["flags"]
    page = conforms(schema, client, "/api/evolution/job-real/examples", "/api/evolution/{job_id}/examples",
                    sort="-loss")
    assert page["count"] == 3 and page["data"][-1]["loss"] is None  # NaN loss stored as null, sorted last
    assert page["data"][0]["state"] and "forgetting_events" in page["data"][0]
    hist = conforms(schema, client, "/api/evolution/job-real/examples/1", "/api/evolution/{job_id}/examples/{idx}")
    assert hist["history"][0]["prediction"] == "<b>Rome</b> Rome Rome" and hist["history"][0]["diff"]
    step = conforms(schema, client, "/api/evolution/job-real/steps/10", "/api/evolution/{job_id}/steps/{step}")
    assert [e["idx"] for e in step["examples"]] == [0, 1, 2] and step["counts"]["learned"] == 1
    exported = conforms(schema, client, "/api/evolution/job-real/export", "/api/evolution/{job_id}/export")
    assert len(exported["examples"]) == 3 and len(exported["examples"][0]["history"]) == 3


def test_deployment_answers_from_every_deployer_event_conform(client: TestClient, schema, r) -> None:
    ids = dict(target=TARGET)

    def ev(kind: str, payload: object) -> Event:
        return Event.create(kind, payload, job_id="job-d")  # type: ignore[arg-type]

    publish_many(r, [
        ev("deployment.requested", DeploymentRequested(deployment_id="dep-1", version_id="v1", **ids)),
        ev("deployment.pushed", DeploymentPushed(deployment_id="dep-1", version_id="v1", adapter_name="a1", **ids)),
        ev("deployment.verified", DeploymentVerified(deployment_id="dep-1", version_id="v1", adapter_name="a1",
                                                     checked=4, matched=4, latency_ms=12.5, **ids)),
        ev("deployment.requested", DeploymentRequested(deployment_id="dep-2", version_id="v2", reason="auto", **ids)),
        ev("deployment.failed", DeploymentFailed(deployment_id="dep-2", version_id="v2", reason="<x> 500", **ids)),
        # an outcome without its request (out-of-order replay): the record lacks reason and requested_at
        ev("deployment.rolled_back", DeploymentRolledBack(deployment_id="dep-3", version_id="v3", reason="bad",
                                                         restored_version_id="v1", **ids)),
    ])
    ProjectionRunner(r, DeploymentsProjection()).catch_up()

    page = conforms(schema, client, "/api/deployments", "/api/deployments")
    assert page["count"] == 3
    one = conforms(schema, client, "/api/deployments/dep-1", "/api/deployments/{deployment_id}")
    assert (one["status"], one["checked"], one["latency_ms"]) == ("verified", 4, 12.5)
    failed = conforms(schema, client, "/api/deployments/dep-2", "/api/deployments/{deployment_id}")
    assert failed["error"] == "<x> 500"
    rolled = conforms(schema, client, "/api/deployments/dep-3", "/api/deployments/{deployment_id}")
    assert rolled["restored_version_id"] == "v1" and rolled["requested_at"] is None
    history = conforms(schema, client, f"/api/targets/{TARGET}/history", "/api/targets/{target}/history")
    assert [d["deployment_id"] for d in history["data"]] == ["dep-3", "dep-2", "dep-1"]
    targets = conforms(schema, client, "/api/targets", "/api/targets")
    assert targets[0]["current"] == {"deployment_id": "dep-1", "version_id": "v1", "adapter_name": "a1",
                                     "serving_name": "production"}
