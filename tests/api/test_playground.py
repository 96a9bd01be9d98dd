"""The playground through the gateway: the ``openai`` client against ``/api/playground/{target}/v1`` with the
user's API token, a real inference server (tiny model) behind it, adapter versions in a real S3 registry."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.api import playground
from services.api.main import create_app
from shared.settings import ApiSettings, TargetConfig
from shared.storage import ensure_bucket, s3_client
from tests.support.deploy import Adapter, store_version
from tests.support.inference import TOKEN as INFERENCE_TOKEN
from tests.support.inference import Running, run_server
from tests.support.lora import make_lora_adapter
from tests.support.servers import RunningServer, serve_app

TOKEN = "playground-token"
ASK = [{"role": "user", "content": "What is two plus two?"}]


@pytest.fixture
def box(tiny_model: Path, tmp_path: Path) -> Iterator[Running]:
    with run_server(tiny_model, tmp_path / "adapters") as running:
        yield running


@pytest.fixture
def gateway(settings_kwargs: dict, tmp_path: Path, box: Running) -> Iterator[tuple[RunningServer, object]]:
    settings = ApiSettings(**settings_kwargs, api_token=TOKEN, uploads_dir=tmp_path / "up")
    ensure_bucket(s3_client(settings), settings.bucket)
    app = create_app(settings, targets=[TargetConfig(name="box", url=box.url, token=INFERENCE_TOKEN)])
    with serve_app(app) as running:
        yield running, app.state.registry


def _openai(url: str, token: str = TOKEN):  # noqa: ANN202
    from openai import OpenAI

    return OpenAI(base_url=f"{url}/api/playground/box/v1", api_key=token, max_retries=0, timeout=120)


def _version(registry, tiny_model: Path, tmp_path: Path, job: str, seed: int, base: Path | None = None) -> str:
    path = make_lora_adapter(base or tiny_model, tmp_path / job, seed=seed, scale=2.0)
    return store_version(registry, base or tiny_model, Adapter(path, []), job_id=job, step=10, snapshot=False)


def _announce(r, registry, version_id: str) -> None:
    """``version.stored`` for a stored version, folded into the versions projection the Models page reads."""
    from services.registry.projection import VersionsProjection
    from shared.bus import publish
    from shared.events import Event, FileEntry, VersionStored
    from shared.projection import ProjectionRunner

    manifest = registry.manifest(version_id)
    files = [FileEntry(**f) for f in manifest["files"]]
    publish(r, Event.create("version.stored", VersionStored(
        version_id=version_id, kind="adapter", step=manifest["lineage"]["step"], files=files,
        manifest_key=f"manifests/{version_id}.json"), job_id=manifest["lineage"]["job_id"]))
    ProjectionRunner(r, VersionsProjection()).catch_up()


def _stream(client, model: str, max_tokens: int = 12) -> str:
    chunks = client.chat.completions.create(model=model, messages=ASK, max_tokens=max_tokens, stream=True)
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_two_versions_and_the_base_stream_beside_a_deployment(gateway, box: Running, tiny_model: Path,
                                                             tmp_path: Path, monkeypatch) -> None:
    server, registry = gateway
    one = _version(registry, tiny_model, tmp_path, "job-one", 1)
    two = _version(registry, tiny_model, tmp_path, "job-two", 2)
    served = box.install(make_lora_adapter(tiny_model, tmp_path / "served", seed=5), "deployed")
    with box.client() as c:  # what a deployment serves: the playground must leave it alone
        assert c.post("/v1/load_lora_adapter", json={"lora_name": "serving", "lora_path": str(served)}).is_success
    client = _openai(server.url)
    a, b = _stream(client, one), _stream(client, two)
    base = client.chat.completions.create(model="base", messages=ASK, max_tokens=12).choices[0].message.content
    assert a and b and len({a, b, base}) > 1  # different versions answer differently
    with box.client() as c:
        names = {m["id"] for m in c.get("/v1/models").json()["data"]}
        direct = c.post("/v1/chat/completions", json={"model": playground.adapter_name(one), "messages": ASK,
                                                       "max_tokens": 12, "temperature": 0}).json()
    assert {"serving", playground.adapter_name(one), playground.adapter_name(two)} <= names
    assert direct["choices"][0]["message"]["content"] == a  # the same greedy answer as the target gives

    monkeypatch.setattr(playground, "IDLE_S", -1.0)  # everything idle: the next request unloads the others
    assert _stream(client, two) == b
    with box.client() as c:
        names = {m["id"] for m in c.get("/v1/models").json()["data"]}
    assert playground.adapter_name(one) not in names and "serving" in names and playground.adapter_name(two) in names


def test_unknown_trashed_foreign_and_unauthorised(gateway, tiny_model: Path, tmp_path: Path) -> None:
    from shared.modeling import build_tiny_model

    server, registry = gateway
    body = {"messages": ASK, "max_tokens": 4}
    post = lambda model, token=TOKEN: httpx.post(  # noqa: E731
        f"{server.url}/api/playground/box/v1/chat/completions", json={**body, "model": model},
        headers={"Authorization": f"Bearer {token}"}, timeout=120)
    res = post("v-nope")
    assert res.status_code == 404 and "v-nope" in res.json()["detail"]
    trashed = _version(registry, tiny_model, tmp_path, "job-trash", 3)
    registry.put_json(f"state/{trashed}.json", {"trashed_at": "2026-01-01T00:00:00+00:00"})
    res = post(trashed)
    assert res.status_code == 409 and "trash" in res.json()["detail"]
    other = build_tiny_model(tmp_path / "other-base", hidden_size=32)
    foreign = _version(registry, tiny_model, tmp_path, "job-foreign", 4, base=other)
    res = post(foreign)
    assert res.status_code == 422 and "cannot be loaded there" in res.json()["detail"]
    assert str(tmp_path) not in res.json()["detail"] and "other-base" in res.json()["detail"]
    assert post("base", token="wrong").status_code == 401
    res = httpx.post(f"{server.url}/api/playground/nowhere/v1/chat/completions", json={**body, "model": "base"},
                     headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert res.status_code == 404


@pytest.mark.browser
@pytest.mark.skipif(not shutil.which("chromium"), reason="needs chromium")
def test_models_page_try_it_streams_a_version_and_the_base_side_by_side(gateway, tiny_model: Path,
                                                                      tmp_path: Path, r) -> None:
    from playwright.sync_api import sync_playwright

    from tests.support.browser import launch_chromium, watched_page

    server, registry = gateway
    one = _version(registry, tiny_model, tmp_path, "job-one", 1)
    _announce(r, registry, one)
    client = _openai(server.url)
    want = [_stream(client, one, 128), _stream(client, "base", 128)]  # what the page asks for
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = watched_page(browser, viewport={"width": 1400, "height": 1000})
        page.add_init_script(f"localStorage.setItem('trainyard.token', {TOKEN!r})")
        page.goto(f"{server.url}/#/models")
        page.wait_for_function("document.body.dataset.ready === '1'")
        try:
            page.wait_for_function("document.querySelector('select[aria-label=target]').options.length === 1")
        except Exception:
            dbg = page.evaluate("async () => [document.querySelectorAll('select[aria-label=target]').length,"
                                " await (await fetch('/api/targets')).text()]")
            raise AssertionError(f"{page.errors} {dbg}") from None
        page.click(f"button[data-try='{one}']")
        assert page.locator("select[aria-label='model A']").input_value() == one
        assert page.locator("select[aria-label='model B']").input_value() == "base"
        page.fill("textarea[aria-label=prompt]", ASK[0]["content"])
        page.click("[data-testid=send]")
        for testid, text in zip(("answer-a", "answer-b"), want, strict=True):
            page.wait_for_function(f"document.querySelector('[data-testid={testid}]').textContent.length >= {len(text)}",
                                   timeout=60_000)
        assert [page.locator(f"[data-testid={t}]").text_content() for t in ("answer-a", "answer-b")] == want
        page.select_option("select[aria-label='model A']", "base")
        page.evaluate("(v) => { const o = document.createElement('option'); o.value = v; o.text = v;"
                      " document.querySelector('select[aria-label=\"model B\"]').append(o); }", "v-missing")
        page.select_option("select[aria-label='model B']", "v-missing")
        page.click("[data-testid=send]")
        page.wait_for_selector("[data-testid=error-b]:has-text('no version v-missing')", timeout=30_000)
        assert page.locator("main img").count() == 0
        assert [e for e in page.errors if "404" not in e] == []
        browser.close()
