"""Near-tie re-decodes that cost only what they must.

A batched row whose top-2 logit gap came under the tie margin at some steps may differ from the naive
per-example loop there (padding and batch shape move logits by float noise). The naive loop's logits at such a
step depend on its own computation of everything before it: a batch of one, no padding, the prompt prefilled
and then one token per forward pass. ``replay`` runs exactly those forward passes, but it computes the head
(hidden -> vocabulary, most of the cost at a large vocabulary, and memory-bound at batch one) only at the
near-tie steps: the tokens between them had a clear winner, so they are the batched run's. It stops at the
last near-tie step when the naive token agreed there, keeping the batched run's remaining tokens; where the
naive token differs, the row has diverged and decoding continues the naive way (head at every step).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from services.evaluator.forward import body, causal_lm, head, new_cache


@dataclass
class ReplayStats:
    rows: int = 0  # rows re-decoded
    body_steps: int = 0  # one-token forward passes of the body (batch of one)
    head_steps: int = 0  # vocabulary projections (batch of one)
    diverged: int = 0  # rows whose naive token differed at a near-tie step
    seconds: float = 0.0


@torch.inference_mode()
def replay(model: Any, prompt: Sequence[int], tokens: Sequence[int], near: Sequence[int], limit: int,
           eos_ids: set[int], stats: ReplayStats) -> list[int]:
    """The naive loop's tokens for ``prompt``, given the batched run's ``tokens`` and its ``near`` steps."""
    net = causal_lm(model)
    device = next(net.parameters()).device
    cache = new_cache(net)
    ids = torch.tensor([list(prompt)], dtype=torch.long, device=device)
    mask = torch.ones_like(ids)
    hidden = body(net, ids, mask, torch.arange(ids.shape[1], device=device)[None], cache)[:, -1:]
    stats.rows += 1
    check, last_check = set(near), max(near, default=-1)
    out: list[int] = []
    diverged = False
    for step in range(limit):
        if diverged or step in check:
            stats.head_steps += 1
            tok = int(torch.argmax(head(net, hidden)[:, -1], dim=-1))
            if not diverged and (step >= len(tokens) or tok != tokens[step]):
                diverged = True
                stats.diverged += 1
        else:
            tok = tokens[step]
        out.append(tok)
        if tok in eos_ids or step == limit - 1:
            break
        if not diverged and step >= last_check:  # no near-tie left: the batched tokens are the naive ones
            return out + list(tokens[step + 1:])
        mask = torch.cat([mask, mask.new_ones((1, 1))], dim=1)
        pos = torch.tensor([[mask.shape[1] - 1]], device=device)
        hidden = body(net, torch.tensor([[tok]], device=device), mask, pos, cache)
        stats.body_steps += 1
    return out
