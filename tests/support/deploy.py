"""A demo LoRA version for the deployer tests and benchmarks, without trainer or evaluator.

Builds a LoRA adapter on a base model (``tests.support.lora``: random B matrices, so it changes the output),
stores its blobs and manifest in the registry with the lineage a trainer would write (job_id, step, base_model), the job's tracked
examples document and the step's snapshot document whose predictions come from plain greedy
``model.generate``; and runs ``services.inference.app.create_app`` under uvicorn in a thread on a free
loopback port.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.registry.client import RegistryClient
from shared import storage
from shared.modeling import demo_dataset_path, render
from tests.support.lora import make_lora_adapter
from tests.support.servers import wait_ready

MAX_NEW_TOKENS = 8
N_EXAMPLES = 3


def demo_examples(n: int = N_EXAMPLES) -> list[dict[str, Any]]:
    lines = demo_dataset_path().read_text(encoding="utf-8").splitlines()[:n]
    return [{"idx": i, "id": f"demo-{i:03d}", "split": "train", "messages": json.loads(line)["messages"]}
            for i, line in enumerate(lines)]


def predictions(base: Path, adapter: Path, examples: list[dict[str, Any]], max_new_tokens: int) -> list[str]:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).eval()
    out = []
    for ex in examples:
        ids = tok(render(tok, ex["messages"]).prompt, return_tensors="pt").input_ids
        with torch.no_grad():
            gen = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False)
        out.append(tok.decode(gen[0, ids.shape[1]:], skip_special_tokens=True).strip())
    return out


@dataclass(frozen=True)
class Adapter:
    """A built adapter directory and its greedy predictions on the demo examples."""

    path: Path
    predictions: list[str]


def make_adapter(base: Path, out: Path, seed: int) -> Adapter:
    """A LoRA adapter on ``base`` (``tests.support.lora``) and its greedy predictions on the demo examples."""
    path = make_lora_adapter(base, out, seed)
    return Adapter(path, predictions(base, path, demo_examples(), MAX_NEW_TOKENS))


def store_version(registry: RegistryClient, base: Path, adapter: Adapter, *, job_id: str, step: int,
                  spec: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
                  snapshot: bool = True, final: bool = False) -> str:
    """Adapter blobs + manifest, the job's tracked doc and (optionally) the step's snapshot doc."""
    files = []
    for path in storage.list_files(adapter.path):
        digest, size, _ = registry.put_blob(path)
        files.append({"path": path.relative_to(adapter.path).as_posix(), "sha256": digest, "size": size})
    version_id = f"{job_id}-v{step}"
    registry.put_json(storage.manifest_key(version_id), {
        "version_id": version_id, "kind": "adapter", "name": job_id, "note": "", "created_at": "2026-01-01",
        "files": files, "lineage": {"base_model": str(base), "job_id": job_id, "step": step, "final": final,
                                    "spec": spec or {}, "metrics": metrics or {}}})
    registry.put_json(storage.tracked_key(job_id), {"job_id": job_id, "examples": demo_examples()})
    if snapshot:
        write_snapshot(registry, job_id, step, version_id, adapter.predictions)
    return version_id


def write_snapshot(registry: RegistryClient, job_id: str, step: int, version_id: str, preds: list[str],
                   aggregates: dict[str, Any] | None = None) -> None:
    registry.put_json(storage.snapshot_key(job_id, step), {
        "job_id": job_id, "version_id": version_id, "step": step, "max_new_tokens": MAX_NEW_TOKENS,
        "examples": [{"idx": i, "id": f"demo-{i:03d}", "split": "train", "prediction": p}
                     for i, p in enumerate(preds)],
        "aggregates": aggregates or {}})


class InferenceServer:
    """``services.inference.app.create_app`` under uvicorn in a thread on a free loopback port."""

    def __init__(self, base: Path, adapters_dir: Path, token: str = "secret-token") -> None:
        import uvicorn

        from services.inference.app import create_app
        from services.stack.servers import free_port
        from shared.settings import InferenceSettings

        self.base = base
        self.port = free_port()
        self.token = token
        settings = InferenceSettings(dev=True, base_model=str(base), host="127.0.0.1", port=self.port,
                                     token=token, adapters_dir=adapters_dir, device="cpu")
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> InferenceServer:
        self.thread.start()
        wait_ready(self.url, timeout_s, self.thread.is_alive, every=0.2)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
