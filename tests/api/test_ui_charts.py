"""Charts in headless Chromium: small values (a 2e-4 learning rate) get readable, distinct axis labels on every
Live chart; pause, resume, restart and preemption are marked on the Live charts; an example whose prediction
stopped at the token limit is flagged on the Evolution page. Real app on real Redis and S3."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from services.api.main import create_app
from services.evaluator.readmodel import EvolutionProjection
from services.trainer.projection import JobsProjection
from shared.bus import publish_many
from shared.events import (
    Event,
    JobPaused,
    JobPreempted,
    JobResumed,
    JobStarted,
    MetricsLogged,
    SnapshotCaptured,
)
from shared.projection import ProjectionRunner
from shared.settings import ApiSettings, TargetConfig
from shared.storage import ensure_bucket, s3_client, snapshot_key
from tests.support.browser import launch_chromium, watched_page
from tests.support.evolution import snapshot_doc
from tests.support.servers import RunningServer, serve_app

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not shutil.which("chromium"), reason="needs chromium")]

TOKEN = "charts-token"
DEMO = Path(__file__).resolve().parents[2] / "shared" / "demo_data" / "demo.jsonl"
LIVE_CHARTS = ("loss", "learning rate", "grad norm", "tokens/s")


@pytest.fixture
def app(settings_kwargs: dict, tmp_path: Path, r: redis.Redis) -> Iterator[tuple[RunningServer, str]]:
    settings = ApiSettings(**settings_kwargs, api_token=TOKEN, uploads_dir=tmp_path / "up")
    application = create_app(settings, targets=[TargetConfig(name="box", url="http://127.0.0.1:9")])
    ensure_bucket(s3_client(settings), settings.bucket)
    with serve_app(application) as server:
        with DEMO.open("rb") as f:
            res = httpx.post(f"{server.url}/api/jobs/upload", headers={"Authorization": f"Bearer {TOKEN}"},
                             files={"file": ("demo.jsonl", f)}, data={"spec": '{"max_steps": 40}'}, timeout=120)
        job_id = res.json()["job_id"]
        _seed_run(r, job_id)
        _seed_snapshots(r, application.state.registry, job_id)
        yield server, job_id


def _seed_run(r: redis.Redis, job_id: str) -> None:
    """40 logged steps with a learning rate around 2e-4, paused at 10, resumed, preempted at 20, restarted at 30."""
    metrics = [Event.create("metrics.logged", MetricsLogged(
        step=s, loss=2.0 / s ** 0.5, learning_rate=2e-4 * (1 - s / 50), grad_norm=0.004 / s, tokens_per_s=900.0 + s,
        memory_mb=512.0, max_steps=40), job_id=job_id) for s in range(1, 41)]
    run = [Event.create("job.started", JobStarted(attempt=1), job_id=job_id),
           Event.create("job.paused", JobPaused(reason="user", step=10), job_id=job_id),
           Event.create("job.resumed", JobResumed(from_step=10), job_id=job_id),
           Event.create("job.preempted", JobPreempted(by_job_id="job-urgent", step=20), job_id=job_id),
           Event.create("job.started", JobStarted(attempt=2, resumed_from_step=30), job_id=job_id)]
    publish_many(r, metrics[:10] + run[:3] + metrics[10:20] + run[3:4] + metrics[20:30] + run[4:] + metrics[30:])
    ProjectionRunner(r, JobsProjection()).catch_up()


def _seed_snapshots(r: redis.Redis, registry, job_id: str) -> None:
    """Snapshots where example 1's prediction always stops at the token limit (flags truncated, at_limit)."""
    events = []
    for step in (0, 10, 20):
        doc = snapshot_doc(job_id, step, 6)
        doc["examples"][1].update(prediction="a very long answer " * 8, exact=False, pred_len=48,
                                  flags=["truncated", "at_limit"])
        registry.put_json(snapshot_key(job_id, step), doc)
        events.append(Event.create("snapshot.captured", SnapshotCaptured(
            version_id=doc["version_id"], step=step, key=snapshot_key(job_id, step), aggregates=doc["aggregates"]),
            job_id=job_id))
    publish_many(r, events)
    ProjectionRunner(r, EvolutionProjection(registry)).catch_up()


@pytest.fixture
def page() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        pg = watched_page(browser, viewport={"width": 1400, "height": 1000})
        yield pg
        assert pg.errors == []
        browser.close()


def test_live_axes_read_small_values_and_mark_the_run(app, page) -> None:
    server, job_id = app
    page.goto(f"{server.url}/#/live/{job_id}")
    page.wait_for_function("document.body.dataset.ready === '1'")
    page.wait_for_function("[...document.querySelectorAll('[data-chart]')].filter(c => c.dataset.yTicks"
                           " && c.dataset.markers).length >= 4")
    for title in LIVE_CHARTS:
        chart = page.locator(f'[data-chart="{title}"]')
        ticks = chart.get_attribute("data-y-ticks").split("|")
        assert len(ticks) >= 2 and len(set(ticks)) == len(ticks), (title, ticks)
        assert chart.get_attribute("data-markers") == "paused@10 resumed@10 preempted@20 restarted@30", title
    lr = page.locator('[data-chart="learning rate"]').get_attribute("data-y-ticks").split("|")
    assert all(t == "0" or "e-" in t for t in lr), lr  # 1.2e-4 … 2.0e-4, never 0, 0, 0
    assert any(t.endswith("e-4") for t in lr), lr
    legend = page.inner_text("[data-testid=run-markers]")
    for words in ("paused at step 10", "resumed at step 10", "preempted at step 20 (by job-urgent)",
                  "restarted at step 30 (attempt 2)"):
        assert words in legend, legend
    shots = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "live-small-values-markers.png"), full_page=True)


def test_evolution_flags_a_prediction_at_the_token_limit(app, page) -> None:
    server, job_id = app
    page.goto(f"{server.url}/#/evolution/{job_id}/1")
    page.wait_for_function("document.body.dataset.ready === '1'")
    page.wait_for_selector("[data-testid=at-limit]")
    assert "token limit" in page.inner_text("[data-testid=at-limit]")
    assert page.locator("[data-testid=at-limit-badge]").count() == 1  # example 1 only
    page.goto(f"{server.url}/#/evolution/{job_id}/2")
    page.wait_for_function("document.body.dataset.ready === '1'")
    page.wait_for_selector("[data-testid=prediction]")
    assert page.locator("[data-testid=at-limit]").count() == 0
