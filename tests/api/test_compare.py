"""``GET /api/evolution/compare``, ``trainyard evolution compare`` (a subprocess) and the Evolution page's compare
view (headless Chromium): the real app on real Redis and S3, histories through the real evolution projection."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.api.main import create_app
from shared.settings import ApiSettings
from shared.storage import ensure_bucket, s3_client
from tests.support.browser import launch_chromium, watched_page
from tests.support.evolution import seed_evolution
from tests.support.servers import RunningServer, serve_app

STEPS = [10, 20, 30, 40, 50, 60, 70]
POISON = '<img src=x onerror="window.pwned=1">[bold]x[/bold]'


@pytest.fixture
def server(settings_kwargs: dict, tmp_path: Path, r) -> Iterator[RunningServer]:
    settings = ApiSettings(**settings_kwargs, api_token="compare-token", uploads_dir=tmp_path / "up")
    ensure_bucket(s3_client(settings), settings.bucket)
    app = create_app(settings, targets=[])
    seed_evolution(r, app.state.registry, "job-a", n_examples=12, steps=STEPS, poison=POISON)
    seed_evolution(r, app.state.registry, "job-b", n_examples=12, steps=STEPS, never=3)
    seed_evolution(r, app.state.registry, "job-x", n_examples=4, steps=[10], id_prefix="line-", topic="thing",
                   base_model="other")
    with serve_app(app) as running:
        yield running


def cli(server: RunningServer, *args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("trainyard")
    env = {**os.environ, "TRAINYARD_API_URL": server.url, "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120, env=env)


def test_compare_api_and_its_errors(server: RunningServer) -> None:
    res = httpx.get(f"{server.url}/api/evolution/compare", params={"jobs": "job-a,job-b"}, timeout=30)
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["count"] == 12 and body["axis"] == "step" and len(body["curves"]) == 2
    top = body["examples"][0]
    assert {r["state"] for r in top["runs"]} == {"learned", "never_learned"}
    res = httpx.get(f"{server.url}/api/evolution/compare", params={"jobs": "job-a,job-x"}, timeout=30)
    assert res.status_code == 422 and "share no tracked example" in res.json()["detail"]
    res = httpx.get(f"{server.url}/api/evolution/compare", params={"jobs": "job-a,job-nope"}, timeout=30)
    assert res.status_code == 404 and "job-nope" in res.json()["detail"]
    res = httpx.get(f"{server.url}/api/evolution/compare", params={"jobs": "job-a"}, timeout=30)
    assert res.status_code == 422 and "two or more" in res.json()["detail"]


def test_cli_compare_table_json_and_csv(server: RunningServer) -> None:
    proc = cli(server, "evolution", "compare", "job-a", "job-b")
    assert proc.returncode == 0, proc.stderr
    assert "A = job-a" in proc.stdout and "12 shared examples" in proc.stdout
    assert "learned in B; never learned in A" in proc.stdout
    proc = cli(server, "evolution", "compare", "job-a", "job-b", "--json")
    assert json.loads(proc.stdout)["count"] == 12
    proc = cli(server, "evolution", "compare", "job-a", "job-b", "--csv")
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert len(rows) == 12 and {"state_A", "state_B", "learned_at_B", "change"} <= set(rows[0])
    four = next(r for r in rows if r["id"] == "ex-0004")
    assert (four["state_A"], four["state_B"], four["learned_at_B"]) == ("never_learned", "learned", "50")
    proc = cli(server, "evolution", "compare", "job-a", "job-x")
    assert proc.returncode == 1 and "share no tracked example" in proc.stderr
    assert proc.stderr.strip().count("\n") == 0  # one line, no traceback


@pytest.mark.browser
@pytest.mark.skipif(not shutil.which("chromium"), reason="needs chromium")
def test_evolution_page_compares_two_runs(server: RunningServer) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = watched_page(browser, viewport={"width": 1400, "height": 1000})
        page.goto(f"{server.url}/#/evolution/job-a")
        page.wait_for_function("document.body.dataset.ready === '1'")
        page.select_option("select[aria-label='compare with']", "job-b")
        page.click("[data-testid=compare-go]")
        page.wait_for_function("location.hash.startsWith('#/evolution/compare/')")
        table = page.locator("[data-testid=compare-table]")
        table.wait_for(timeout=20_000)
        first = table.locator("tbody tr").first
        assert "in B" in first.inner_text() and "in A" in first.inner_text()
        assert page.locator("[data-testid=compare-chart] svg, [data-testid=compare-chart] canvas").count() >= 1
        table.locator("tbody tr", has_text="ex-0000").click()
        sides = page.locator("[data-testid=compare-side]")
        sides.first.wait_for()
        assert sides.count() == 2
        assert POISON in sides.nth(0).inner_text()  # job A's prediction, as text
        assert page.evaluate("window.pwned") is None and page.locator("main img").count() == 0
        assert page.locator("[data-testid=compare-side] [data-testid=diff]").count() == 2

        page.goto(f"{server.url}/#/evolution/compare/job-a,job-x")
        page.wait_for_selector("text=/share no tracked example/", timeout=20_000)
        assert [e for e in page.errors if "422" not in e] == []
        browser.close()
