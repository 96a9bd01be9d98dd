"""Batching and hot swap under concurrent load, against real servers."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.inference import Running, reference, run_server

PROMPTS = ["hello world", "hello world", "The quick brown fox", "The quick brown fox",
           "What is the capital of France? Answer:", "a", "tell me a story about a dog", "hello world"]


def _batches(server: Running) -> tuple[float, float]:
    text = server.client().get("/metrics").text
    count = float(re.search(r"^trainyard_inference_batch_size_count (\S+)$", text, re.M).group(1))
    total = float(re.search(r"^trainyard_inference_batch_size_sum (\S+)$", text, re.M).group(1))
    return count, total


def _concurrent(server: Running, bodies: list[dict]) -> list[str]:
    barrier = threading.Barrier(len(bodies))

    def one(body: dict) -> str:
        with server.client() as http:
            barrier.wait()
            resp = http.post("/v1/completions", json=body)
            assert resp.status_code == 200, resp.text
            return resp.json()["choices"][0]["text"]

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(one, bodies))


@pytest.mark.parametrize("padding", [False, True])
def test_batched_greedy_equals_unbatched(tiny_model: Path, tmp_path: Path, lora_adapters: dict[str, Path],
                                         padding: bool) -> None:
    with run_server(tiny_model, tmp_path / "adapters", max_batch=8, batch_wait_ms=200,
                    batch_padding=padding) as server:
        path = server.install(lora_adapters["one"], "one")
        server.client().post("/v1/load_lora_adapter", json={"lora_name": "one", "lora_path": str(path)})
        for model, adapter in (("base", None), ("one", lora_adapters["one"])):
            before = _batches(server)
            texts = _concurrent(server, [{"model": model, "prompt": p, "max_tokens": 12 + i % 3, "temperature": 0}
                                         for i, p in enumerate(PROMPTS)])
            after = _batches(server)
            calls, requests = after[0] - before[0], after[1] - before[1]
            assert requests == len(PROMPTS)
            assert calls < len(PROMPTS)  # some requests really shared a generate call
            if padding:
                assert calls <= 2
            for i, (prompt, text) in enumerate(zip(PROMPTS, texts, strict=True)):
                assert text.strip() == reference(tiny_model, adapter, prompt, 12 + i % 3), (model, prompt, padding)


def test_hot_swap_under_load_fails_nothing(tiny_model: Path, tmp_path: Path, lora_adapters: dict[str, Path]) -> None:
    prompt, n = "The quick brown fox", 8
    expected = {name: reference(tiny_model, lora_adapters[name], prompt, n) for name in ("one", "two")}
    assert expected["one"] != expected["two"]
    with run_server(tiny_model, tmp_path / "adapters", max_batch=8, batch_wait_ms=5) as server:
        paths = {name: str(server.install(src, name)) for name, src in lora_adapters.items()}
        admin = server.client()
        assert admin.post("/v1/load_lora_adapter", json={"lora_name": "live", "lora_path": paths["one"]}
                          ).status_code == 200
        stop = threading.Event()
        failures: list[str] = []
        seen: list[str] = []

        def client_loop() -> None:
            with server.client() as http:
                while not stop.is_set():
                    try:
                        resp = http.post("/v1/completions", json={"model": "live", "prompt": prompt,
                                                                  "max_tokens": n, "temperature": 0})
                    except Exception as exc:  # noqa: BLE001 - every failure counts
                        failures.append(repr(exc))
                        continue
                    if resp.status_code != 200:
                        failures.append(f"{resp.status_code} {resp.text}")
                    else:
                        seen.append(resp.json()["choices"][0]["text"].strip())

        threads = [threading.Thread(target=client_loop) for _ in range(8)]
        for t in threads:
            t.start()
        try:
            for i in range(10):
                name = "two" if i % 2 == 0 else "one"
                resp = admin.post("/v1/load_lora_adapter", json={"lora_name": "live", "lora_path": paths[name]})
                assert resp.status_code == 200 and resp.json()["status"] == "replaced", resp.text
                side = admin.post("/v1/load_lora_adapter", json={"lora_name": f"side{i}", "lora_path": paths[name]})
                assert side.status_code == 200
                assert admin.post("/v1/unload_lora_adapter", json={"lora_name": f"side{i}"}).status_code == 200
                count = len(seen)
                while len(seen) < count + 8 and not failures:  # let some requests run on this version
                    threading.Event().wait(0.01)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        assert failures == []
        assert set(seen) <= set(expected.values()) and set(seen) == set(expected.values())
        final = admin.post("/v1/completions", json={"model": "live", "prompt": prompt, "max_tokens": n}).json()
        assert final["choices"][0]["text"].strip() == expected["one"]  # the last swap loaded "one"
        assert [m["id"] for m in admin.get("/v1/models").json()["data"]][1:] == ["live"]
