"""The Jobs page's submit box in headless Chromium: a CSV, a Parquet file and a JSON array are queued, and the
box says which format it detected (Playwright + Debian Chromium, the real app on real Redis and S3)."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from services.api.main import create_app
from shared.settings import ApiSettings
from shared.storage import ensure_bucket, s3_client
from tests.support.browser import launch_chromium, watched_page
from tests.support.servers import RunningServer, serve_app

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not shutil.which("chromium"), reason="needs chromium")]

TOKEN = "ui-formats-token"


@pytest.fixture
def server(settings_kwargs: dict, tmp_path: Path) -> Iterator[RunningServer]:
    settings = ApiSettings(**settings_kwargs, api_token=TOKEN, uploads_dir=tmp_path / "up")
    ensure_bucket(s3_client(settings), settings.bucket)
    with serve_app(create_app(settings, targets=[])) as running:
        yield running


@pytest.fixture
def page(server: RunningServer) -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        pg = watched_page(browser, viewport={"width": 1400, "height": 1000})
        pg.add_init_script(f"localStorage.setItem('trainyard.token', {TOKEN!r})")
        yield pg
        browser.close()


def test_the_submit_box_says_which_format_it_detected(server: RunningServer, page, tmp_path: Path) -> None:
    page.goto(f"{server.url}/#/jobs")
    page.wait_for_function("document.body.dataset.ready === '1'")
    assert ".csv" in page.locator(".drop").inner_text()  # the box names the types it takes
    sheet = tmp_path / "sheet.csv"
    sheet.write_text("instruction,input,output\nCapital of France?,,Paris\nTranslate,bonjour,hello\n")
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([{"text": "one"}, {"text": "two"}]), buf)
    (tmp_path / "hub.parquet").write_bytes(buf.getvalue())
    (tmp_path / "tools.json").write_text(json.dumps([{
        "conversations": [{"from": "human", "value": "Weather?"},
                          {"from": "function_call", "value": '{"name": "weather", "arguments": {}}'},
                          {"from": "observation", "value": "sunny"}, {"from": "gpt", "value": "Sunny."}],
        "tools": '[{"name": "weather", "parameters": {"type": "object"}}]'}]))
    detected = page.locator("[data-testid=detected]")
    for name, expected in [("sheet.csv", "detected: alpaca in a CSV file, 2 example(s)"),
                           ("hub.parquet", "detected: text in a Parquet file, 2 example(s)"),
                           ("tools.json", "detected: sharegpt in a JSON array, 1 example(s) (1 with tool calls)")]:
        page.set_input_files(".drop input[type=file]", str(tmp_path / name))
        page.wait_for_function("(want) => document.querySelector('[data-testid=detected]').innerText === want",
                               arg=expected, timeout=30_000)
        assert detected.inner_text() == expected
        assert page.locator("text=/^queued job /").count() >= 1  # the status line (and the toast)
    assert page.errors == []
