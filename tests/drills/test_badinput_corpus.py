"""The bad-input corpus (tests/data/bad/cases.json) through the real inbox watcher and the real upload API.

Each case must be rejected with its exact message, the original bytes kept (inbox: moved to ``rejected/``
beside ``NAME.errors.txt``), and nothing else disturbed: no job, no queued RQ job, no other inbox file
touched, only one ``dataset.rejected`` event.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml

from services.api.main import create_app
from services.stack.servers import RedisServer, S3Server
from services.trainer import jobstore
from services.trainer.inbox import InboxWatcher
from shared import streams
from shared.bus import read_all
from shared.settings import ApiSettings, TargetConfig, TrainerSettings
from shared.storage import ensure_bucket, s3_client
from tests.support.servers import RunningServer, serve_app

BAD = Path(__file__).resolve().parents[1] / "data" / "bad"
CASES: list[dict[str, Any]] = json.loads((BAD / "cases.json").read_text())["cases"]
TOKEN = "badinput-token"
HUGE_CHARS = 50_000_000


def _params(channel: str) -> list[Any]:
    out = []
    for case in CASES:
        if channel not in case["via"]:
            continue
        gap = case.get(f"gap_{channel}") or case.get("gap")
        marks = [pytest.mark.xfail(strict=True, reason=gap)] if gap else []
        out.append(pytest.param(case, id=case["file"].removesuffix(".jsonl"), marks=marks))  # others: id.ext
    return out


def materialise(case: dict[str, Any], dest: Path) -> tuple[Path, Path | None]:
    """Copy the case's dataset (and sidecar spec) into ``dest``; generated cases are written here."""
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / case["file"]
    if case.get("generate"):
        with target.open("wb") as f:
            f.write(b'{"text": "')
            chunk = b"a" * 1_000_000
            for _ in range(HUGE_CHARS // len(chunk)):
                f.write(chunk)
            f.write(b'"}\n')
    else:
        shutil.copyfile(BAD / case["file"], target)
    sidecar = (BAD / case["file"]).with_suffix(".yaml")
    side_copy = None
    if sidecar.exists():
        side_copy = dest / sidecar.name
        shutil.copyfile(sidecar, side_copy)
    return target, side_copy


def check_report(case: dict[str, Any], lines: list[str], channel: str) -> None:
    expected = case.get(f"expect_{channel}") or case.get("expect")
    if expected:
        for line in expected:
            assert line in lines, f"{case['file']}: expected {line!r} in the report, got {lines[:5]}"
    if "expect_contains" in case:
        assert any(case["expect_contains"] in x for x in lines), (case["file"], lines[:5])
    assert expected or "expect_contains" in case


def assert_nothing_queued(r: redis.Redis) -> None:
    assert not list(jobstore.all_ids(r))
    jobs_events = [e.type for _, e in read_all(r, streams.JOBS)]
    assert "job.queued" not in jobs_events, jobs_events
    for q in ("high", "default", "low"):
        assert r.llen(f"rq:queue:{q}") == 0


# -- inbox --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", _params("inbox"))
def test_inbox_rejects_with_the_exact_message(case: dict[str, Any], settings_kwargs: dict, tmp_path: Path,
                                              r: redis.Redis) -> None:
    inbox = tmp_path / "inbox"
    settings = TrainerSettings(**settings_kwargs, inbox_dir=inbox, control_dir=tmp_path / "control",
                               checkpoints_dir=tmp_path / "ckpt", inbox_stable_s=0.0)
    s3 = s3_client(settings)
    path, sidecar = materialise(case, inbox)
    original = path.read_bytes()
    side_original = sidecar.read_bytes() if sidecar else None
    # bystanders: a dataset still being written and a hidden file must not be touched (any other file gets an
    # outcome of its own: tests/trainer/test_inbox_formats.py)
    (inbox / "other.jsonl.part").write_text('{"text": "half')
    (inbox / ".notes.txt").write_text("keep me")
    watcher = InboxWatcher(settings, r, s3)
    assert watcher.scan_once() == []  # first sight: recorded, not yet stable
    assert watcher.scan_once() == []  # stable now: taken and rejected
    rejected = inbox / "rejected" / path.name
    assert rejected.read_bytes() == original, "the original bytes must be kept"
    assert not path.exists()
    if sidecar is not None:
        assert (inbox / "rejected" / sidecar.name).read_bytes() == side_original
    report = (inbox / "rejected" / (path.stem + ".errors.txt")).read_text(encoding="utf-8")
    head, *lines = report.splitlines()
    assert head.startswith(f"{path.name} was rejected")
    check_report(case, lines, "inbox")
    assert (inbox / "other.jsonl.part").read_text() == '{"text": "half'
    assert (inbox / ".notes.txt").read_text() == "keep me"
    assert not (inbox / "accepted").exists() or not any((inbox / "accepted").iterdir())
    events = [e for _, e in read_all(r, streams.JOBS)]
    assert [e.type for e in events] == ["dataset.rejected"]
    assert events[0].payload["file"] == str(rejected)
    assert_nothing_queued(r)


# -- API ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def api(redis_server: RedisServer, s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[tuple[RunningServer, ApiSettings]]:
    from tests.conftest import S3_ACCESS, S3_SECRET

    root = tmp_path_factory.mktemp("badapi")
    settings = ApiSettings(dev=True, redis_url=redis_server.url, s3_endpoint=s3_server.endpoint,
                           s3_access_key=S3_ACCESS, s3_secret_key=S3_SECRET, bucket="ty-badinput",
                           state_dir=root / "state", api_token=TOKEN, uploads_dir=root / "uploads")
    ensure_bucket(s3_client(settings), settings.bucket)
    with serve_app(create_app(settings, targets=[TargetConfig(name="box", url="http://127.0.0.1:9")])) as server:
        yield server, settings


def upload(server: RunningServer, path: Path, spec: Any, filename: str | None = None) -> httpx.Response:
    with path.open("rb") as f:
        return httpx.post(f"{server.url}/api/jobs/upload", headers={"Authorization": f"Bearer {TOKEN}"},
                          files={"file": (filename or path.name, f)},
                          data={"spec": spec if isinstance(spec, str) else json.dumps(spec)}, timeout=120)


@pytest.mark.parametrize("case", _params("api"))
def test_api_upload_rejects_with_the_exact_message(case: dict[str, Any], api: tuple[RunningServer, ApiSettings],
                                                   r: redis.Redis, tmp_path: Path) -> None:
    server, _settings = api
    path, sidecar = materialise(case, tmp_path / "client")
    original = path.read_bytes()
    spec = yaml.safe_load(sidecar.read_text()) if sidecar else {}
    res = upload(server, path, spec)
    assert res.status_code == 422, res.text[:500]
    assert res.headers["content-type"] == "application/problem+json"
    body = res.json()
    lines = list(body.get("report") or []) + [body["detail"]]
    check_report(case, lines, "api")
    assert path.read_bytes() == original
    assert_nothing_queued(r)
    assert httpx.get(f"{server.url}/api/jobs", timeout=10).json()["count"] == 0


@pytest.mark.parametrize(("spec", "expected"), [
    ("lr: [0.001", "spec: not JSON (Expecting value: line 1 column 1 (char 0))"),
    ('["lr", 0.001]', "spec: must be a JSON object"),
])
def test_api_upload_rejects_a_spec_that_is_not_a_json_object(spec: str, expected: str, r: redis.Redis,
                                                              api: tuple[RunningServer, ApiSettings]) -> None:
    server, _ = api
    res = upload(server, BAD / "spec_negative_lr.jsonl", spec)
    assert res.status_code == 422 and res.json()["detail"] == expected
    assert_nothing_queued(r)


def test_corpus_is_complete() -> None:
    """At least 30 cases, every committed file is used, every case names an expectation."""
    assert len(CASES) >= 30
    named = {c["file"] for c in CASES} | {Path(c["file"]).with_suffix(".yaml").name for c in CASES}
    on_disk = {p.name for p in BAD.iterdir()} - {"cases.json", "symlink_target.jsonl"}
    assert on_disk <= named, on_disk - named
    assert all(c.get("expect") or c.get("expect_contains") for c in CASES)

