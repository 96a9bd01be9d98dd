"""Greedy decoding over the KV cache, finished rows dropped from the running batch.

``model.generate`` keeps every row of a batch running until the longest one stops and carries its generic
machinery (logits processors, stopping criteria, cache bookkeeping) at every step. For plain greedy search
(no logits processor configured) this loop computes the same argmax per step with bare forward passes: a
row that emits an end-of-turn token leaves the batch (its KV-cache rows are dropped with the cache's
``batch_select_indices``), so a batch costs what its still-running rows cost.

Each row's smallest top-1/top-2 logit gap (relative to ``max(1, |top logit|)``) is recorded while the row
runs: padding and batch shape move logits by float noise, which can only change an argmax where the top two
are that close, so the caller decodes such rows again the reference way.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from services.evaluator.forward import causal_lm, last_logits, new_cache, positions_of

# generation_config fields that add a logits processor to greedy search when set away from these defaults.
_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "repetition_penalty": (None, 1.0),
    "encoder_repetition_penalty": (None, 1.0),
    "no_repeat_ngram_size": (None, 0),
    "encoder_no_repeat_ngram_size": (None, 0),
    "bad_words_ids": (None,),
    "min_length": (None, 0),
    "min_new_tokens": (None, 0),
    "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,),
    "exponential_decay_length_penalty": (None,),
    "suppress_tokens": (None,),
    "begin_suppress_tokens": (None,),
    "sequence_bias": (None,),
    "guidance_scale": (None, 1.0),
    "watermarking_config": (None,),
    "renormalize_logits": (None, False),
    "stop_strings": (None,),
    "remove_invalid_values": (None, False),
}


@dataclass(frozen=True)
class Decoded:
    tokens: list[list[int]]  # per row: generated tokens, up to and including the first end-of-turn token
    min_margin: list[float]  # per row: smallest relative top-2 logit gap while the row ran
    near: list[list[int]] | None = None  # per row: the steps whose gap was under the tie margin


class MarginRecorder:
    """For ``model.generate`` (configs with logits processors): a logits processor that tracks each row's smallest top-2 logit gap while the row is unfinished."""

    def __init__(self, batch: int, eos_ids: set[int], device: torch.device) -> None:
        self.min_margin = torch.full((batch,), math.inf, device=device)
        self.done = torch.zeros(batch, dtype=torch.bool, device=device)
        self.eos = torch.tensor(sorted(eos_ids), device=device) if eos_ids else None
        self.calls = 0

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.calls > 0 and self.eos is not None:
            self.done |= torch.isin(input_ids[:, -1], self.eos)
        self.calls += 1
        top = torch.topk(scores.float(), 2, dim=-1).values
        gap = (top[:, 0] - top[:, 1]) / top[:, 0].abs().clamp(min=1.0)
        margin = torch.where(self.done, torch.full_like(gap, math.inf), gap)
        self.min_margin = torch.minimum(self.min_margin, margin)
        return scores


def plain_greedy(model: Any) -> bool:
    """True when ``model.generate(do_sample=False)`` would apply no logits processor (a bare argmax matches it)
    and no prompt-learning adapter rewrites the inputs."""
    peft_cfg = getattr(model, "active_peft_config", None)
    if peft_cfg is not None and getattr(peft_cfg, "is_prompt_learning", False):
        return False
    cfg = getattr(model, "generation_config", None)
    if cfg is None:
        return True
    return all(getattr(cfg, name, None) in neutral for name, neutral in _NEUTRAL.items())


def can_share_prefill(model: Any) -> bool:
    """True when a prefill over prompt + target can be cut back to the prompt (full-attention cache only)."""
    types = getattr(causal_lm(model).config, "layer_types", None)
    return not types or all(t == "full_attention" for t in types)


@torch.inference_mode()
def greedy(model: Any, ids: torch.Tensor, mask: torch.Tensor, max_new_tokens: int, eos_ids: set[int],
           limits: Sequence[int] | None = None, tie_margin: float = 0.0) -> Decoded:
    """Greedy-decode the left-padded batch ``ids``/``mask`` for at most ``max_new_tokens`` tokens per row
    (and at most ``limits[row]`` for each row when given)."""
    net = causal_lm(model)
    cache = new_cache(net)
    logits = last_logits(net, ids, mask, positions_of(mask), cache)
    return decode(model, cache, logits, mask, max_new_tokens, eos_ids, limits, tie_margin)


@torch.inference_mode()
def decode(model: Any, cache: Any, logits: torch.Tensor, mask: torch.Tensor, max_new_tokens: int,
           eos_ids: set[int], limits: Sequence[int] | None = None, tie_margin: float = 0.0) -> Decoded:
    """Continue from a prefilled ``cache`` whose next-token ``logits`` (rows x vocab) are given; ``mask`` is the
    attention mask of the cached positions (left padding). A row leaves the batch at its end-of-turn token or
    once it has ``limits[row]`` tokens (``max_new_tokens`` for every row when ``limits`` is None). The steps
    whose top-2 gap is under ``tie_margin`` are listed per row (``Decoded.near``)."""
    net = causal_lm(model)
    rows = logits.shape[0]
    device = logits.device
    tokens: list[list[int]] = [[] for _ in range(rows)]
    near: list[list[int]] = [[] for _ in range(rows)]
    margin = torch.full((rows,), math.inf, device=device)
    eos = torch.tensor(sorted(eos_ids), device=device) if eos_ids else None
    cap = torch.tensor([min(max_new_tokens, n) for n in limits], device=device) if limits is not None else None
    total = max_new_tokens if cap is None else int(cap.max())
    active = torch.arange(rows, device=device)
    next_pos = mask.sum(-1, keepdim=True)
    for step in range(total):
        top = torch.topk(logits, 2, dim=-1).values
        gap = (top[:, 0] - top[:, 1]) / top[:, 0].abs().clamp(min=1.0)
        margin[active] = torch.minimum(margin[active], gap)
        nxt = torch.argmax(logits, dim=-1)  # the first of equal maxima, as generate picks it
        for row, tok, close in zip(active.tolist(), nxt.tolist(), (gap < tie_margin).tolist(), strict=True):
            tokens[row].append(tok)
            if close:
                near[row].append(step)
        if step == total - 1:
            break
        running = torch.ones_like(nxt, dtype=torch.bool) if eos is None else ~torch.isin(nxt, eos)
        if cap is not None:
            running &= cap[active] > step + 1
        if not bool(running.all()):
            keep = running.nonzero().squeeze(1)
            if keep.numel() == 0:
                break
            cache.batch_select_indices(keep)
            active, mask, next_pos, nxt = active[keep], mask[keep], next_pos[keep], nxt[keep]
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        logits = last_logits(net, nxt[:, None], mask, next_pos, cache)
        next_pos = next_pos + 1
    return Decoded(tokens, margin.tolist(), near)


def dedupe(keys: Sequence[Hashable]) -> tuple[list[int], list[int]]:
    """Indices of each key's first occurrence, and for every key its position among those."""
    seen: dict[Hashable, int] = {}
    where = [seen.setdefault(k, len(seen)) for k in keys]
    first: list[int] = []
    for i, w in enumerate(where):
        if w == len(first):
            first.append(i)
    return first, where


def eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    cfg_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (cfg_eos, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list):
            ids.update(v for v in value if isinstance(v, int))
    return ids


def context_length(model: Any, tokenizer: Any) -> int:
    ctx = getattr(model.config, "max_position_embeddings", None) or 2048
    tok_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_max, int) and 0 < tok_max < 1_000_000:
        ctx = min(ctx, tok_max)
    return int(ctx)
