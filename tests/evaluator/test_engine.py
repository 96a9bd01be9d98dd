"""The batched engine against the naive per-example loop on the tiny model (and a LoRA on it)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from services.evaluator.engine import Engine, Item, naive_generate
from services.evaluator.models import ModelCache
from shared.modeling import render
from tests.support.evaluator import demo_rows
from tests.support.lora import make_lora_adapter


@pytest.fixture(scope="module")
def cache() -> ModelCache:
    torch.set_num_threads(1)
    return ModelCache("cpu")


def rendered(tokenizer, n: int):
    return [render(tokenizer, row["messages"]) for row in demo_rows(n)]


def test_batched_greedy_is_identical_to_naive_loop(cache: ModelCache, tiny_model: Path, tmp_path: Path) -> None:
    adapter = make_lora_adapter(tiny_model, tmp_path / "adapter", seed=7)
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


def test_evaluate_shares_the_prefill_and_matches_score_generate_and_naive(
        cache: ModelCache, tiny_model: Path, tmp_path: Path) -> None:
    adapter = make_lora_adapter(tiny_model, tmp_path / "adapter", seed=3)
    with cache.adapted(str(tiny_model), adapter) as (model, tok):
        items = [Item(x.prompt, x.target) for x in rendered(tok, 24)]
        long_q = [{"role": "user", "content": "Why? " * 400}, {"role": "assistant", "content": "Because."}]
        overlong = render(tok, long_q)
        items = [*items, items[3], Item(overlong.prompt, overlong.target), items[0]]  # duplicates + a cut prompt
        engine = Engine(model, tok, max_new_tokens=20, batch_size=8)
        scored, gens = engine.evaluate(items)
        assert engine.stats.batches == 3 + 2  # 24 distinct shared rows in batches of 8; the cut one apart
        reference = Engine(model, tok, max_new_tokens=20, batch_size=8)
        ref_scores = reference.score(items)
        fit = [i for i in range(len(items)) if i != 25]  # the naive loop feeds the cut prompt whole
        assert [gens[i].text for i in fit] == naive_generate(model, tok, [items[i].prompt for i in fit], 20)
        assert [g.text for g in gens] == [g.text for g in reference.generate([x.prompt for x in items])]
        assert any(g.hit_limit for g in gens)
        for got, ref in zip(scored, ref_scores, strict=True):
            assert got.n_target_tokens == ref.n_target_tokens and got.input_truncated == ref.input_truncated
            assert got.loss == pytest.approx(ref.loss, rel=1e-4)
            assert got.confidence == pytest.approx(ref.confidence, rel=1e-4)
        assert gens[24] == gens[3] and scored[26] == scored[0]
        assert gens[25].input_truncated and scored[25].input_truncated


def test_near_tie_reruns_are_the_naive_loop(cache: ModelCache, tiny_model: Path, tmp_path: Path) -> None:
    adapter = make_lora_adapter(tiny_model, tmp_path / "adapter", seed=11)
    with cache.adapted(str(tiny_model), adapter) as (model, tok):
        prompts = [x.prompt for x in rendered(tok, 12)]
        engine = Engine(model, tok, max_new_tokens=16, batch_size=6, tie_margin=math.inf)  # every row reruns
        got = engine.generate(prompts)
        assert engine.fast_greedy and engine.stats.reruns == 12
        assert [g.text for g in got] == naive_generate(model, tok, prompts, 16)


def test_logits_processor_config_goes_through_generate(cache: ModelCache, tiny_model: Path) -> None:
    model, tok = cache.base(str(tiny_model))
    prompts = [x.prompt for x in rendered(tok, 10)]
    model.generation_config.repetition_penalty = 1.8
    try:
        engine = Engine(model, tok, max_new_tokens=16, batch_size=5)
        assert not engine.fast_greedy  # a bare argmax loop would ignore the penalty
        scored, gens = engine.evaluate([Item(p, "x") for p in prompts])
        assert [g.text for g in gens] == naive_generate(model, tok, prompts, 16)
        assert len(scored) == 10
    finally:
        model.generation_config.repetition_penalty = 1.0


def test_answer_room_cuts_each_prediction_past_its_target_and_flags_it(cache: ModelCache, tiny_model: Path) -> None:
    """The untrained base model rambles: with answer_room a row stops at len(target) + room tokens (flagged
    truncated), and what it did generate is the naive loop's prediction cut at that length."""
    model, tok = cache.base(str(tiny_model))
    items = [Item(x.prompt, x.target) for x in rendered(tok, 12)]
    room = 3
    engine = Engine(model, tok, max_new_tokens=24, batch_size=5, answer_room=room)
    _, got = engine.evaluate(items)
    _, full = Engine(model, tok, max_new_tokens=24, batch_size=5).evaluate(items)
    n_target = [len(tok(x.target, add_special_tokens=False)["input_ids"]) for x in items]
    assert any(n + room < 24 for n in n_target)
    for item, g, f, n in zip(items, got, full, n_target, strict=True):
        limit = min(24, n + room)
        assert g.n_tokens <= limit
        assert g.hit_limit == (f.n_tokens > limit or (f.hit_limit and f.n_tokens == limit))
        ref = naive_generate(model, tok, [item.prompt], limit)[0]
        assert g.text == ref
    assert any(g.hit_limit and f.text != g.text for g, f in zip(got, full, strict=True))  # some rows were cut


