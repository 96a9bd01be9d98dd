"""Plain-object tests of the inference service's pure parts, plus the not-ready path of the app."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn

from services.inference import exceptions as ex
from services.inference.adapters import BaseInfo, check_name, resolve_adapter_dir, shape_mismatches
from services.inference.app import create_app
from services.inference.errors import error_body, status_of
from services.inference.generation import _held_back
from services.inference.uploads import check_path
from services.stack.servers import free_port
from shared.settings import InferenceSettings
from tests.support.inference import TOKEN


def test_streaming_holds_back_stop_prefixes_and_partial_characters() -> None:
    assert _held_back("hello wor", ["world"]) == 3
    assert _held_back("hello", ["xyz"]) == 0
    assert _held_back("ab\ufffd", []) == 1
    assert _held_back("a<|", ["<|im_end|>", "|"]) == 2


def test_upload_paths_must_be_plain_relative_names() -> None:
    for ok in ("adapter_model.safetensors", "sub/dir/file.json", "README.md"):
        assert check_path(ok) == ok
    for bad in ("../x", "/etc/passwd", "a//b", ".git/config", "a/./b", "a\\b", "a b", "x/" * 5 + "y", ""):
        with pytest.raises(ex.BadRequestError):
            check_path(bad)


def test_adapter_dir_must_resolve_inside_adapters_dir(tmp_path: Path) -> None:
    root = tmp_path / "adapters"
    (root / "good").mkdir(parents=True)
    (root / ".uploads" / "u1").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    (root / "link").symlink_to(tmp_path / "secret")
    assert resolve_adapter_dir("good", root) == (root / "good").resolve()
    assert resolve_adapter_dir(str(root / "good"), root) == (root / "good").resolve()
    for bad in ("../secret", str(tmp_path / "secret"), "link", ".", ".uploads/u1", "missing", "good/../../secret"):
        with pytest.raises(ex.AdapterPathError):
            resolve_adapter_dir(bad, root)


def test_lora_names() -> None:
    assert check_name("prod:v1.2", "Qwen/Qwen3-0.6B") == "prod:v1.2"
    for bad in ("base", "Qwen/Qwen3-0.6B", "", "a b", "../x", "x" * 200):
        with pytest.raises(ex.BadRequestError):
            check_name(bad, "Qwen/Qwen3-0.6B")


def test_shape_check_names_the_mismatching_module() -> None:
    base = BaseInfo("b", "qwen3", 64, {"model.layers.0.self_attn.q_proj": (64, 64)})
    good = {"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": [4, 64],
            "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": [64, 4]}
    assert shape_mismatches(good, base) == []
    wrong = {"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": [4, 32]}
    assert "expects size 32, base has 64" in shape_mismatches(wrong, base)[0]
    missing = {"base_model.model.model.layers.9.self_attn.q_proj.lora_B.weight": [64, 4]}
    assert "does not exist" in shape_mismatches(missing, base)[0]


def test_errors_map_to_statuses_with_details() -> None:
    exc = ex.ChecksumMismatchError("bad sha", {"file": "a"})
    assert status_of(exc) == 422
    assert error_body(exc)["error"] == {"message": "bad sha", "type": "ChecksumMismatchError", "code": 422, "file": "a"}
    assert status_of(ex.IncompatibleAdapterError("x")) == 409
    assert status_of(ex.OutOfMemoryError("x")) == 507
    assert status_of(RuntimeError("x")) == 500


def test_a_base_model_that_cannot_load_reports_failed_readiness(tmp_path: Path) -> None:
    settings = InferenceSettings(dev=True, base_model=str(tmp_path / "no-such-model"), token=TOKEN,
                                 adapters_dir=tmp_path / "adapters", device="cpu")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        body: dict = {}
        while time.monotonic() < deadline:
            try:
                body = httpx.get(f"{url}/ready", timeout=2).json()
                if body["status"] == "failed":
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        assert body["status"] == "failed" and "no-such-model" in body["error"]
        assert httpx.get(f"{url}/health").status_code == 200
        resp = httpx.post(f"{url}/v1/completions", json={"prompt": "x"}, headers={"Authorization": f"Bearer {TOKEN}"})
        assert resp.status_code == 503 and "no-such-model" in resp.json()["error"]["message"]
    finally:
        server.should_exit = True
        thread.join(10)
