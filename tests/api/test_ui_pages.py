"""Browser tests: Playwright driving Debian's Chromium against the real app on real Redis and S3."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from services.api.main import create_app
from services.deployer.projection import DeploymentsProjection
from services.registry.projection import VersionsProjection
from services.trainer.projection import JobsProjection
from shared.bus import publish
from shared.events import DeploymentRequested, DeploymentVerified, Event, FileEntry, VersionStored
from shared.projection import ProjectionRunner
from shared.settings import ApiSettings, TargetConfig
from shared.storage import ensure_bucket, s3_client
from tests.support.browser import launch_chromium, watched_page
from tests.support.evolution import seed_evolution, seed_metrics
from tests.support.servers import RunningServer, serve_app

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not shutil.which("chromium"), reason="needs chromium")]

TOKEN = "ui-token"
DEMO = Path(__file__).resolve().parents[2] / "shared" / "demo_data" / "demo.jsonl"
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
POISON = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'


@pytest.fixture
def stack(settings_kwargs: dict, tmp_path: Path, r: redis.Redis) -> Iterator[tuple[RunningServer, str, str]]:
    settings = ApiSettings(**settings_kwargs, api_token=TOKEN, uploads_dir=tmp_path / "up")
    app = create_app(settings, targets=[TargetConfig(name="box", url="http://127.0.0.1:9")])
    ensure_bucket(s3_client(settings), settings.bucket)
    registry = app.state.registry
    stop = threading.Event()
    runner = ProjectionRunner(redis.Redis.from_url(settings.redis_url), JobsProjection())
    thread = threading.Thread(target=runner.run, kwargs={"until": stop.is_set, "block_ms": 100}, daemon=True)
    thread.start()
    with serve_app(app) as server:
        with DEMO.open("rb") as f:
            res = httpx.post(f"{server.url}/api/jobs/upload", headers={"Authorization": f"Bearer {TOKEN}"},
                             files={"file": ("demo.jsonl", f)}, data={"spec": '{"max_steps": 100}'}, timeout=120)
        job_id = res.json()["job_id"]
        seed_metrics(r, job_id, steps=40, max_steps=100)
        seed_evolution(r, registry, job_id, n_examples=30, steps=list(range(0, 101, 10)), poison=POISON)
        vid = seed_version(r, registry, job_id)
        seed_deployment(r, vid)
        yield server, job_id, vid
    stop.set()
    thread.join(5)


def seed_version(r: redis.Redis, registry, job_id: str) -> str:
    vid = f"v-{job_id}-100"
    files = [FileEntry(path="adapter_model.safetensors", sha256="ab" * 32, size=4096)]
    registry.put_json(f"manifests/{vid}.json", {
        "version_id": vid, "kind": "adapter", "name": "demo", "files": [f.model_dump() for f in files],
        "lineage": {"job_id": job_id, "step": 100, "dataset_version_id": None, "parent_version_id": None}})
    publish(r, Event.create("version.stored", VersionStored(version_id=vid, kind="adapter", step=100, files=files,
                                                            manifest_key=f"manifests/{vid}.json"), job_id=job_id))
    ProjectionRunner(r, VersionsProjection()).catch_up()
    return vid


def seed_deployment(r: redis.Redis, vid: str) -> None:
    publish(r, Event.create("deployment.requested", DeploymentRequested(deployment_id="dep-1", version_id=vid,
                                                                        target="box")))
    publish(r, Event.create("deployment.verified", DeploymentVerified(deployment_id="dep-1", version_id=vid,
                                                                      target="box", adapter_name="demo-s100",
                                                                      checked=16, matched=16)))
    ProjectionRunner(r, DeploymentsProjection()).catch_up()


@pytest.fixture
def page(stack) -> Iterator:
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = launch_chromium(p)
        pg = watched_page(browser, viewport={"width": 1400, "height": 1000})
        yield pg
        browser.close()


def goto(page, url: str) -> None:
    page.goto(url)
    page.wait_for_function("document.body.dataset.ready === '1'")


def test_every_page_loads_without_console_errors(stack, page) -> None:
    server, job_id, vid = stack
    for name in ("jobs", "live", "evolution", "models", "deployments"):
        goto(page, f"{server.url}/#/{name}")
        page.wait_for_timeout(300)
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    goto(page, f"{server.url}/#/live/{job_id}")
    assert page.locator("[data-chart='loss'] canvas").count() == 1
    page.screenshot(path=str(SHOTS / "live-job.png"), full_page=True)
    goto(page, f"{server.url}/#/models")
    assert page.get_by_text(vid).count() >= 1
    page.get_by_text(vid).first.click()
    page.wait_for_selector("[data-testid=lineage]")
    goto(page, f"{server.url}/#/deployments")
    assert vid in page.locator("[data-testid=current-box]").inner_text()
    assert page.errors == []


def test_pause_and_resume_from_the_jobs_page(stack, page) -> None:
    server, job_id, _ = stack
    goto(page, f"{server.url}/#/jobs")
    state = page.locator(f"[data-testid='state-{job_id}']")
    assert state.inner_text() == "queued"
    page.locator(f"button[data-action=pause][data-job='{job_id}']").click()
    page.wait_for_function(f"document.querySelector(\"[data-testid='state-{job_id}']\").innerText === 'paused'",
                           timeout=10_000)
    page.screenshot(path=str(SHOTS / "jobs-paused.png"), full_page=True)
    page.locator(f"button[data-action=resume][data-job='{job_id}']").click()
    page.wait_for_function(f"document.querySelector(\"[data-testid='state-{job_id}']\").innerText === 'queued'",
                           timeout=10_000)
    assert page.errors == []


def test_evolution_example_curve_diff_and_no_script_runs(stack, page) -> None:
    server, job_id, _ = stack
    goto(page, f"{server.url}/#/evolution/{job_id}")
    assert page.locator("[data-chart='loss'] canvas").count() == 1
    assert page.locator("canvas[data-chart='cartography']").count() == 1
    assert "of 30" in page.locator("[data-testid=example-count]").inner_text()
    # filter: only never-learned examples (i % 5 == 4 in the seeded data, and the poisoned example 0)
    page.select_option("[data-testid=filter-state]", "never_learned")
    page.wait_for_function("document.querySelector('[data-testid=example-count]').innerText.endsWith('of 7')")
    page.select_option("[data-testid=filter-state]", "")
    page.wait_for_function("document.querySelector('[data-testid=example-count]').innerText.endsWith('of 30')")
    # open example 0, whose prediction is markup: it shows as text and nothing executes
    page.locator("[data-testid=examples] tbody tr", has_text="ex-0000").click()
    page.wait_for_selector("[data-testid=diff]")
    assert page.locator("[data-testid=prediction]").inner_text() == POISON
    assert "<b>bold</b>" in page.locator("[data-testid=question]").inner_text()
    assert page.locator("[data-testid=example-detail] [data-chart='this example'] canvas").count() == 1
    diff = page.locator("[data-testid=diff]")
    assert diff.locator(".del").count() >= 1 and diff.locator(".ins").count() >= 1
    # the step slider moves the shown prediction to another step
    slider = page.locator("[data-testid=step-slider]")
    slider.fill("0")
    assert page.locator("[data-testid=step-label]").inner_text() == "step 0"
    page.screenshot(path=str(SHOTS / "evolution-example.png"), full_page=True)
    assert page.evaluate("window.__pwned") is None
    assert page.locator("main img").count() == 0 and page.locator("main script").count() == 0
    assert page.errors == []
