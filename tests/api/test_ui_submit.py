"""Browser tests of submitting by file and of the Live page's ETA and memory (Playwright + Debian Chromium,
the real app on real Redis and S3, the trainer's jobs projection running in a thread)."""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from services.api.main import create_app
from services.trainer.projection import JobsProjection
from shared.bus import publish
from shared.events import Event, MetricsLogged
from shared.projection import ProjectionRunner
from shared.settings import ApiSettings
from shared.storage import ensure_bucket, s3_client
from tests.support.browser import launch_chromium, watched_page
from tests.support.evolution import seed_metrics
from tests.support.servers import RunningServer, serve_app

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not shutil.which("chromium"), reason="needs chromium")]

TOKEN = "ui-submit-token"
DEMO = Path(__file__).resolve().parents[2] / "shared" / "demo_data" / "demo.jsonl"


@pytest.fixture
def server(settings_kwargs: dict, tmp_path: Path) -> Iterator[RunningServer]:
    settings = ApiSettings(**settings_kwargs, api_token=TOKEN, uploads_dir=tmp_path / "up")
    ensure_bucket(s3_client(settings), settings.bucket)
    stop = threading.Event()
    runner = ProjectionRunner(redis.Redis.from_url(settings.redis_url), JobsProjection())
    thread = threading.Thread(target=runner.run, kwargs={"until": stop.is_set, "block_ms": 100}, daemon=True)
    thread.start()
    with serve_app(create_app(settings, targets=[])) as running:
        yield running
    stop.set()
    thread.join(5)


@pytest.fixture
def page(server: RunningServer) -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        pg = watched_page(browser, viewport={"width": 1400, "height": 1000})
        # the token the UI sends with mutations (what a user types once; kept in localStorage)
        pg.add_init_script(f"localStorage.setItem('trainyard.token', {TOKEN!r})")
        yield pg
        browser.close()


def goto(page, url: str) -> None:
    page.goto(url)
    page.wait_for_function("document.body.dataset.ready === '1'")


def queued_job_id(page) -> str:
    status = page.locator("text=/^queued job /")
    status.first.wait_for(timeout=30_000)
    return re.sub(r"^queued job ", "", status.first.inner_text().strip())


def jobs(server: RunningServer) -> list[dict]:
    return httpx.get(f"{server.url}/api/jobs", timeout=10).json()["data"]


def test_submit_by_file_input_and_by_drop_then_a_bad_drop_is_refused(server: RunningServer, page,
                                                                     tmp_path: Path) -> None:
    goto(page, f"{server.url}/#/jobs")
    assert "No jobs yet" in page.locator("main").inner_text()
    mine = tmp_path / "picked.jsonl"
    mine.write_bytes(DEMO.read_bytes())
    page.fill("textarea[aria-label=spec]", '{"max_steps": 7}')
    page.set_input_files(".drop input[type=file]", str(mine))
    picked = queued_job_id(page)
    page.wait_for_selector(f"[data-testid='state-{picked}']", timeout=10_000)  # the table refreshed by itself
    assert page.locator(f"[data-testid='state-{picked}']").inner_text() == "queued"
    row = page.locator("main table tr", has_text=picked).first
    assert "picked" in row.inner_text() and "0/7" in row.inner_text()

    lines = DEMO.read_text()
    page.evaluate("""([name, text]) => {
        const dt = new DataTransfer();
        dt.items.add(new File([text], name, { type: "application/jsonl" }));
        document.querySelector('.drop').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true,
                                                                              cancelable: true }));
    }""", ["dropped.jsonl", lines])
    page.wait_for_function("[...document.querySelectorAll('[data-testid^=state-]')].length === 2", timeout=30_000)
    ids = {j["id"] for j in jobs(server)}
    assert picked in ids and len(ids) == 2
    dropped = next(j for j in jobs(server) if j["id"] != picked)
    assert dropped["name"] == "dropped" and dropped["state"] == "queued"

    first = lines.splitlines()[0]
    page.evaluate("""([name, text]) => {
        const dt = new DataTransfer();
        dt.items.add(new File([text], name));
        document.querySelector('.drop').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true,
                                                                              cancelable: true }));
    }""", ["broken.jsonl", f"{first}\n{{not json\n"])
    page.wait_for_selector("text=/line 2/", timeout=30_000)  # the line-numbered reason, shown in the page
    time.sleep(0.5)
    assert len(jobs(server)) == 2  # nothing queued for the bad file
    assert page.locator("[data-testid^=state-]").count() == 2
    assert [e for e in page.errors if "422" not in e] == []  # only the refused upload's 422 is logged


def test_live_page_shows_memory_and_an_eta_from_the_metrics_stream(server: RunningServer, page,
                                                                   r: redis.Redis) -> None:
    with DEMO.open("rb") as f:
        res = httpx.post(f"{server.url}/api/jobs/upload", headers={"Authorization": f"Bearer {TOKEN}"},
                         files={"file": ("demo.jsonl", f)}, data={"spec": '{"max_steps": 100}'}, timeout=60)
    assert res.status_code == 201, res.text
    job_id = res.json()["job_id"]
    seed_metrics(r, job_id, steps=10, max_steps=100)  # memory_mb=512 in each point
    goto(page, f"{server.url}/#/live/{job_id}")
    kv = page.locator("main dl.kv")
    page.wait_for_function("document.querySelector('main dl.kv') && "
                           "document.querySelector('main dl.kv').innerText.includes('512 MB')", timeout=10_000)
    assert page.locator("[data-testid=eta]").inner_text() == "–"  # no rate measured yet
    page.wait_for_timeout(500)  # the page's SSE connection is open by now
    for step in range(11, 16):  # five steps ~0.25 s apart: about 4 steps/s, 85 steps to go
        publish(r, Event.create("metrics.logged", MetricsLogged(step=step, loss=0.5, learning_rate=1e-3,
                                                                grad_norm=1.0, tokens_per_s=1000.0,
                                                                memory_mb=2048.0, max_steps=100), job_id=job_id))
        time.sleep(0.25)
    page.wait_for_function("document.querySelector('[data-testid=eta]').innerText !== '–'", timeout=10_000)
    eta = page.locator("[data-testid=eta]").inner_text()
    seconds = int(re.fullmatch(r"(\d+) s", eta).group(1))  # type: ignore[union-attr]
    assert 5 <= seconds <= 120, eta  # 85 steps at roughly 4/s, with room for a busy machine
    assert "2048 MB" in kv.inner_text() and "512 MB" not in kv.inner_text()
    assert "15" in kv.inner_text()  # progress follows the live step
    assert page.errors == []
