"""Tracked examples sharing a system prompt: its KV cache is computed once per batch, results unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from services.evaluator.engine import Engine, Item, naive_generate
from services.evaluator.forward import SHARED_PREFIX_MIN, shared_prefix
from services.evaluator.models import ModelCache
from shared.modeling import render
from tests.support.evaluator import demo_rows
from tests.support.lora import make_lora_adapter as make_adapter

SYSTEM = "You are a terse assistant. Answer with one word, no punctuation, and nothing else at all."


def test_shared_prefix_is_the_common_head_of_every_prompt_but_their_last_token() -> None:
    head = list(range(100, 100 + SHARED_PREFIX_MIN + 2))
    assert shared_prefix([head + [1, 2], head + [1, 3], head + [4]]) == len(head)
    assert shared_prefix([head + [1], head + [1]]) == len(head)  # identical prompts keep their last token
    assert shared_prefix([head[:3] + [1], head[:3] + [2]]) == 0  # too short to be worth a pass
    assert shared_prefix([head + [1]]) == 0


def test_system_prompt_runs_once_and_changes_no_prediction_or_loss(tiny_model: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    adapter = make_adapter(tiny_model, tmp_path / "adapter", seed=6)
    with ModelCache("cpu").adapted(str(tiny_model), adapter) as (model, tok):
        rows = [render(tok, [{"role": "system", "content": SYSTEM}, *row["messages"]]) for row in demo_rows(16)]
        items = [Item(x.prompt, x.target) for x in rows]
        engine = Engine(model, tok, max_new_tokens=12, batch_size=8)
        scored, gens = engine.evaluate(items)
        prefix = shared_prefix([tok(x.prompt, add_special_tokens=False)["input_ids"] for x in items])
        assert prefix > 20 and engine.stats.shared_prefix_tokens == 2 * prefix * 7  # two batches of 8 rows
        assert [g.text for g in gens] == naive_generate(model, tok, [x.prompt for x in items], 12)
        ref = Engine(model, tok, max_new_tokens=12, batch_size=8).score(items)  # whole prompts, no sharing
        for got, want in zip(scored, ref, strict=True):
            assert got.loss == pytest.approx(want.loss, rel=1e-4)
            assert got.confidence == pytest.approx(want.confidence, rel=1e-4)
