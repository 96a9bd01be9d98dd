"""Auth and errors across the whole OpenAPI: every mutation needs the token; reads follow open_reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.api.main import create_app
from shared.settings import ApiSettings, TargetConfig

TOKEN = "test-token-security"
MUTATING = {"post", "put", "patch", "delete"}


def make_client(settings_kwargs: dict, tmp_path: Path, **extra: object) -> TestClient:
    settings = ApiSettings(**settings_kwargs, api_token=TOKEN, uploads_dir=tmp_path / "up", **extra)
    return TestClient(create_app(settings, targets=[TargetConfig(name="box", url="http://127.0.0.1:9")]))


def routes(client: TestClient) -> list[tuple[str, str]]:
    spec = client.get("/openapi.json").json()
    return [(m, p) for p, item in spec["paths"].items() for m in item]


def fill(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def test_every_mutation_needs_a_valid_token(settings_kwargs: dict, tmp_path: Path, r) -> None:
    with make_client(settings_kwargs, tmp_path) as client:
        mutations = [(m, p) for m, p in routes(client) if m in MUTATING]
        assert len(mutations) >= 15  # jobs, datasets, versions, deployments, targets, registry
        for method, path in mutations:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}):
                res = client.request(method, fill(path), headers=headers, json={"x": 1})
                assert res.status_code == 401, (method, path, headers, res.text)
                assert res.headers["content-type"] == "application/problem+json"
                assert res.headers["www-authenticate"] == "Bearer"
        # and the OpenAPI documents the 401 of each of them
        spec = client.get("/openapi.json").json()
        for method, path in mutations:
            assert "401" in spec["paths"][path][method]["responses"], (method, path)
            assert spec["paths"][path][method].get("security"), (method, path)


def test_reads_open_by_default_and_closed_when_configured(settings_kwargs: dict, tmp_path: Path, r) -> None:
    with make_client(settings_kwargs, tmp_path) as client:
        assert client.get("/api/jobs").status_code == 200
    with make_client(settings_kwargs, tmp_path, open_reads=False) as client:
        reads = [p for m, p in routes(client) if m == "get" and p.startswith("/api/") and "{" not in p
                 and not p.startswith("/api/events/stream")]
        assert len(reads) >= 8
        for path in reads:
            assert client.get(path).status_code == 401, path
            assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401, path
        res = client.get("/api/jobs", headers={"Authorization": f"Bearer {TOKEN}"})
        assert res.status_code == 200
        assert client.get("/api/events/stream").status_code == 401
        # health, readiness and metrics stay open for probes
        assert client.get("/health").status_code == 200
        assert client.get("/metrics").status_code == 200


def test_health_ready_metrics_and_problem_json(settings_kwargs: dict, tmp_path: Path, r) -> None:
    with make_client(settings_kwargs, tmp_path) as client:
        assert client.get("/health").json() == {"status": "ok"}
        ready = client.get("/ready")
        assert ready.status_code == 503 and ready.json()["checks"]["redis"] is True  # bucket not created yet
        client.app.state.registry.ensure_bucket()
        ready = client.get("/ready")
        assert ready.status_code == 200 and ready.json()["checks"] == {"redis": True, "s3": True}
        res = client.get("/api/nowhere")
        assert res.status_code == 404 and res.headers["content-type"] == "application/problem+json"
        client.get("/api/jobs")
        text = client.get("/metrics").text
        assert 'trainyard_api_requests_total{method="GET",route="/api/jobs",status="200"} 1.0' in text
        assert "trainyard_api_request_seconds_bucket" in text


@pytest.mark.parametrize("path", ["/", "/static/js/app.js", "/static/vendor/uPlot.iife.min.js"])
def test_ui_is_served_without_cdn(settings_kwargs: dict, tmp_path: Path, r, path: str) -> None:
    with make_client(settings_kwargs, tmp_path) as client:
        res = client.get(path)
        assert res.status_code == 200
        assert "cdn" not in res.text.lower().replace("cdnjs", "cdn") or path.endswith(".min.js")
        if path == "/":
            assert "/static/vendor/uPlot.iife.min.js" in res.text and "window.TRAINYARD" in res.text
