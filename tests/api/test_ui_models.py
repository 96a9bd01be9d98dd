"""The Models page in headless Chromium: the replica's state as a sentence, loud warnings and a table (never
raw JSON), and what ``best`` names and the rule it follows. Real app on real Redis and S3."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from services.api.main import create_app
from services.registry.aliases import set_alias
from services.registry.context import Registry
from services.registry.projection import VersionsProjection
from shared.bus import publish
from shared.events import Event, FileEntry, VersionStored
from shared.projection import ProjectionRunner
from shared.settings import ApiSettings, TargetConfig
from tests.support.browser import launch_chromium, watched_page
from tests.support.servers import serve_app

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not shutil.which("chromium"), reason="needs chromium")]


def _seed(settings: ApiSettings, r: redis.Redis) -> str:
    reg = Registry.open(settings, r)
    vid = "v-models-ui-10"
    files = [FileEntry(path="adapter_model.safetensors", sha256="ab" * 32, size=4096)]
    reg.primary.put_json(f"manifests/{vid}.json", {
        "version_id": vid, "kind": "adapter", "name": "job-1@step10", "files": [f.model_dump() for f in files],
        "lineage": {"job_id": "job-1", "step": 10}})
    publish(r, Event.create("version.stored", VersionStored(version_id=vid, kind="adapter", step=10, files=files,
                                                            manifest_key=f"manifests/{vid}.json"), job_id="job-1"))
    set_alias(reg, "best", vid, metric="heldout.loss", value=0.4213)
    ProjectionRunner(r, VersionsProjection()).catch_up()
    return vid


def _models_page(settings: ApiSettings, r: redis.Redis, shot: str) -> Iterator[dict]:
    from playwright.sync_api import sync_playwright

    vid = _seed(settings, r)
    app = create_app(settings, targets=[TargetConfig(name="box", url="http://127.0.0.1:9")])
    with serve_app(app) as server, sync_playwright() as p:
        api = httpx.get(f"{server.url}/api/registry/backup", timeout=30).json()
        browser = launch_chromium(p)
        page = watched_page(browser, viewport={"width": 1400, "height": 1000})
        page.goto(f"{server.url}/#/models")
        page.wait_for_function("document.body.dataset.ready === '1'")
        page.wait_for_selector("[data-testid=backup-summary]")
        page.wait_for_selector("[data-testid=best-now]")
        shots = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / shot), full_page=True)
        yield {"vid": vid, "api": api, "page": page,
               "summary": page.inner_text("[data-testid=backup-summary]"),
               "warnings": page.locator("[data-testid=backup-warning]").all_inner_texts(),
               "backup": page.inner_text("[data-testid=backup]"),
               "best": page.inner_text("[data-testid=best]")}
        assert page.errors == []
        browser.close()


@pytest.fixture
def api_settings(settings_kwargs: dict, tmp_path: Path) -> dict:
    return {**settings_kwargs, "api_token": "models-ui", "uploads_dir": tmp_path / "up"}


def test_no_replica_configured_and_nothing_replicated_warn(api_settings: dict, r: redis.Redis) -> None:
    settings = ApiSettings(**api_settings)
    for seen in _models_page(settings, r, "models-no-replica.png"):
        assert seen["summary"] == seen["api"]["summary"]
        assert seen["summary"].startswith("0 of 1 versions copied to the replica") and "1 not yet" in seen["summary"]
        assert len(seen["warnings"]) == 2, seen["warnings"]
        assert "nothing is replicated" in seen["warnings"][0]
        assert "no replica is configured" in seen["warnings"][1] and "not a backup" in seen["warnings"][1]
        assert [w.lstrip("⚠ ") for w in seen["warnings"]] == seen["api"]["warnings"]
        assert "{" not in seen["backup"]  # a sentence and a table, not JSON
        assert seen["page"].locator("[data-testid=backup] table tbody tr").count() == 1
        assert seen["vid"] in seen["backup"] and "not yet" in seen["backup"]
        assert f"best is {seen['vid']}: heldout.loss = 0.4213" in seen["best"]
        assert "held-out loss" in seen["best"]


def test_replica_on_the_primary_server_is_not_a_backup(api_settings: dict, r: redis.Redis) -> None:
    endpoint = api_settings["s3_endpoint"].replace("127.0.0.1", "localhost")
    settings = ApiSettings(**api_settings, replica_endpoint=endpoint, replica_bucket=f"{api_settings['bucket']}-rep")
    for seen in _models_page(settings, r, "models-same-server.png"):
        same = [w for w in seen["warnings"] if "primary's own server" in w]
        assert len(same) == 1 and "not a backup" in same[0] and endpoint in same[0], seen["warnings"]
