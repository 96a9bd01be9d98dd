"""``GET /api/jobs/{id}/preview``, ``POST /api/jobs/preview`` and the Jobs page's panel (headless Chromium).

The real app on real Redis and S3, the trainer's jobs projection in a thread, the tiny model's tokenizer.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from services.api.main import create_app
from services.trainer import features
from services.trainer.datasets import load_and_validate
from services.trainer.projection import JobsProjection
from services.trainer.trainability import load_tokenizer
from shared.projection import ProjectionRunner
from shared.settings import ApiSettings
from shared.storage import ensure_bucket, s3_client
from tests.support.browser import launch_chromium, watched_page
from tests.support.servers import RunningServer, serve_app

TOKEN = "preview-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DEMO = Path(__file__).resolve().parents[2] / "shared" / "demo_data" / "demo.jsonl"
HOSTILE = '<img src=x onerror="window.pwned=1">'


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


def _dataset(tmp_path: Path) -> Path:
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": HOSTILE},
                                             {"role": "assistant", "content": f"ok {HOSTILE}"}]}) + "\n"
                    + DEMO.read_text())
    return path


def _submit(server: RunningServer, path: Path, spec: dict) -> str:
    with path.open("rb") as f:
        res = httpx.post(f"{server.url}/api/jobs/upload", headers=AUTH, files={"file": (path.name, f)},
                         data={"spec": json.dumps(spec)}, timeout=60)
    assert res.status_code == 201, res.text
    job_id = res.json()["job_id"]
    for _ in range(100):
        if httpx.get(f"{server.url}/api/jobs/{job_id}", timeout=10).status_code == 200:
            return job_id
        time.sleep(0.1)
    raise AssertionError("the job never reached the projection")


def test_job_preview_is_what_the_collator_produces(server: RunningServer, tiny_model: Path, tmp_path: Path) -> None:
    spec = {"base_model": str(tiny_model), "max_seq_len": 48, "batch_size": 4, "max_steps": 5}
    path = _dataset(tmp_path)
    job_id = _submit(server, path, spec)
    res = httpx.get(f"{server.url}/api/jobs/{job_id}/preview", params={"n": 4}, timeout=60)
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["job_id"] == job_id and body["count"] == 4 and body["stats"]["n_examples"] == 56
    tok = load_tokenizer(str(tiny_model))
    examples = load_and_validate(path).examples[:4]
    feats = features.build_features(tok, [e.messages for e in examples], 48)
    labels = features.collator(tok, False)(feats)["labels"]
    for i, shown in enumerate(body["examples"]):
        assert [t["id"] for t in shown["tokens"]] == feats[i]["input_ids"]
        assert [t["loss"] for t in shown["tokens"]] == (labels[i, :len(feats[i]["input_ids"])] != -100).tolist()

    assert httpx.get(f"{server.url}/api/jobs/job-nope/preview", timeout=10).status_code == 404
    assert httpx.get(f"{server.url}/api/jobs/{job_id}/preview", params={"n": 0}, timeout=10).status_code == 422


def test_preview_before_submit_stores_and_queues_nothing(server: RunningServer, tiny_model: Path,
                                                         tmp_path: Path) -> None:
    path = _dataset(tmp_path)
    spec = json.dumps({"base_model": str(tiny_model), "packing": True, "batch_size": 4})
    with path.open("rb") as f:
        res = httpx.post(f"{server.url}/api/jobs/preview", headers=AUTH, files={"file": (path.name, f)},
                         data={"spec": spec, "n": "8"}, timeout=60)
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["packing"] and [len(r["examples"]) for r in body["rows"]] == [4, 4]
    assert httpx.get(f"{server.url}/api/jobs", timeout=10).json()["count"] == 0
    assert list((tmp_path / "up" / "preview").glob("*")) == []  # the upload is not kept
    bad = tmp_path / "bad.jsonl"
    bad.write_text(DEMO.read_text().splitlines()[0] + "\n{not json\n")
    with bad.open("rb") as f:
        res = httpx.post(f"{server.url}/api/jobs/preview", headers=AUTH, files={"file": ("bad.jsonl", f)},
                         data={"spec": spec}, timeout=60)
    assert res.status_code == 422 and "line 2" in res.text and str(tmp_path) not in res.text
    with path.open("rb") as f:
        assert httpx.post(f"{server.url}/api/jobs/preview", files={"file": (path.name, f)},
                          timeout=60).status_code == 401


@pytest.mark.browser
@pytest.mark.skipif(not shutil.which("chromium"), reason="needs chromium")
def test_jobs_page_previews_a_job_and_an_upload_with_the_loss_highlighted(server: RunningServer, tiny_model: Path,
                                                                         tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    path = _dataset(tmp_path)
    job_id = _submit(server, path, {"base_model": str(tiny_model), "max_seq_len": 48, "max_steps": 5})
    expected = httpx.get(f"{server.url}/api/jobs/{job_id}/preview", timeout=60).json()
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = watched_page(browser, viewport={"width": 1400, "height": 1000})
        page.add_init_script(f"localStorage.setItem('trainyard.token', {TOKEN!r})")
        page.goto(f"{server.url}/#/jobs")
        page.wait_for_function("document.body.dataset.ready === '1'")
        page.click(f"button[data-preview='{job_id}']")
        first = page.locator("[data-testid='tokens-1-0']")
        first.wait_for(timeout=30_000)
        spans = first.locator("span.tok")
        assert spans.count() == expected["examples"][0]["n_tokens"]
        loss = [t["text"] for t in expected["examples"][0]["tokens"] if t["loss"]]
        assert first.locator("span.tok.loss").all_inner_texts() == loss
        assert page.locator("[data-testid=histogram] .bar").count() == 9

        page.check("input[aria-label='preview first']")
        page.fill("textarea[aria-label=spec]", json.dumps({"base_model": str(tiny_model), "packing": True}))
        page.set_input_files(".drop input[type=file]", str(path))
        page.wait_for_selector("[data-testid=rows] li", timeout=30_000)
        hostile = page.locator("[data-testid=preview-panel] [data-testid='tokens-1-0']")
        assert "<img" in hostile.inner_text()  # the dataset's markup shows as text ...
        assert page.evaluate("window.pwned") is None and page.locator("main img").count() == 0  # ... never runs
        assert httpx.get(f"{server.url}/api/jobs", timeout=10).json()["count"] == 1  # previewed, not submitted
        page.click("[data-testid=submit-previewed]")
        page.wait_for_selector("text=/^queued job /", timeout=30_000)
        assert httpx.get(f"{server.url}/api/jobs", timeout=10).json()["count"] == 2
        assert page.errors == []
        browser.close()
