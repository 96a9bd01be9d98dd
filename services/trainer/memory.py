"""Will a spec fit on the training GPU? The model's shape comes from its ``config.json`` (a local directory or
the Hugging Face cache); without one, Qwen3-0.6B's shape is assumed. ``spec.memory_terms`` does the sums.

    check_fits(spec, gpu_memory_gb=24.0)  # SpecError naming every term when the estimate is larger
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.trainer.exceptions import SpecError
from services.trainer.spec import JobSpec, memory_terms


@dataclass(frozen=True)
class Shape:
    params_b: float = 0.596  # Qwen3-0.6B
    layers: int = 28
    hidden: int = 1024
    vocab: int = 151_936


def params_of(cfg: dict[str, Any]) -> float:
    """Parameters of a decoder-only transformer described by ``cfg`` (embeddings, attention, MLP, norms)."""
    hidden, vocab, layers = int(cfg["hidden_size"]), int(cfg["vocab_size"]), int(cfg["num_hidden_layers"])
    heads = int(cfg.get("num_attention_heads") or 1)
    kv = int(cfg.get("num_key_value_heads") or heads)
    head_dim = int(cfg.get("head_dim") or hidden // heads)
    inter = int(cfg.get("intermediate_size") or 4 * hidden)
    attn = hidden * heads * head_dim * 2 + hidden * kv * head_dim * 2
    mlp = 3 * hidden * inter
    embed = vocab * hidden * (1 if cfg.get("tie_word_embeddings", True) else 2)
    return embed + layers * (attn + mlp + 4 * hidden) + hidden


def _config(base_model: str) -> dict[str, Any] | None:
    local = Path(base_model).expanduser() / "config.json"
    try:
        if local.is_file():
            return json.loads(local.read_text(encoding="utf-8"))
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(base_model, "config.json")
        return json.loads(Path(found).read_text(encoding="utf-8")) if isinstance(found, str) else None
    except (OSError, ValueError):
        return None


def shape_of(base_model: str) -> Shape:
    cfg = _config(base_model)
    try:
        if cfg is not None:
            return Shape(params_of(cfg) / 1e9, int(cfg["num_hidden_layers"]), int(cfg["hidden_size"]),
                         int(cfg["vocab_size"]))
    except (KeyError, TypeError, ValueError):
        pass
    return Shape()


def check_fits(spec: JobSpec, gpu_memory_gb: float, shape: Shape | None = None) -> dict[str, float]:
    """The memory terms of ``spec`` on the GPU; SpecError with the numbers when their sum exceeds the GPU."""
    shape = shape or shape_of(spec.base_model)
    terms = memory_terms(spec, params_b=shape.params_b, layers=shape.layers, hidden=shape.hidden, vocab=shape.vocab)
    total = round(sum(terms.values()), 1)
    if total > gpu_memory_gb:
        parts = ", ".join(f"{k} {v:.1f}" for k, v in terms.items())
        hint = "" if spec.gradient_checkpointing else "turn on gradient_checkpointing, "
        raise SpecError(
            f"invalid job spec: estimated {total:.1f} GB of GPU memory for {spec.method.value} training "
            f"({shape.params_b:.2f} B parameters; {parts} GB) does not fit the {gpu_memory_gb:g} GB GPU: "
            f"{hint}lower batch_size ({spec.batch_size}) or max_seq_len ({spec.max_seq_len})")
    return terms
