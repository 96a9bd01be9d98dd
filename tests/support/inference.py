"""Inference test support: a real uvicorn server on a loopback port, and the greedy reference outputs.

The fixtures built on it (``server``, ``lora_adapters``, ``foreign_adapter``) are in tests/inference/conftest.py.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from services.inference.app import create_app
from shared.settings import InferenceSettings
from tests.support.servers import serve_app, wait_ready

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
