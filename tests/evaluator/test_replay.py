"""Near-tie re-decodes: the naive loop's forward passes, the vocabulary projection only where a tie was near."""

from __future__ import annotations

from pathlib import Path

import torch

from services.evaluator.engine import Engine, Item, naive_generate
from services.evaluator.models import ModelCache
from services.evaluator.replay import ReplayStats, replay
from shared.modeling import render
from tests.support.evaluator import demo_rows
from tests.support.lora import make_lora_adapter as make_adapter


def _naive_tokens(model, tok, prompt: list[int], n: int) -> list[int]:
    ids = torch.tensor([prompt])
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False,
                             pad_token_id=tok.pad_token_id)
    return out[0, len(prompt):].tolist()


def test_replay_checks_only_the_near_steps_and_follows_the_naive_loop_where_it_diverges(
        tiny_model: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    adapter = make_adapter(tiny_model, tmp_path / "adapter", seed=4)
    with ModelCache("cpu").adapted(str(tiny_model), adapter) as (model, tok):
        prompt = tok(render(tok, demo_rows(1)[0]["messages"]).prompt, add_special_tokens=False)["input_ids"]
        naive = _naive_tokens(model, tok, prompt, 12)
        eos = {tok.eos_token_id}
        stats = ReplayStats()
        assert replay(model, prompt, naive, [3], 12, eos, stats) == naive  # agreed at step 3: the rest is kept
        assert (stats.head_steps, stats.body_steps, stats.diverged) == (1, 3, 0)
        wrong = naive[:5] + [(naive[5] + 1) % len(tok)] + naive[6:]
        stats = ReplayStats()
        assert replay(model, prompt, wrong, [5], 12, eos, stats) == naive  # the naive token differs: diverged
        assert stats.diverged == 1 and stats.head_steps == len(naive) - 5
        stats = ReplayStats()
        assert replay(model, prompt, wrong, [], 12, eos, stats) == wrong  # no near tie: the batched tokens stand
        assert stats.head_steps == 0 and stats.body_steps == 0


def test_half_precision_near_ties_cost_a_fraction_of_full_re_decodes(tiny_model: Path, tmp_path: Path) -> None:
    """bf16 batch noise makes near ties common; the rows are still the naive loop's, and the re-decodes project
    onto the vocabulary only at their near-tie steps."""
    adapter = make_adapter(tiny_model, tmp_path / "adapter", seed=13)
    with ModelCache("cpu", dtype="bfloat16").adapted(str(tiny_model), adapter) as (model, tok):
        rows = [render(tok, row["messages"]) for row in demo_rows(30)]
        engine = Engine(model, tok, max_new_tokens=16, batch_size=10)
        _, gens = engine.evaluate([Item(x.prompt, x.target) for x in rows])
        assert [g.text for g in gens] == naive_generate(model, tok, [x.prompt for x in rows], 16)
        rp = engine.stats.replay
        assert engine.stats.reruns == rp.rows > 0 and engine.stats.near_steps > 0
        assert rp.head_steps < rp.rows * 16  # a full re-decode would project at every generated step
