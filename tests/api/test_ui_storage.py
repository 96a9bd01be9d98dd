"""The Models page shows the bucket budget's plan in headless Chromium: the sentence, and what would go with its
reasons, from the real app on real Redis and S3 (versions seeded through the registry's events)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import redis

from services.api.main import create_app
from services.registry.context import Registry
from services.registry.projection import VersionsProjection
from shared.bus import publish
from shared.events import Event, FileEntry, VersionReplicated, VersionStored
from shared.projection import ProjectionRunner
from shared.settings import ApiSettings
from tests.support.browser import launch_chromium, watched_page
from tests.support.servers import serve_app

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not shutil.which("chromium"), reason="needs chromium")]


def _seed(r: redis.Redis) -> list[str]:
    vids = []
    for step in (10, 20, 30):
        vid = f"ad-plan-<b>{step}</b>"  # ids are shown as text, never as markup
        files = [FileEntry(path="adapter_model.safetensors", sha256=f"{step:02d}" * 32, size=2_000_000)]
        stored = VersionStored(version_id=vid, kind="adapter", step=step, files=files, size=2_000_000,
                               manifest_key=f"manifests/{vid}.json", created_at=f"2026-12-01T00:00:{step}",
                               lineage={"job_id": "job-9", "metrics": {"loss": 1 + step / 100}})
        publish(r, Event.create("version.stored", stored, job_id="job-9"))
        publish(r, Event.create("version.replicated", VersionReplicated(version_id=vid, replica="replica"),
                                job_id="job-9"))
        vids.append(vid)
    ProjectionRunner(r, VersionsProjection()).catch_up()
    return vids


def test_models_page_shows_what_the_budget_would_remove(settings_kwargs: dict, r: redis.Redis, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("TRAINYARD_BUCKET_BUDGET_GB", "0.003")
    monkeypatch.setenv("TRAINYARD_KEEP_LAST", "1")
    settings = ApiSettings(**settings_kwargs, api_token="plan-ui", uploads_dir=tmp_path / "up")
    Registry.open(settings, r)  # the buckets (the page also shows the backup status)
    vids = _seed(r)
    app = create_app(settings, targets=[])
    with serve_app(app) as server, sync_playwright() as p:
        browser = launch_chromium(p)
        page = watched_page(browser, viewport={"width": 1400, "height": 1000})
        page.goto(f"{server.url}/#/models")
        page.wait_for_selector("[data-testid=storage-plan]")
        summary = page.inner_text("[data-testid=storage-plan-summary]")
        plan = page.inner_text("[data-testid=storage-plan]")
        assert summary.startswith("6.0 MB in use of a 3.0 MB budget; 1 version(s) would go, freeing 2.0 MB"), summary
        assert vids[1] in plan and "oldest first, over budget" in plan and vids[2] not in plan.split(summary)[1]
        assert page.locator("[data-testid=storage-plan] b").count() == 0
        assert page.errors == []
        browser.close()
