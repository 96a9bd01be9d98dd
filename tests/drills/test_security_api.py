"""API security over real HTTP: a 401 walk of every mutating route from the OpenAPI (gateway and inference
server), property-based fuzzing of the gateway from its OpenAPI (schemathesis: no 5xx, no schema violations),
and path traversal in upload file names.

``tests/api/test_security.py`` (the API engineer's) walks the gateway through the ASGI test client; this file
walks it over a real uvicorn socket, adds the inference server and fuzzes every operation.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from hypothesis import HealthCheck, given, settings

from services.api.main import create_app
from shared.settings import ApiSettings, InferenceSettings, TargetConfig
from shared.storage import ensure_bucket, s3_client
from tests.support.servers import RunningServer, serve_app

TOKEN = "sec-token-" + "x" * 16
MUTATING = {"post", "put", "patch", "delete"}
BAD_AUTH = ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {TOKEN}x"},
            {"Authorization": f"Basic {TOKEN}"}, {"Authorization": "Bearer"})
FUZZ_EXAMPLES = 12  # per operation: ~1 min in all on the 2-core box
# Operations with a known 5xx, pinned by their own strict-xfail regression test below; remove once fixed.
KNOWN_BUGS: dict[tuple[str, str], str] = {}


@pytest.fixture
def gateway(settings_kwargs: dict, tmp_path: Path, r: redis.Redis) -> Iterator[RunningServer]:
    settings = ApiSettings(**settings_kwargs, api_token=TOKEN, uploads_dir=tmp_path / "uploads")
    ensure_bucket(s3_client(settings), settings.bucket)
    app = create_app(settings, targets=[TargetConfig(name="box", url="http://127.0.0.1:9")])
    with serve_app(app) as server:
        yield server


def fill(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", path)


def mutations(url: str) -> list[tuple[str, str]]:
    spec = httpx.get(f"{url}/openapi.json", timeout=10).json()
    return [(m, p) for p, item in spec["paths"].items() for m in item if m in MUTATING]


def test_gateway_mutations_refuse_missing_or_wrong_tokens_over_http(gateway: RunningServer) -> None:
    routes = mutations(gateway.url)
    assert len(routes) >= 15
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        for method, path in routes:
            for headers in BAD_AUTH:
                res = client.request(method.upper(), fill(path), headers=headers, json={"spec": {}})
                assert res.status_code == 401, (method, path, headers, res.status_code, res.text[:200])
                assert res.headers["www-authenticate"] == "Bearer"
                assert TOKEN not in res.text


@pytest.mark.slow
def test_inference_mutations_refuse_missing_or_wrong_tokens(tiny_model: Path, tmp_path: Path) -> None:
    from services.inference.app import create_app as create_inference_app

    settings = InferenceSettings(dev=False, token=TOKEN, base_model=str(tiny_model),
                                 adapters_dir=tmp_path / "adapters", device="cpu", threads=1)
    with serve_app(create_inference_app(settings)) as server, httpx.Client(base_url=server.url, timeout=30) as c:
        spec = c.get("/openapi.json").json()
        routes = [(m, p) for p, item in spec["paths"].items() for m in item
                  if p not in ("/health", "/ready", "/metrics", "/openapi.json")]
        assert {("post", "/v1/completions"), ("post", "/v1/load_lora_adapter")} <= set(routes)
        for method, path in routes:
            for headers in BAD_AUTH:
                res = c.request(method.upper(), fill(path), headers=headers, json={"prompt": "hi"})
                assert res.status_code == 401, (method, path, headers, res.status_code, res.text[:200])
        ok = c.post("/v1/completions", headers={"Authorization": f"Bearer {TOKEN}"},
                    json={"model": "base", "prompt": "hi", "max_tokens": 2, "temperature": 0})
        assert ok.status_code == 200, ok.text


@pytest.mark.slow
def test_schemathesis_fuzz_finds_no_5xx_and_no_schema_violations(gateway: RunningServer) -> None:
    import schemathesis
    from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance

    schema = schemathesis.openapi.from_url(f"{gateway.url}/openapi.json")
    checks = [not_a_server_error, response_schema_conformance, content_type_conformance]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    failures: list[str] = []
    ran = 0
    for result in schema.get_all_operations():
        op = result.ok()
        if op.path.startswith("/api/events/stream"):
            continue  # an endless SSE stream: covered by tests/drills/test_load.py
        if (op.method.upper(), op.path) in KNOWN_BUGS:
            continue

        @settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy())
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=gateway.url, headers=auth, checks=checks, timeout=30)

        try:
            run()
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure, report them together
            failures.append(f"{op.method.upper()} {op.path}: {str(exc)[:800]}")
        ran += 1
    assert ran >= 25
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("filename", ["../../../../escape.jsonl", "..\\..\\escape.jsonl", "/etc/escape.jsonl",
                                      "....//....//escape.jsonl", "%2e%2e%2fescape.jsonl"])
def test_upload_file_names_cannot_escape_the_uploads_dir(gateway: RunningServer, tmp_path: Path,
                                                        filename: str) -> None:
    body = b'{"prompt": "a", "completion": "b"}\n'
    res = httpx.post(f"{gateway.url}/api/datasets", headers={"Authorization": f"Bearer {TOKEN}"},
                     files={"file": (filename, body)}, timeout=30)
    assert res.status_code == 201, res.text
    written = [p for p in tmp_path.rglob("*escape*") if p.is_file()]
    assert written, "the upload was stored somewhere"
    uploads = (tmp_path / "uploads").resolve()
    for p in written:
        assert p.resolve().is_relative_to(uploads), p
        assert ".." not in p.name and "/" not in p.name
    assert not Path("/etc/escape.jsonl").exists()


def test_events_with_an_invalid_after_id_is_a_clear_422(gateway: RunningServer) -> None:
    for after in ("31832968889066804304159710-66", "not-an-id", "1-2-3"):
        res = httpx.get(f"{gateway.url}/api/events", params={"after": after}, timeout=10)
        assert res.status_code == 422, (after, res.status_code, res.text[:200])
        assert "after" in res.json()["detail"]
