"""Forward passes that compute logits only where they are used.

A causal LM is a body (embeddings, decoder layers, final norm) and a head (``lm_head``: hidden -> vocabulary).
At a 151,936-token vocabulary the head costs several times the body of a small model, so the evaluator runs
the body over whole sequences and the head only on the hidden states it needs: the target positions for the
loss, the last position of each running row while decoding. ``lm_head`` is called as the module it is, so a
LoRA that targets it (peft replaces the module in place) is applied. Architectures whose logits are more than
``lm_head(final hidden)`` (soft-capping, logit scaling) are not split: they run the whole model with
``logits_to_keep`` as before.
"""

from __future__ import annotations

from typing import Any

import torch

# model types whose ``ForCausalLM.forward`` is exactly ``lm_head(model(...).last_hidden_state)``
_SPLIT_TYPES = {"qwen2", "qwen3", "llama", "mistral", "qwen2_moe", "qwen3_moe", "phi3", "olmo2", "smollm3"}
SHARED_PREFIX_MIN = 8  # tokens all prompts of a batch must share before the prefix gets a pass of its own
_SCALING_FIELDS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale")


def causal_lm(model: Any) -> Any:
    """The transformers model under a peft wrapper (what ``PeftModel.generate`` runs; adapters are injected)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def splits(net: Any) -> bool:
    """True when logits are ``net.lm_head(net.model(...).last_hidden_state)`` and nothing else."""
    cfg = getattr(net, "config", None)
    if getattr(cfg, "model_type", None) not in _SPLIT_TYPES:
        return False
    if any(getattr(cfg, name, None) not in (None, 1, 1.0) for name in _SCALING_FIELDS):
        return False
    return hasattr(net, "model") and isinstance(getattr(net, "lm_head", None), torch.nn.Module)


def positions_of(mask: torch.Tensor, start: int = 0) -> torch.Tensor:
    """Position ids of a left-padded (or gapped) batch: each row counts its own real tokens from ``start``."""
    return (mask.cumsum(-1) - 1).clamp(min=0) + start


def body(net: Any, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Any) -> torch.Tensor:
    """Final hidden states (rows x len(ids) x hidden) of ``ids`` appended to ``cache``; ``mask`` covers both."""
    return net.model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache,
                     use_cache=True).last_hidden_state


def head(net: Any, hidden: torch.Tensor) -> torch.Tensor:
    """Logits (float32) of the given hidden states."""
    return net.lm_head(hidden).float()


def new_cache(net: Any) -> Any:
    from transformers import DynamicCache

    return DynamicCache(config=net.config)


def last_logits(net: Any, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Any) -> torch.Tensor:
    """Next-token logits (rows x vocab) after ``ids``: the head on the last position only."""
    if splits(net):
        return head(net, body(net, ids, mask, positions, cache)[:, -1:])[:, -1]
    return net(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True,
               logits_to_keep=1).logits[:, -1].float()


def shared_prefix(prompts: list[list[int]]) -> int:
    """How many leading tokens all prompts share (a system prompt, a few-shot header), each prompt keeping at
    least its last token; 0 when below ``SHARED_PREFIX_MIN`` (not worth a pass of its own)."""
    if len(prompts) < 2:
        return 0
    first, most = prompts[0], min(len(p) for p in prompts) - 1
    n = next((k for k in range(most) if any(p[k] != first[k] for p in prompts)), most)
    return n if n >= SHARED_PREFIX_MIN else 0


def prefill_prefix(net: Any, prefix: list[int], rows: int, cache: Any) -> torch.Tensor:
    """Run the shared ``prefix`` once and give each of ``rows`` its KV cache; returns the prefix's mask. The
    rows continue after it with their own left padding (prefix, padding, rest: the mask skips the gap)."""
    device = next(net.parameters()).device
    ids = torch.tensor([prefix], device=device)
    mask, positions = torch.ones_like(ids), torch.arange(len(prefix), device=device)[None]
    if splits(net):
        body(net, ids, mask, positions, cache)
    else:
        net(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True, logits_to_keep=1)
    cache.batch_repeat_interleave(rows)
    return torch.ones((rows, len(prefix)), dtype=torch.long, device=device)


def gold_logprobs(net: Any, ids: torch.Tensor, mask: torch.Tensor, gold: torch.Tensor, gold_mask: torch.Tensor,
                  cache: Any, past_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass over left-padded prompts ``ids`` followed by right-padded targets ``gold`` (into ``cache``, which
    may hold a shared prefix whose mask is ``past_mask``).

    Returns the log-probability of every real target token (rows x targets, 0 where padded) and the logits
    after each prompt (rows x vocab, what greedy decoding starts from). The head runs on the prompt's last
    position and on the target positions that predict a real target token, nothing else."""
    width = gold.shape[1]
    full = torch.cat([ids, gold], 1)
    full_mask = torch.cat([m for m in (past_mask, mask, gold_mask) if m is not None], 1)
    positions = positions_of(full_mask)[:, full_mask.shape[1] - full.shape[1]:]
    if splits(net):
        hidden = body(net, full, full_mask, positions, cache)[:, -width - 1:-1]  # position j predicts gold[j]
        keep = gold_mask.bool()
        logits = head(net, hidden[keep])  # one row per real target token
        first = torch.zeros((ids.shape[0], logits.shape[-1]), dtype=logits.dtype, device=logits.device)
        first_rows = keep.cumsum(-1)[:, 0] > 0  # every row has at least one target token
        starts = torch.cat([keep.new_zeros(1, dtype=torch.long), keep.sum(-1).cumsum(0)[:-1]])
        first[first_rows] = logits[starts[first_rows]]
        lp = logits.gather(-1, gold[keep][:, None]).squeeze(-1) - torch.logsumexp(logits, -1)
        out = torch.zeros(gold.shape, dtype=lp.dtype, device=lp.device)
        out[keep] = lp
        return out, first
    logits = net(input_ids=full, attention_mask=full_mask, position_ids=positions, cache=cache, use_cache=True,
                 logits_to_keep=width + 1).logits.float()
    lp = torch.log_softmax(logits[:, :-1], -1).gather(-1, gold.unsqueeze(-1)).squeeze(-1)
    return lp * gold_mask, logits[:, 0]


def row_bytes(model: Any, seq_len: int, logits_positions: int) -> int:
    """Memory one row of a batch needs: its KV cache, activations and float32 logits (with their softmax)."""
    cfg = model.config
    layers = getattr(cfg, "num_hidden_layers", 24)
    kv = getattr(cfg, "num_key_value_heads", None) or getattr(cfg, "num_attention_heads", 16)
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    elt = next(model.parameters()).element_size()
    kv_bytes = 2 * layers * kv * head_dim * seq_len * elt
    act_bytes = 4 * seq_len * cfg.hidden_size * elt
    # fp32 logits, their log-softmax and the temporaries around them: measured at ~4 copies per row with
    # Qwen3's 151,936-row vocabulary (tests/evaluator/test_realshape_memory.py), where logits dominate a row
    return kv_bytes + act_bytes + logits_positions * cfg.vocab_size * 4 * 4
