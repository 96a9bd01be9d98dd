"""Model adapter: base models loaded once per process, LoRA versions applied on top of them.

Applying a LoRA with ``PeftModel.from_pretrained`` injects new layers into every target module and
initialises them; taking it off again (``unload``) walks the model once more. Consecutive checkpoints of a
job share one adapter configuration, so the wrapper built for the first is kept and each later version
only has its weights copied into the existing LoRA layers (the same ``set_peft_model_state_dict`` that
``from_pretrained`` ends with). ``base`` takes the wrapper off again: the model it returns is pristine.

A ``full`` version (every parameter fine-tuned) is a whole model: ``full`` loads its weights as the model, with
the tokenizer of its base model, for the one snapshot, and frees it afterwards.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.evaluator.exceptions import SnapshotInputError
from shared import storage
from shared.modeling import load_base, pick_device

log = logging.getLogger(__name__)

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")  # all a snapshot needs from a version
FULL_CONFIGS = ("config.json", "generation_config.json")
# adapter_config.json fields that do not change the layers an adapter injects
_CONFIG_NOISE = {"base_model_name_or_path", "revision", "inference_mode", "auto_mapping"}


@dataclass
class _Held:
    model: Any  # the PeftModel wrapping the cached base model
    config: dict[str, Any]  # its adapter_config.json without _CONFIG_NOISE
    swaps: int = 0


class ModelCache:
    """Loads each base model once; ``adapted`` yields it with a LoRA adapter applied."""

    def __init__(self, device: str = "auto", memory_budget_mb: int | None = None, dtype: str | None = None) -> None:
        self.device = pick_device(device)
        self.dtype = dtype  # None: bfloat16 on CUDA, float32 on CPU
        self._models: dict[str, tuple[Any, Any]] = {}
        self._held: dict[str, _Held] = {}
        self._lock = threading.RLock()
        if self.device.startswith("cuda") and memory_budget_mb:
            _limit_cuda_memory(self.device, memory_budget_mb)

    def base(self, base_model: str) -> tuple[Any, Any]:
        """The base model without any adapter (valid until the next ``adapted`` of the same base)."""
        with self._lock:
            self._release(base_model)
            return self._load(base_model)

    def warm_up(self) -> None:
        """Import peft now (seconds on first use), so that the first checkpoint snapshot does not pay for it."""
        import peft  # noqa: F401

    def swaps(self, base_model: str) -> int:
        """How many versions reused the held wrapper (for tests and logs)."""
        held = self._held.get(base_model)
        return held.swaps if held else 0

    @contextmanager
    def full(self, base_model: str, model_dir: Path) -> Iterator[tuple[Any, Any]]:
        """A full version's weights loaded as the model (with its base model's tokenizer), freed afterwards."""
        import torch
        from transformers import AutoModelForCausalLM

        check_full_files([p.relative_to(model_dir).as_posix() for p in storage.list_files(model_dir)])
        with self._lock:
            tokenizer = self._tokenizer(base_model)
            dtype = getattr(torch, self.dtype) if self.dtype else (
                torch.bfloat16 if self.device.startswith("cuda") else torch.float32)
            try:
                model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, use_safetensors=True)
            except (OSError, ValueError) as exc:
                raise SnapshotInputError(f"cannot load the full model {model_dir.name}: {exc}") from exc
            model.to(self.device).eval()
            try:
                yield model, tokenizer
            finally:
                del model
                if self.device.startswith("cuda"):
                    torch.cuda.empty_cache()

    def _tokenizer(self, base_model: str) -> Any:
        if base_model in self._models:
            return self._models[base_model][1]
        from transformers import AutoTokenizer

        try:
            return AutoTokenizer.from_pretrained(base_model)
        except (OSError, ValueError) as exc:
            raise SnapshotInputError(f"cannot load the tokenizer of {base_model!r}: {exc}") from exc

    @contextmanager
    def adapted(self, base_model: str, adapter_dir: Path) -> Iterator[tuple[Any, Any]]:
        check_adapter_dir(adapter_dir)
        config = _layer_config(adapter_dir)
        with self._lock:
            model, tokenizer = self._load(base_model)
            held = self._held.get(base_model)
            if held is not None and held.config == config and self._swap(held, adapter_dir):
                peft_model = held.model
            else:
                self._release(base_model)
                peft_model = self._wrap(base_model, model, adapter_dir)
                self._held[base_model] = _Held(peft_model, config)
            yield peft_model, tokenizer

    # -- internals ----------------------------------------------------------------------------------
    def _load(self, base_model: str) -> tuple[Any, Any]:
        if base_model not in self._models:
            try:
                self._models[base_model] = load_base(base_model, device=self.device, dtype=self.dtype)
            except (OSError, ValueError) as exc:
                raise SnapshotInputError(f"cannot load base model {base_model!r}: {exc}") from exc
            log.info("loaded base model %s on %s", base_model, self.device)
        return self._models[base_model]

    def _wrap(self, base_model: str, model: Any, adapter_dir: Path) -> Any:
        from peft import PeftModel

        try:
            peft_model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)
        except Exception as exc:
            self._models.pop(base_model, None)  # the base may be half-patched: load it afresh next time
            raise SnapshotInputError(f"cannot apply adapter {adapter_dir.name}: {type(exc).__name__}: {exc}") from exc
        peft_model.eval()
        return peft_model

    def _swap(self, held: _Held, adapter_dir: Path) -> bool:
        """Copy a same-shaped adapter's weights into the held wrapper; False (nothing changed) if they do not fit."""
        from peft.utils import load_peft_weights, set_peft_model_state_dict

        device = str(next(held.model.parameters()).device)
        try:
            weights = load_peft_weights(str(adapter_dir), device=device)
        except Exception as exc:
            raise SnapshotInputError(f"cannot read adapter {adapter_dir.name}: {type(exc).__name__}: {exc}") from exc
        expected = {k for k in held.model.state_dict() if ".lora_" in k}
        try:
            result = set_peft_model_state_dict(held.model, weights, adapter_name="default")
        except RuntimeError as exc:  # a tensor of another shape
            log.info("adapter %s does not fit the held LoRA layers (%s): re-applying it", adapter_dir.name, exc)
            return False
        missing = [k for k in result.missing_keys if k in expected]
        if result.unexpected_keys or missing:
            log.info("adapter %s does not fit the held LoRA layers (%d unexpected, %d missing): re-applying it",
                     adapter_dir.name, len(result.unexpected_keys), len(missing))
            return False
        held.swaps += 1
        return True

    def _release(self, base_model: str) -> None:
        held = self._held.pop(base_model, None)
        if held is not None:
            held.model.unload()  # removes the LoRA layers without merging: the cached base is pristine again