def test_consecutive_adapters_reuse_the_lora_layers_with_identical_outputs(tiny_model: Path, tmp_path: Path) -> None:
    """A version whose adapter has the held one's shape only has its weights copied in; the outputs equal a
    fresh ``PeftModel.from_pretrained`` bit for bit, another shape is applied afresh, and ``base`` is pristine."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    held = ModelCache("cpu")
    base = str(tiny_model)
    adapters = [make_lora_adapter(tiny_model, tmp_path / f"a{i}", seed=20 + i) for i in range(3)]
    other = make_lora_adapter(tiny_model, tmp_path / "wide", seed=30, r=8, target_modules=("q_proj", "up_proj"))
    _, tok = held.base(base)
    batch = tok([x.prompt + x.target for x in rendered(tok, 6)], return_tensors="pt", padding=True)

    def fresh(adapter: Path) -> torch.Tensor:
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(adapter)).eval()
        with torch.inference_mode():
            return model(**batch).logits

    plain = AutoModelForCausalLM.from_pretrained(base).eval()
    with torch.inference_mode():
        reference = plain(**batch).logits
    outputs = []
    for adapter in [*adapters, other, adapters[0]]:
        with held.adapted(base, adapter) as (model, _), torch.inference_mode():
            outputs.append(model(**batch).logits)
    assert held.swaps(base) == 0  # the last two changed shape: wrapped afresh each time
    for got, adapter in zip(outputs, [*adapters, other, adapters[0]], strict=True):
        assert torch.equal(got, fresh(adapter))
    assert not torch.equal(outputs[0], outputs[1])  # the weights really changed between versions
    with held.adapted(base, adapters[1]) as (model, _):
        pass
    assert held.swaps(base) == 1
    model, _ = held.base(base)
    with torch.inference_mode():
        assert torch.equal(model(**batch).logits, reference)  # the LoRA layers are gone again



def test_bfloat16_batched_predictions_match_the_naive_loop(tiny_model: Path, tmp_path: Path) -> None:
    """The half-precision path (what a GPU runs) on CPU: bf16 noise between batch shapes is far larger than in
    float32, and the rows it could flip are decoded again alone, so the predictions still equal the naive loop."""
    half = ModelCache("cpu", dtype="bfloat16")
    adapter = make_lora_adapter(tiny_model, tmp_path / "adapter", seed=13)
    with half.adapted(str(tiny_model), adapter) as (model, tok):
        assert next(model.parameters()).dtype == torch.bfloat16
        rows = rendered(tok, 30)
        engine = Engine(model, tok, max_new_tokens=16, batch_size=10)
        assert engine.tie_margin > 1e-3  # the half-precision margin
        scored, gens = engine.evaluate([Item(x.prompt, x.target) for x in rows])
        assert [g.text for g in gens] == naive_generate(model, tok, [x.prompt for x in rows], 16)
        assert engine.stats.reruns > 0  # (without them, 2 of these 30 rows differ from the naive loop)
        assert all(math.isfinite(s.loss) and 0 < s.confidence <= 1 for s in scored)
    with ModelCache("cpu").adapted(str(tiny_model), adapter) as (model32, tok32):
        ref = Engine(model32, tok32, max_new_tokens=16, batch_size=10).score([Item(x.prompt, x.target) for x in rows])
    for got, want in zip(scored, ref, strict=True):
        assert got.loss == pytest.approx(want.loss, rel=0.05, abs=0.05)  # same model, coarser arithmetic
