"""Model adapter: base models loaded once per process, LoRA versions applied on top and removed after use."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from services.evaluator.exceptions import SnapshotInputError
from shared import storage
from shared.modeling import load_base, pick_device

log = logging.getLogger(__name__)


class ModelCache:
    """Loads each base model once; ``adapted`` yields it with a LoRA adapter applied, then unloads it."""

    def __init__(self, device: str = "auto", memory_budget_mb: int | None = None) -> None:
        self.device = pick_device(device)
        self._models: dict[str, tuple[Any, Any]] = {}
        self._lock = threading.Lock()
        if self.device.startswith("cuda") and memory_budget_mb:
            _limit_cuda_memory(self.device, memory_budget_mb)

    def base(self, base_model: str) -> tuple[Any, Any]:
        with self._lock:
            if base_model not in self._models:
                try:
                    self._models[base_model] = load_base(base_model, device=self.device)
                except (OSError, ValueError) as exc:
                    raise SnapshotInputError(f"cannot load base model {base_model!r}: {exc}") from exc
                log.info("loaded base model %s on %s", base_model, self.device)
            return self._models[base_model]

    @contextmanager
    def adapted(self, base_model: str, adapter_dir: Path) -> Iterator[tuple[Any, Any]]:
        from peft import PeftModel

        check_adapter_dir(adapter_dir)
        model, tokenizer = self.base(base_model)
        try:
            peft_model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)
        except Exception as exc:
            self._models.pop(base_model, None)  # the base may be half-patched: load it afresh next time
            raise SnapshotInputError(f"cannot apply adapter {adapter_dir.name}: {type(exc).__name__}: {exc}") from exc
        peft_model.eval()
        try:
            yield peft_model, tokenizer
        finally:
            peft_model.unload()  # removes the LoRA layers without merging: the cached base stays pristine


def check_adapter_dir(adapter_dir: Path) -> None:
    """Refuse directories without a safetensors adapter, or with pickled weights."""
    names = [p.relative_to(adapter_dir).as_posix() for p in storage.list_files(adapter_dir)]
    pickled = [n for n in names if storage.is_pickled_weights(n)]
    if pickled:
        raise SnapshotInputError(f"refusing pickled weights in the version: {', '.join(pickled)}")
    if "adapter_config.json" not in names or "adapter_model.safetensors" not in names:
        raise SnapshotInputError("the version has no adapter_config.json + adapter_model.safetensors at its root")


def _limit_cuda_memory(device: str, budget_mb: int) -> None:
    import torch

    index = torch.device(device).index or 0
    total = torch.cuda.get_device_properties(index).total_memory
    fraction = min(1.0, budget_mb * 1024 * 1024 / total)
    torch.cuda.set_per_process_memory_fraction(fraction, index)
    log.info("evaluator limited to %.0f MiB (%.1f%%) of %s", budget_mb, fraction * 100, device)
