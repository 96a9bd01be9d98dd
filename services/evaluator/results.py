"""What the engines return, and the reference they are held to (the earlier tracker's per-example loop)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from services.evaluator.replay import ReplayStats


@dataclass(frozen=True)
class Item:
    prompt: str
    target: str


@dataclass(frozen=True)
class Scored:
    loss: float  # mean negative log-likelihood of the target tokens (nan if it could not be computed)
    confidence: float  # mean probability of the target tokens
    n_target_tokens: int
    input_truncated: bool


@dataclass(frozen=True)
class Generated:
    text: str
    n_tokens: int  # generated tokens up to and including the end-of-turn token
    hit_limit: bool  # stopped by max_new_tokens, not by the end-of-turn token
    input_truncated: bool


@dataclass
class EngineStats:
    batches: int = 0
    reruns: int = 0  # rows decoded again the naive way because of a near-tie
    near_steps: int = 0  # decode steps (over all rows) whose top-2 gap was under the tie margin
    decode_steps: int = 0  # decode steps over all rows (tokens generated in batches)
    shared_prefix_tokens: int = 0  # prompt tokens not recomputed because a batch shared them
    replay: ReplayStats = field(default_factory=ReplayStats)  # what the re-decodes cost


def naive_generate(model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int) -> list[str]:
    """The earlier tracker's loop: one ``generate`` call per example (the reference for identity)."""
    import torch

    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out = []
    with torch.inference_mode():
        for prompt in prompts:
            ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"].to(device)
            gen = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                 do_sample=False, pad_token_id=pad)
            out.append(tokenizer.decode(gen[0, ids.shape[1]:], skip_special_tokens=True).strip())
    return out