def _layer_config(adapter_dir: Path) -> dict[str, Any]:
    try:
        config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SnapshotInputError(f"unreadable adapter_config.json in {adapter_dir.name}: {exc}") from exc
    if not isinstance(config, dict):
        raise SnapshotInputError(f"adapter_config.json in {adapter_dir.name} is not an object")
    return {k: v for k, v in config.items() if k not in _CONFIG_NOISE}


def check_adapter_dir(adapter_dir: Path) -> None:
    """Refuse directories without a safetensors adapter, or with pickled weights."""
    names = [p.relative_to(adapter_dir).as_posix() for p in storage.list_files(adapter_dir)]
    check_adapter_files(names)


def check_adapter_files(names: list[str]) -> None:
    """The same check on a version's file list (before anything is downloaded)."""
    pickled = [n for n in names if storage.is_pickled_weights(n)]
    if pickled:
        raise SnapshotInputError(f"refusing pickled weights in the version: {', '.join(pickled)}")
    if not set(ADAPTER_FILES) <= set(names):
        raise SnapshotInputError("the version has no adapter_config.json + adapter_model.safetensors at its root")


def full_files(names: list[str]) -> list[str]:
    """What a snapshot needs from a full version: its configs and safetensors weights (no optimizer state)."""
    return [n for n in names if "/" not in n and (n in FULL_CONFIGS or n.endswith(".safetensors")
                                                  or n == "model.safetensors.index.json")]


def check_full_files(names: list[str]) -> None:
    """Refuse a full version with pickled weights, or without config.json and safetensors model weights."""
    pickled = [n for n in names if storage.is_pickled_weights(n)]
    if pickled:
        raise SnapshotInputError(f"refusing pickled weights in the version: {', '.join(pickled)}")
    has_weights = "model.safetensors" in names or "model.safetensors.index.json" in names
    if "config.json" not in names or not has_weights:
        raise SnapshotInputError("the full version has no config.json + model.safetensors at its root")


def _limit_cuda_memory(device: str, budget_mb: int) -> None:
    import torch

    index = torch.device(device).index or 0
    total = torch.cuda.get_device_properties(index).total_memory
    fraction = min(1.0, budget_mb * 1024 * 1024 / total)
    torch.cuda.set_per_process_memory_fraction(fraction, index)
    log.info("evaluator limited to %.0f MiB (%.1f%%) of %s", budget_mb, fraction * 100, device)
