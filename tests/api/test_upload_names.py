"""A refused upload names the file as the user sent it: never the server's uploads folder or any server path."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.api.main import create_app
from services.stack.servers import RedisServer, S3Server
from shared.settings import ApiSettings, TargetConfig
from shared.storage import ensure_bucket, s3_client
from tests.conftest import S3_ACCESS, S3_SECRET
from tests.support.servers import RunningServer, serve_app

TOKEN = "upload-names-token"
BAD = b'{"prompt": "a", "completion": "b"}\nnot json\n{"prompt": "c", "completion": 3}\n'


@pytest.fixture(scope="module")
def api(redis_server: RedisServer, s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[tuple[RunningServer, ApiSettings]]:
    root = tmp_path_factory.mktemp("upnames")
    settings = ApiSettings(dev=True, redis_url=redis_server.url, s3_endpoint=s3_server.endpoint,
                           s3_access_key=S3_ACCESS, s3_secret_key=S3_SECRET, bucket="ty-upnames",
                           state_dir=root / "state", api_token=TOKEN, uploads_dir=Path(".state/uploads-names"))
    ensure_bucket(s3_client(settings), settings.bucket)
    with serve_app(create_app(settings, targets=[TargetConfig(name="box", url="http://127.0.0.1:9")])) as server:
        yield server, settings


def _assert_no_server_path(body: dict, settings: ApiSettings) -> None:
    text = json.dumps(body)
    uploads = settings.uploads_dir
    for leak in (str(uploads), str(uploads.resolve()), "uploads-names", ".state", str(Path.cwd())):
        assert leak not in text, f"{leak!r} leaks in {text}"


@pytest.mark.parametrize("route", ["/api/jobs/upload", "/api/datasets"])
def test_refused_upload_names_the_file_as_sent(route: str, api: tuple[RunningServer, ApiSettings]) -> None:
    server, settings = api
    res = httpx.post(f"{server.url}{route}", headers={"Authorization": f"Bearer {TOKEN}"},
                     files={"file": ("my data (v2).jsonl", BAD)}, timeout=60)
    assert res.status_code == 422, res.text
    body = res.json()
    assert body["detail"].startswith("my data (v2).jsonl: 2 problem(s): line 2: "), body["detail"]
    assert any(line.startswith("line 3:") for line in body["report"]), body["report"]
    _assert_no_server_path(body, settings)


def test_refused_spec_keeps_its_message(api: tuple[RunningServer, ApiSettings]) -> None:
    server, settings = api
    good = b'{"prompt": "a", "completion": "b"}\n'
    res = httpx.post(f"{server.url}/api/jobs/upload", headers={"Authorization": f"Bearer {TOKEN}"},
                     files={"file": ("notes.jsonl", good)}, data={"spec": json.dumps({"lr": -1})}, timeout=60)
    assert res.status_code == 422, res.text
    assert "lr" in res.json()["detail"]
    _assert_no_server_path(res.json(), settings)
