"""The batched engine against the naive per-example loop on the tiny model (and a LoRA on it)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from test_evaluator_support import demo_rows, make_adapter

from services.evaluator.engine import Engine, Item, naive_generate
from services.evaluator.models import ModelCache
from shared.modeling import render


@pytest.fixture(scope="module")
def cache() -> ModelCache:
    torch.set_num_threads(1)
    return ModelCache("cpu")


def rendered(tokenizer, n: int):
    return [render(tokenizer, row["messages"]) for row in demo_rows(n)]


def test_batched_greedy_is_identical_to_naive_loop(cache: ModelCache, tiny_model: Path, tmp_path: Path) -> None:
    adapter = make_adapter(tiny_model, tmp_path / "adapter", seed=7)
    with cache.adapted(str(tiny_model), adapter) as (model, tok):
        prompts = [x.prompt for x in rendered(tok, 40)]
        engine = Engine(model, tok, max_new_tokens=24, batch_size=8)
        batched = engine.generate(prompts)
        naive = naive_generate(model, tok, prompts, 24)
        assert engine.stats.batches == 5  # really batched (40 / 8), left-padded across lengths
        assert len({len(tok(p)["input_ids"]) for p in prompts}) > 1
        assert [g.text for g in batched] == naive
        assert all(g.n_tokens == 24 for g in batched if g.hit_limit)  # no end-of-turn within the limit
        assert all(0 < g.n_tokens <= 24 for g in batched)
    model, tok = cache.base(str(tiny_model))
    assert not hasattr(model, "peft_config") or not model.peft_config  # the adapter was removed again
    base_engine = Engine(model, tok, max_new_tokens=24, batch_size=16)
    assert [g.text for g in base_engine.generate(prompts)] == naive_generate(model, tok, prompts, 24)


def test_batched_loss_matches_single_forward(cache: ModelCache, tiny_model: Path) -> None:
    model, tok = cache.base(str(tiny_model))
    items = [Item(x.prompt, x.target) for x in rendered(tok, 12)]
    scores = Engine(model, tok, batch_size=5).score(items)
    for item, s in zip(items, scores, strict=True):
        p = tok(item.prompt, add_special_tokens=False)["input_ids"]
        t = tok(item.target, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([p + t])).logits[0].float()
        lp = torch.log_softmax(logits[len(p) - 1:-1], -1).gather(-1, torch.tensor(t)[:, None]).squeeze(-1)
        assert s.n_target_tokens == len(t)
        assert s.loss == pytest.approx(float(-lp.mean()), rel=1e-4)
        assert s.confidence == pytest.approx(float(lp.exp().mean()), rel=1e-4)


def test_overlong_example_is_truncated_and_flagged_not_dropped(cache: ModelCache, tiny_model: Path) -> None:
    model, tok = cache.base(str(tiny_model))
    long_q = "What is the capital of France? " * 200
    msgs = [{"role": "user", "content": long_q}, {"role": "assistant", "content": "Paris"}]
    long_answer = [{"role": "user", "content": "Say it"}, {"role": "assistant", "content": "Paris " * 700}]
    items = [render(tok, msgs), *rendered(tok, 2), render(tok, long_answer)]
    engine = Engine(model, tok, max_new_tokens=8, batch_size=4)
    scores = engine.score([Item(x.prompt, x.target) for x in items])
    gens = engine.generate([x.prompt for x in items])
    assert len(scores) == len(gens) == 4
    assert scores[0].input_truncated and gens[0].input_truncated and math.isfinite(scores[0].loss)
    assert not scores[1].input_truncated and not gens[1].input_truncated
    assert scores[3].input_truncated and math.isfinite(scores[3].loss)
    assert scores[3].n_target_tokens == engine.max_ctx - 1  # the target keeps all but one position


def test_memory_budget_limits_batch_rows(cache: ModelCache, tiny_model: Path) -> None:
    model, tok = cache.base(str(tiny_model))
    prompts = [x.prompt for x in rendered(tok, 6)]
    engine = Engine(model, tok, max_new_tokens=4, batch_size=16, memory_budget_mb=0)
    engine.generate(prompts)
    assert engine.stats.batches == 6  # a budget too small for two rows runs one row at a time
