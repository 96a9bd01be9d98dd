"""The base model is served under a name, never a server path: its folder's name, or
``TRAINYARD_SERVED_MODEL_NAME``; checked with the official ``openai`` client."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.settings import InferenceSettings
from tests.support.inference import run_server

PROMPT = "What is the capital of France? Answer:"


def _no_server_path(ids: list[str], model_dir: Path) -> None:
    for value in ids:
        assert str(model_dir) not in value and not value.startswith("/"), value


@pytest.mark.parametrize("env_name", [None, "house-model"])
def test_openai_client_sees_the_served_name(env_name: str | None, tiny_model: Path, tmp_path: Path,
                                            lora_adapters: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    if env_name:
        monkeypatch.setenv("TRAINYARD_SERVED_MODEL_NAME", env_name)
    expected = env_name or tiny_model.name
    with run_server(tiny_model, tmp_path / "adapters") as server:
        client = server.openai()
        shutil.copytree(lora_adapters["one"], server.adapters_dir / "one")
        loaded = server.client().post("/v1/load_lora_adapter", json={"lora_name": "one", "lora_path": "one"})
        assert loaded.status_code == 200, loaded.text
        models = client.models.list().data
        assert [m.id for m in models] == [expected, "one"]
        fields = [m.id for m in models] + [str(getattr(m, k)) for m in models for k in ("root", "parent")]
        _no_server_path(fields, tiny_model)
        _no_server_path([str(loaded.json()["base_model"])], tiny_model)
        by_name = client.completions.create(model=expected, prompt=PROMPT, max_tokens=6, temperature=0)
        by_alias = client.completions.create(model="base", prompt=PROMPT, max_tokens=6, temperature=0)
        assert by_name.model == expected == by_alias.model
        assert by_name.choices[0].text == by_alias.choices[0].text
        chat = client.chat.completions.create(model=expected, messages=[{"role": "user", "content": "hi"}],
                                              max_tokens=4)
        assert chat.model == expected
        assert server.client(token=None).get("/ready").json()["model"] == expected


def test_hub_id_is_served_as_it_is() -> None:
    assert InferenceSettings(dev=True, base_model="Qwen/Qwen3-0.6B").served_name() == "Qwen/Qwen3-0.6B"
    assert InferenceSettings(dev=True, base_model="/models/Qwen3-0.6B/").served_name() == "Qwen3-0.6B"
    assert InferenceSettings(dev=True, base_model="/m/x", served_model_name="prod").served_name() == "prod"

