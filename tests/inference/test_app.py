"""Inference HTTP API against a real uvicorn server: auth, models, completions, chat, streaming, adapters."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from tests.support.inference import Running, reference

PROMPT = "What is the capital of France? Answer:"


def test_health_and_ready_are_open_everything_else_needs_the_token(server: Running) -> None:
    anon = server.client(token=None)
    assert anon.get("/health").json() == {"status": "ok"}
    assert anon.get("/ready").json()["status"] == "ready"
    for method, path in [("GET", "/v1/models"), ("GET", "/metrics"), ("POST", "/v1/completions"),
                         ("POST", "/v1/load_lora_adapter"), ("POST", "/v1/adapter_uploads")]:
        resp = anon.request(method, path, json={})
        assert resp.status_code == 401, (method, path)
        assert resp.headers["www-authenticate"] == "Bearer"
    wrong = server.client(token="not-the-token")
    assert wrong.get("/v1/models").status_code == 401
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0).models.list()
    assert server.client().get("/metrics").status_code == 200


def test_greedy_completion_matches_reference_and_is_deterministic(server: Running, tiny_model: Path) -> None:
    client = server.openai()
    ids = [m.id for m in client.models.list().data]
    assert ids == [tiny_model.name]  # the folder's name, not the server path
    first = client.completions.create(model="base", prompt=PROMPT, max_tokens=12, temperature=0)
    second = client.completions.create(model=tiny_model.name, prompt=PROMPT, max_tokens=12)
    assert first.choices[0].text == second.choices[0].text
    assert first.choices[0].text.strip() == reference(tiny_model, None, PROMPT, 12)
    assert first.usage.completion_tokens <= 12 and first.usage.prompt_tokens > 0
    assert first.choices[0].finish_reason in ("stop", "length")


def test_adapter_load_select_stream_chat_unload(server: Running, tiny_model: Path,
                                                lora_adapters: dict[str, Path]) -> None:
    path = server.install(lora_adapters["one"], "one")
    http = server.client()
    resp = http.post("/v1/load_lora_adapter", json={"lora_name": "one", "lora_path": str(path)})
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "loaded" and resp.json()["matched_by"] == "name"
    client = server.openai()
    assert {m.id for m in client.models.list().data} == {tiny_model.name, "one"}

    tuned = client.completions.create(model="one", prompt=PROMPT, max_tokens=16, temperature=0)
    base = client.completions.create(model="base", prompt=PROMPT, max_tokens=16, temperature=0)
    assert tuned.choices[0].text.strip() == reference(tiny_model, lora_adapters["one"], PROMPT, 16)
    assert tuned.choices[0].text != base.choices[0].text  # the adapter really is applied
    assert base.choices[0].text.strip() == reference(tiny_model, None, PROMPT, 16)

    chunks = list(client.completions.create(model="one", prompt=PROMPT, max_tokens=16, temperature=0, stream=True))
    assert "".join(c.choices[0].text for c in chunks) == tuned.choices[0].text
    assert chunks[-1].choices[0].finish_reason == tuned.choices[0].finish_reason

    messages = [{"role": "user", "content": "Say hello."}]
    chat = client.chat.completions.create(model="one", messages=messages, max_tokens=10, temperature=0)
    assert chat.choices[0].message.role == "assistant"
    streamed = client.chat.completions.create(model="one", messages=messages, max_tokens=10, temperature=0,
                                              stream=True, stream_options={"include_usage": True})
    parts, usage = [], None
    for c in streamed:
        if c.usage:
            usage = c.usage
        parts += [c.choices[0].delta.content or ""] if c.choices else []
    assert "".join(parts) == chat.choices[0].message.content
    assert usage is not None and usage.completion_tokens == chat.usage.completion_tokens

    assert http.post("/v1/unload_lora_adapter", json={"lora_name": "one"}).json()["status"] == "unloaded"
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="one", prompt=PROMPT, max_tokens=4)
    again = client.completions.create(model="base", prompt=PROMPT, max_tokens=16, temperature=0)
    assert again.choices[0].text == base.choices[0].text  # unloading the last adapter restores the plain base


def test_stop_strings_cut_the_text(server: Running) -> None:
    http = server.client()
    full = http.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 16, "temperature": 0}).json()
    text = full["choices"][0]["text"]
    assert len(text) >= 3
    stop = text[2:4]
    cut = http.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 16, "stop": [stop]}).json()
    assert cut["choices"][0]["text"] == text[: text.find(stop)]
    assert cut["choices"][0]["finish_reason"] == "stop"
    lines = []
    with http.stream("POST", "/v1/completions", json={"prompt": PROMPT, "max_tokens": 16, "stop": stop,
                                                      "stream": True}) as resp:
        lines = [line for line in resp.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    import json

    streamed = "".join(json.loads(line[6:])["choices"][0]["text"] for line in lines[:-1])
    assert streamed == cut["choices"][0]["text"]


def test_bad_requests_get_clear_errors(server: Running, lora_adapters: dict[str, Path],
                                       foreign_adapter: Path, tmp_path: Path) -> None:
    http = server.client()

    def load(name: str, path: str) -> tuple[int, str]:
        resp = http.post("/v1/load_lora_adapter", json={"lora_name": name, "lora_path": path})
        return resp.status_code, resp.json()["error"]["message"]

    outside = tmp_path / "outside"
    outside.mkdir()
    code, msg = load("x", str(outside))
    assert code == 400 and "outside the adapters directory" in msg
    code, msg = load("x", "../../etc")
    assert code == 400 and "outside" in msg
    (server.adapters_dir / "escape").symlink_to(outside)
    assert load("x", "escape")[0] == 400

    pickled = server.install(lora_adapters["two"], "pickled")
    (pickled / "adapter_model.safetensors").rename(pickled / "adapter_model.bin")
    code, msg = load("x", "pickled")
    assert code == 400 and "pickled" in msg

    server.install(foreign_adapter, "foreign")
    code, msg = load("x", "foreign")
    assert code == 409 and "other-base" in msg

    code, msg = load("base", "pickled")
    assert code == 400 and "reserved" in msg
    assert load("bad name!", "pickled")[0] == 400
    assert http.post("/v1/unload_lora_adapter", json={"lora_name": "nope"}).status_code == 404
    assert http.post("/v1/completions", json={"model": "nope", "prompt": "x"}).status_code == 404
    bad = http.post("/v1/completions", json={"prompt": "x", "max_tokens": 0})
    assert bad.status_code == 400 and "max_tokens" in bad.json()["error"]["message"]
    assert http.post("/v1/completions", json={"prompt": "x", "n": 2}).status_code == 400
    too_long = http.post("/v1/completions", json={"prompt": "x", "max_tokens": 100000})
    assert too_long.status_code == 400 and "context length" in too_long.json()["error"]["message"]
    assert http.post("/v1/completions", content=b"{not json", headers={"content-type": "application/json"}
                     ).status_code == 400
    models = http.get("/v1/models").json()["data"]
    assert [m["id"] for m in models] == [Path(server.settings.base_model).name]  # nothing half-loaded


def test_adapter_for_another_base_name_loads_when_shapes_fit(server: Running, lora_adapters: dict[str, Path]) -> None:
    import json

    renamed = server.install(lora_adapters["two"], "renamed")
    cfg = json.loads((renamed / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = "someone/another-name"
    (renamed / "adapter_config.json").write_text(json.dumps(cfg))
    http = server.client()
    resp = http.post("/v1/load_lora_adapter", json={"lora_name": "renamed", "lora_path": "renamed"})
    assert resp.status_code == 200 and resp.json()["matched_by"] == "shapes"
    assert http.post("/v1/unload_lora_adapter", json={"lora_name": "renamed"}).status_code == 200


def test_metrics_count_requests_and_adapters(server: Running) -> None:
    http = server.client()
    http.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 2})
    text = http.get("/metrics").text
    assert 'trainyard_inference_requests_total{method="POST",route="/v1/completions",status="200"}' in text
    assert "trainyard_inference_request_seconds_bucket" in text
    assert 'trainyard_inference_tokens_total{kind="completion"}' in text
    assert "trainyard_inference_active_adapters" in text


def test_sampling_and_prompt_lists(server: Running) -> None:
    client = server.openai()
    sampled = client.completions.create(model="base", prompt=PROMPT, max_tokens=6, temperature=1.0, top_p=0.9)
    assert sampled.choices[0].finish_reason in ("stop", "length") and sampled.usage.completion_tokens >= 1
    greedy = client.completions.create(model="base", prompt=PROMPT, max_tokens=6, temperature=0)
    both = client.completions.create(model="base", prompt=[PROMPT, "hello world"], max_tokens=6, temperature=0)
    assert [c.index for c in both.choices] == [0, 1]
    assert both.choices[0].text == greedy.choices[0].text
