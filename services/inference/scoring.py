"""vLLM's ``prompt_logprobs``: for every prompt token, its log-probability given the tokens before it and the
``top`` most likely tokens there.

The shape is vLLM's: one entry per prompt token, ``None`` for the first (nothing predicts it), otherwise a dict
from token id (a string, as JSON keys are) to ``{"logprob", "rank", "decoded_token"}`` holding the prompt
token itself and the ``top`` most likely tokens (``rank`` is 1 for the most likely). One forward pass over the
prompt; the evaluator's remote backend reads the target's log-probabilities from it (teacher-forced loss).
"""

from __future__ import annotations

from typing import Any

import torch

MAX_TOP = 20  # vLLM's default max_logprobs


@torch.inference_mode()
def prompt_logprobs(model: Any, tokenizer: Any, ids: list[int], top: int, device: str) -> list[dict[str, Any] | None]:
    logits = model(input_ids=torch.tensor([ids], device=device)).logits[0, :-1].float()
    logprobs = torch.log_softmax(logits, -1)
    gold = torch.tensor(ids[1:], device=logprobs.device)
    gold_lp = logprobs.gather(-1, gold[:, None]).squeeze(-1)
    ranks = (logprobs > gold_lp[:, None]).sum(-1) + 1
    best = torch.topk(logprobs, top, dim=-1) if top > 0 else None
    out: list[dict[str, Any] | None] = [None]
    for j, token in enumerate(ids[1:]):
        entry = {str(token): _entry(tokenizer, token, float(gold_lp[j]), int(ranks[j]))}
        if best is not None:
            for rank, (lp, t) in enumerate(zip(best.values[j].tolist(), best.indices[j].tolist(), strict=True), 1):
                entry.setdefault(str(t), _entry(tokenizer, t, lp, rank))
        out.append(entry)
    return out


def _entry(tokenizer: Any, token: int, logprob: float, rank: int) -> dict[str, Any]:
    return {"logprob": logprob, "rank": rank, "decoded_token": tokenizer.decode([token])}
