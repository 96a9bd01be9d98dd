"""Markup planted everywhere text from users or the model reaches the UI (job/dataset name, dataset text, the
prediction, a version note, a deployment reason) must show as text on every page: nothing executes in Chromium.
``tests/api/test_ui_pages.py`` checks the evolution example view; this walks every page with poison in every field.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import httpx
import pytest
import redis

from services.api.main import create_app
from services.deployer.projection import DeploymentsProjection
from services.registry.projection import VersionsProjection
from services.trainer.projection import JobsProjection
from shared.bus import publish
from shared.events import DeploymentFailed, DeploymentRequested, Event, FileEntry, VersionStored
from shared.projection import ProjectionRunner
from shared.settings import ApiSettings, TargetConfig
from shared.storage import ensure_bucket, s3_client
from tests.support.browser import launch_chromium
from tests.support.evolution import seed_evolution, seed_metrics
from tests.support.servers import serve_app

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not shutil.which("chromium"), reason="needs chromium")]

TOKEN = "xss-token"
POISON = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2"><svg onload="window.__pwned=3">'


def test_markup_in_every_field_never_executes(settings_kwargs: dict, tmp_path: Path, r: redis.Redis) -> None:
    from playwright.sync_api import sync_playwright

    settings = ApiSettings(**settings_kwargs, api_token=TOKEN, uploads_dir=tmp_path / "up")
    app = create_app(settings, targets=[TargetConfig(name="box", url="http://127.0.0.1:9")])
    ensure_bucket(s3_client(settings), settings.bucket)
    stop = threading.Event()
    runner = ProjectionRunner(redis.Redis.from_url(settings.redis_url), JobsProjection())
    thread = threading.Thread(target=runner.run, kwargs={"until": stop.is_set, "block_ms": 100}, daemon=True)
    thread.start()
    data = tmp_path / "poison.jsonl"
    line = '{"prompt": %s, "completion": %s}\n'
    import json

    data.write_text(line % (json.dumps(POISON), json.dumps(POISON)) * 3)
    try:
        with serve_app(app) as server:
            with data.open("rb") as f:
                res = httpx.post(f"{server.url}/api/jobs/upload", headers={"Authorization": f"Bearer {TOKEN}"},
                                 files={"file": ("poison.jsonl", f)}, timeout=30,
                                 data={"spec": '{"max_steps": 100}', "name": POISON})
            assert res.status_code == 201, res.text
            job_id = res.json()["job_id"]
            seed_metrics(r, job_id, steps=20, max_steps=100)
            seed_evolution(r, app.state.registry, job_id, n_examples=5, steps=[0, 10], poison=POISON)
            vid = f"v-{job_id}-10"
            files = [FileEntry(path="adapter_model.safetensors", sha256="cd" * 32, size=10)]
            app.state.registry.put_json(f"manifests/{vid}.json", {"version_id": vid, "kind": "adapter", "name": POISON,
                                                                 "note": POISON, "files": [f.model_dump() for f in files],
                                                                 "lineage": {"job_id": job_id, "step": 10}})
            publish(r, Event.create("version.stored", VersionStored(
                version_id=vid, kind="adapter", step=10, files=files, manifest_key=f"manifests/{vid}.json",
                name=POISON, note=POISON), job_id=job_id))
            publish(r, Event.create("deployment.requested", DeploymentRequested(
                deployment_id="dep-x", version_id=vid, target="box", reason=POISON)))
            publish(r, Event.create("deployment.failed", DeploymentFailed(
                deployment_id="dep-x", version_id=vid, target="box", reason=POISON)))
            ProjectionRunner(r, VersionsProjection()).catch_up()
            ProjectionRunner(r, DeploymentsProjection()).catch_up()
            with sync_playwright() as p:
                browser = launch_chromium(p)
                page = browser.new_page()
                dialogs: list[str] = []
                page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
                pages = ["jobs", f"live/{job_id}", f"evolution/{job_id}", "models", "deployments"]
                for name in pages:
                    page.goto(f"{server.url}/#/{name}")
                    page.wait_for_function("document.body.dataset.ready === '1'")
                    page.wait_for_timeout(500)
                    assert page.evaluate("window.__pwned") is None, name
                    assert page.locator("main script, main img[src='x'], main svg[onload]").count() == 0, name
                shown = page.content()
                browser.close()
            assert not dialogs
            assert "&lt;script&gt;" in shown or "&lt;img" in shown, "the poison should be visible as text"
    finally:
        stop.set()
        thread.join(5)
