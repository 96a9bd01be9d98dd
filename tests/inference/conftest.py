"""Fixtures of the inference tests: a real server per module, LoRA adapters on the tiny model, a foreign one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.inference import Running, run_server
from tests.support.lora import make_lora_adapter


@pytest.fixture(scope="session")
def lora_adapters(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("loras")
    return {"one": make_lora_adapter(tiny_model, root / "one", seed=1),
            "two": make_lora_adapter(tiny_model, root / "two", seed=2)}


@pytest.fixture(scope="session")
def foreign_adapter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An adapter for another base model (other hidden size), under another base name."""
    from shared.modeling import build_tiny_model

    root = tmp_path_factory.mktemp("foreign")
    other = build_tiny_model(root / "other-base", hidden_size=32)
    return make_lora_adapter(other, root / "adapter", seed=3)


@pytest.fixture(scope="module")
def server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with run_server(tiny_model, tmp_path_factory.mktemp("served") / "adapters") as running:
        yield running
