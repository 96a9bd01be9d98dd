"""Batched evaluation of one model on the tracked examples: teacher-forced loss and greedy generation.

* ``evaluate``: both at once. One left-padded prefill over prompt + target (targets right-padded after the
  prompts) gives the loss; its KV cache is cut back to the prompts and greedy decoding continues from it,
  finished rows leaving the running batch (``greedy.decode``). Identical examples are computed once.
* ``score``: loss and confidence (mean probability of the gold tokens) of each target given its prompt, in
  left-padded batched forward passes that compute logits only for the last positions (the target's).
* ``generate``: greedy decoding in left-padded batches with the KV cache, examples grouped by prompt
  length so that a batch carries little padding.

Greedy predictions are identical to a naive per-example ``model.generate`` loop: padding and batch shape
can move a logit by float noise, which can only flip an argmax where the top two logits are that close.
Each row's smallest (relative) top-1/top-2 gap is recorded; rows that came closer than ``tie_margin`` are
decoded again one by one, exactly as the naive loop does (a batch of one without padding runs the same
forward passes as ``generate``). Models whose generation config adds logits processors (repetition penalty,
...) go through ``model.generate`` with a margin-recording logits processor instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from services.evaluator.greedy import (
    MarginRecorder,
    can_share_prefill,
    context_length,
    decode,
    dedupe,
    eos_ids,
    greedy,
    plain_greedy,
    prefill,
)

# Top-2 logit gaps (relative to max(1, |top logit|)) below these are treated as possible ties under
# batching noise. Measured float32 noise on CPU is ~2e-7 for the tiny model; half precision is far noisier.
TIE_MARGIN_FP32 = 1e-4
TIE_MARGIN_HALF = 2e-2


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
    reruns: int = 0  # rows decoded again one by one because of a near-tie


class Engine:
    """Scores and decodes a list of examples on one model, batch by batch within a memory budget."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_new_tokens: int = 48,
        batch_size: int = 16,
        memory_budget_mb: int = 4096,
        tie_margin: float | None = None,
        answer_room: int | None = None,
    ) -> None:
        self.model = model
        self.tok = tokenizer
        self.max_new_tokens = max_new_tokens
        # With a target known (``evaluate``), a row stops ``answer_room`` tokens past the target's length: an
        # answer that long is wrong already and is flagged truncated, and a rambling base model costs no more.
        self.answer_room = answer_room
        self.batch_size = max(1, batch_size)
        self.memory_budget = memory_budget_mb * 1024 * 1024
        self.device = next(model.parameters()).device
        dtype = next(model.parameters()).dtype
        self.tie_margin = tie_margin if tie_margin is not None else (
            TIE_MARGIN_FP32 if dtype == torch.float32 else TIE_MARGIN_HALF
        )
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.eos_ids = eos_ids(model, tokenizer)
        self.max_ctx = context_length(model, tokenizer)
        self.stats = EngineStats()
        self.fast_greedy = plain_greedy(model)
        self._tokens: dict[str, list[int]] = {}

    # -- tokenisation -------------------------------------------------------------------------------
    def _ids(self, text: str) -> list[int]:
        if text not in self._tokens:
            self._tokenize([text])
        return self._tokens[text]

    def _tokenize(self, texts: Sequence[str]) -> None:
        """Tokenise the texts not seen yet in one batched call (the prompts are shared by score and generate)."""
        todo = list(dict.fromkeys(t for t in texts if t not in self._tokens))
        if todo:
            self._tokens.update(zip(todo, self.tok(todo, add_special_tokens=False)["input_ids"], strict=True))

    def _batches(self, order: list[int], per_row_bytes: int) -> list[list[int]]:
        rows = max(1, min(self.batch_size, self.memory_budget // max(per_row_bytes, 1)))
        return [order[i:i + rows] for i in range(0, len(order), rows)]

    def _row_bytes(self, seq_len: int, logits_positions: int) -> int:
        cfg = self.model.config
        layers = getattr(cfg, "num_hidden_layers", 24)
        kv = getattr(cfg, "num_key_value_heads", None) or getattr(cfg, "num_attention_heads", 16)
        head = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        elt = next(self.model.parameters()).element_size()
        kv_bytes = 2 * layers * kv * head * seq_len * elt
        act_bytes = 4 * seq_len * cfg.hidden_size * elt
        # fp32 logits, their log-softmax and the temporaries around them: measured at ~4 copies per row with
        # Qwen3's 151,936-row vocabulary (tests/evaluator/test_realshape_memory.py), where logits dominate a row
        logit_bytes = logits_positions * cfg.vocab_size * 4 * 4
        return kv_bytes + act_bytes + logit_bytes

    def _left_pad(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, width - len(s):] = torch.tensor(s, dtype=torch.long)
            mask[i, width - len(s):] = 1
        return ids.to(self.device), mask.to(self.device)

    # -- loss and generation from one prefill ------------------------------------------------------
    def evaluate(self, items: Sequence[Item]) -> tuple[list[Scored], list[Generated]]:
        """``score(items)`` and ``generate(prompts)`` in one pass where a prompt needs no truncation: a single
        prefill over prompt + target gives the loss, its KV cache is cut back to the prompt and greedy decoding
        continues from it (the prompt's last logits give the first token)."""
        first, where = dedupe(items)  # the same example twice: computed once (greedy is deterministic)
        if len(first) < len(items):
            scored_u, gens_u = self.evaluate([items[i] for i in first])
            return [scored_u[w] for w in where], [gens_u[w] for w in where]
        if not (self.fast_greedy and can_share_prefill(self.model)):
            return self.score(items), self.generate([x.prompt for x in items])
        self._tokenize([x for item in items for x in (item.prompt, item.target)])
        parts = [self._score_parts(item) for item in items]
        room = self.max_ctx - self.max_new_tokens
        shared = [i for i, (p, t, cut) in enumerate(parts) if t and not cut and len(p) <= room]
        scored: list[Scored | None] = [None] * len(items)
        gens: list[Generated | None] = [None] * len(items)
        order = sorted(shared, key=lambda i: (len(parts[i][0]), len(parts[i][1]), i))
        longest = max((len(parts[i][0]) + len(parts[i][1]) for i in order), default=1)
        longest_t = max((len(parts[i][1]) for i in order), default=1)
        for batch in self._batches(order, self._row_bytes(longest + self.max_new_tokens, longest_t + 1)):
            self._shared_batch(batch, parts, scored, gens)
        rest = sorted(set(range(len(items))) - set(shared))
        if rest:
            scored_rest = self.score([items[i] for i in rest])
            gens_rest = self.generate([items[i].prompt for i in rest])
            for i, s, g in zip(rest, scored_rest, gens_rest, strict=True):
                scored[i], gens[i] = s, g
        return [s for s in scored if s is not None], [g for g in gens if g is not None]

    @torch.inference_mode()
    def _shared_batch(self, batch: list[int], parts: list[tuple[list[int], list[int], bool]], scored: list,
                      gens: list) -> None:
        ids, mask = self._left_pad([parts[i][0] for i in batch])
        width = max(len(parts[i][1]) for i in batch)
        gold = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        gold_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):  # targets right-padded after the left-padded prompts
            gold[row, :len(parts[i][1])] = torch.tensor(parts[i][1], dtype=torch.long)
            gold_mask[row, :len(parts[i][1])] = 1
        gold, gold_mask = gold.to(self.device), gold_mask.to(self.device)
        cache, logits = prefill(self.model, torch.cat([ids, gold], 1), torch.cat([mask, gold_mask], 1), width + 1)
        gold_lp = torch.log_softmax(logits[:, :-1], -1).gather(-1, gold.unsqueeze(-1)).squeeze(-1)
        for row, i in enumerate(batch):
            lp = gold_lp[row, :len(parts[i][1])]
            scored[i] = Scored(float(-lp.mean()), float(lp.exp().mean()), len(parts[i][1]), False)
        cache.crop(-width)
        limits = [self.limit(len(parts[i][1])) for i in batch]
        decoded = decode(self.model, cache, logits[:, 0], mask, self.max_new_tokens, self.eos_ids, limits)
        self.stats.batches += 1
        self._finish(batch, [(parts[i][0], False) for i in batch], decoded.tokens, decoded.min_margin, gens, limits)

    def limit(self, n_target_tokens: int) -> int:
        """Most tokens to generate for an example whose target has ``n_target_tokens`` tokens."""
        if self.answer_room is None:
            return self.max_new_tokens
        return max(1, min(self.max_new_tokens, n_target_tokens + self.answer_room))

    # -- teacher-forced loss ------------------------------------------------------------------------
    def _score_parts(self, item: Item) -> tuple[list[int], list[int], bool]:
        """Prompt and target ids cut to the context (the target keeps all but one position), and whether cut."""
        p, t = self._ids(item.prompt), self._ids(item.target)
        truncated = len(p) + len(t) > self.max_ctx
        if len(t) >= self.max_ctx:
            t = t[: self.max_ctx - 1]
        keep = self.max_ctx - len(t)  # >= 1: the target was cut to leave one prompt token
        if len(p) > keep:
            p = p[-keep:]
        return p, t, truncated

    def score(self, items: Sequence[Item]) -> list[Scored]:
        first, where = dedupe(items)
        if len(first) < len(items):
            unique = self.score([items[i] for i in first])
            return [unique[w] for w in where]
        self._tokenize([x for item in items for x in (item.prompt, item.target)])
        prepared = [(p + t, len(t), cut) for p, t, cut in map(self._score_parts, items)]  # ids, n target, cut
        out: list[Scored | None] = [None] * len(items)
        empty = [i for i, (_, n, _) in enumerate(prepared) if n == 0]
        for i in empty:
            out[i] = Scored(math.nan, math.nan, 0, prepared[i][2])
        order = sorted((i for i in range(len(items)) if prepared[i][1] > 0), key=lambda i: len(prepared[i][0]))
        longest = max((len(prepared[i][0]) for i in order), default=1)
        longest_t = max((prepared[i][1] for i in order), default=1)
        for batch in self._batches(order, self._row_bytes(longest, longest_t + 1)):
            self._score_batch(batch, prepared, out)
        return [s for s in out if s is not None]

    @torch.inference_mode()
    def _score_batch(self, batch: list[int], prepared: list[tuple[list[int], int, bool]], out: list) -> None:
        seqs = [prepared[i][0] for i in batch]
        ids, mask = self._left_pad(seqs)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        keep = max(prepared[i][1] for i in batch) + 1
        logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                            logits_to_keep=keep, use_cache=False).logits.float()
        logprobs = torch.log_softmax(logits[:, :-1], dim=-1)  # position j predicts token j + 1
        gold = ids[:, -keep + 1:]
        gold_lp = logprobs.gather(-1, gold.unsqueeze(-1)).squeeze(-1)
        self.stats.batches += 1
        for row, i in enumerate(batch):
            n = prepared[i][1]
            lp = gold_lp[row, -n:]
            loss = float(-lp.mean())
            conf = float(lp.exp().mean())
            out[i] = Scored(loss, conf, n, prepared[i][2])

    # -- greedy generation --------------------------------------------------------------------------
    def _prompt_ids(self, prompt: str) -> tuple[list[int], bool]:
        ids = self._ids(prompt)
        room = max(1, self.max_ctx - self.max_new_tokens)
        return (ids[-room:], True) if len(ids) > room else (ids, False)

    def generate(self, prompts: Sequence[str]) -> list[Generated]:
        first, where = dedupe(prompts)
        if len(first) < len(prompts):
            unique = self.generate([prompts[i] for i in first])
            return [unique[w] for w in where]
        self._tokenize(prompts)
        prepared = [self._prompt_ids(p) for p in prompts]
        order = sorted(range(len(prompts)), key=lambda i: (len(prepared[i][0]), i))
        longest = max((len(p) for p, _ in prepared), default=1) + self.max_new_tokens
        out: list[Generated | None] = [None] * len(prompts)
        for batch in self._batches(order, self._row_bytes(longest, 1)):
            self._generate_batch(batch, prepared, out)
        return [g for g in out if g is not None]

    @torch.inference_mode()
    def _generate_batch(self, batch: list[int], prepared: list[tuple[list[int], bool]], out: list) -> None:
        from transformers import LogitsProcessorList

        ids, mask = self._left_pad([prepared[i][0] for i in batch])
        if self.fast_greedy:
            decoded = greedy(self.model, ids, mask, self.max_new_tokens, self.eos_ids)
            new, margins = decoded.tokens, decoded.min_margin
        else:
            recorder = MarginRecorder(len(batch), self.eos_ids, self.device)
            gen = self.model.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=self.max_new_tokens, do_sample=False,
                pad_token_id=self.pad_id, logits_processor=LogitsProcessorList([recorder]),
            )
            new, margins = gen[:, ids.shape[1]:].tolist(), recorder.min_margin.tolist()
        self.stats.batches += 1
        self._finish(batch, [prepared[i] for i in batch], new, margins, out)

    def _finish(self, batch: list[int], prepared: list[tuple[list[int], bool]], new: list[list[int]],
                margins: list[float], out: list, limits: list[int] | None = None) -> None:
        """Decode each row's tokens; rows that came within ``tie_margin`` of a tie are decoded again alone."""
        for row, i in enumerate(batch):
            limit = limits[row] if limits is not None else self.max_new_tokens
            if len(batch) > 1 and margins[row] < self.tie_margin:
                self.stats.reruns += 1
                out[i] = self._generate_one(prepared[row], limit)
            else:
                out[i] = self._decode(new[row], prepared[row][1], limit)

    @torch.inference_mode()
    def _generate_one(self, prepared: tuple[list[int], bool], limit: int) -> Generated:
        ids = torch.tensor([prepared[0]], dtype=torch.long, device=self.device)
        if self.fast_greedy:  # batch of one, no padding: the same forward passes as generate (bitwise, tested)
            return self._decode(greedy(self.model, ids, torch.ones_like(ids), limit, self.eos_ids).tokens[0],
                                prepared[1], limit)
        gen = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                  max_new_tokens=limit, do_sample=False, pad_token_id=self.pad_id)
        return self._decode(gen[0, ids.shape[1]:].tolist(), prepared[1], limit)

    def _decode(self, tokens: list[int], input_truncated: bool, limit: int) -> Generated:
        cut = next((k for k, t in enumerate(tokens) if t in self.eos_ids), None)
        kept = tokens if cut is None else tokens[: cut + 1]
        text = self.tok.decode(kept, skip_special_tokens=True).strip()
        return Generated(text, len(kept), cut is None and len(tokens) >= limit, input_truncated)


def naive_generate(model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int) -> list[str]:
    """The earlier tracker's loop: one ``generate`` call per example (the reference for identity)."""
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
