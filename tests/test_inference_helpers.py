"""Shared fixtures of the inference tests: a real uvicorn server on a loopback port, LoRA adapters, references.

Other ``test_inference_*`` modules import the fixtures from here (tests has no package, so no conftest of ours).
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from services.api.testing import serve_app, wait_ready
from services.inference.app import create_app
from shared.settings import InferenceSettings

TOKEN = "inference-test-token"


@dataclass
class Running:
    url: str
    settings: InferenceSettings

    @property
    def adapters_dir(self) -> Path:
        return self.settings.adapters_dir

    def client(self, token: str | None = TOKEN, timeout: float = 60.0) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def openai(self):  # noqa: ANN201 - openai.OpenAI
        from openai import OpenAI

        return OpenAI(base_url=f"{self.url}/v1", api_key=TOKEN, max_retries=0, timeout=60)

    def install(self, src: Path, name: str) -> Path:
        """Copy an adapter directory under the server's adapters_dir (where loads may come from)."""
        dest = self.adapters_dir / name
        shutil.copytree(src, dest, dirs_exist_ok=True)
        return dest


@contextmanager
def run_server(base_model: Path, adapters_dir: Path, **overrides: object) -> Iterator[Running]:
    settings = InferenceSettings(dev=True, base_model=str(base_model), token=TOKEN, adapters_dir=adapters_dir,
                                 device="cpu", threads=1, **overrides)
    with serve_app(create_app(settings)) as server:
        wait_ready(server.url, 60, server.thread.is_alive)
        yield Running(url=server.url, settings=settings)


def make_adapter(base_model: Path, out: Path, seed: int) -> Path:
    """A LoRA adapter whose B weights are random (so it changes the outputs), saved with save_pretrained."""
    import torch
    from peft import LoraConfig, get_peft_model

    from shared.modeling import load_base

    model, _ = load_base(str(base_model))
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                  task_type="CAUSAL_LM"))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    peft_model.save_pretrained(out)
    return out


@functools.lru_cache(maxsize=8)
def _reference_model(base_model: Path, adapter: Path | None) -> tuple:
    from shared.modeling import load_base

    model, tok = load_base(str(base_model))
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    return model, tok


@functools.lru_cache(maxsize=256)
def reference(base_model: Path, adapter: Path | None, prompt: str, n: int) -> str:
    """The contract's greedy reference: generate alone, decode the new tokens without special tokens."""
    import torch

    model, tok = _reference_model(base_model, adapter)
    ids = tok(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, do_sample=False, max_new_tokens=n)
    return tok.decode(out[0][ids.shape[1]:], skip_special_tokens=True).strip()


@pytest.fixture(scope="session")
def lora_adapters(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("loras")
    return {"one": make_adapter(tiny_model, root / "one", seed=1), "two": make_adapter(tiny_model, root / "two", seed=2)}


@pytest.fixture(scope="session")
def foreign_adapter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An adapter for another base model (other hidden size), under another base name."""
    from shared.modeling import build_tiny_model

    root = tmp_path_factory.mktemp("foreign")
    other = build_tiny_model(root / "other-base", hidden_size=32)
    return make_adapter(other, root / "adapter", seed=3)


@pytest.fixture(scope="module")
def server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with run_server(tiny_model, tmp_path_factory.mktemp("served") / "adapters") as running:
        yield running
