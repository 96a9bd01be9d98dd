"""The submit form's training method and continue-from fields (Playwright + Chromium on the real app)."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from tests.api.test_ui_submit import DEMO, goto, page, queued_job_id, server  # noqa: F401 - fixtures
from tests.support.servers import RunningServer

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not shutil.which("chromium"), reason="needs chromium")]


def test_the_form_submits_a_full_fine_tune_and_names_a_bad_init_from(server: RunningServer, page,  # noqa: F811
                                                                      tmp_path: Path) -> None:
    goto(page, f"{server.url}/#/jobs")
    data = tmp_path / "full.jsonl"
    data.write_bytes(DEMO.read_bytes())
    page.select_option("select[aria-label=method]", "full")
    page.fill("textarea[aria-label=spec]", '{"max_steps": 5, "device": "cpu"}')
    page.set_input_files(".drop input[type=file]", str(data))
    job_id = queued_job_id(page)
    spec = httpx.get(f"{server.url}/api/jobs/{job_id}", timeout=10).json()["spec"]
    assert spec["method"] == "full" and spec["gradient_checkpointing"] is True and spec["max_steps"] == 5

    again = tmp_path / "again.jsonl"
    again.write_bytes(DEMO.read_bytes())
    page.fill("input[aria-label='init from']", "no-such-version")
    page.set_input_files(".drop input[type=file]", str(again))
    page.wait_for_selector("text=/neither a stored version id nor an alias/", timeout=30_000)
    assert len(httpx.get(f"{server.url}/api/jobs", timeout=10).json()["data"]) == 1
