"""The snapshot engine against a competent batched peer and against the floor of the work.

Run: .venv/bin/python -m bench.bench_evalpeer [--only tiny,narrow] [--repeats 3]

* ``snapshot_vs_peer``: peer time / Trainyard time on the same model and examples, in the same run, one torch
  thread. The peer is what a W&B or H2O-style evaluation callback writes: one left-padded ``model.generate`` over
  the whole batch (greedy, ``max_new_tokens`` 48) plus one teacher-forced forward pass for the loss (full
  logits, labels masked to the target). Trainyard is ``Engine.evaluate`` at the evaluator's settings
  (``EvaluatorSettings``: 48 tokens at most, and at most ``answer_room`` past the target's length).
* ``snapshot_floor_ratio``: Trainyard time / the least work, timed with bare torch on the same model: one
  batched prefill over all prompts (the head on the last position), one teacher-forced pass over the target
  tokens continuing that cache (the head on target positions only), and greedy decode steps with the KV cache,
  each step over the rows still running (as many steps per row as Trainyard generated for it).
* Models: the narrow real-vocabulary model (``trainyard demo-model DIR --shape qwen3-0.6b-narrow``: Qwen3-0.6B's
  width, hidden 1024, intermediate 3072, 16 heads, 8 KV heads, head_dim 128, 2 layers, vocabulary 151,936,
  random init, the real Qwen tokenizer; run in float32 on CPU) with a LoRA r16 on all linear layers, 32
  examples: the figure in the key. The tiny Qwen3 with
  the demo job's last checkpoint (trained by the trainer, ``bench.demojob``), 100 examples: in the notes.
* Times are the process's CPU seconds (``time.process_time``): with one torch thread that is the work done,
  while wall time on a machine shared with other jobs measures the neighbours too.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from bench import demojob
from bench.bench_evaluator import demo_examples
from bench.common import record
from services.evaluator.engine import Engine, Item
from services.evaluator.forward import causal_lm, new_cache, positions_of
from services.evaluator.models import ModelCache
from shared.modeling import build_tiny_model, render
from shared.settings import EvaluatorSettings

CMD = "python -m bench.bench_evalpeer"
MAX_NEW = 48
BATCH = 128


def narrow_model(work: Path) -> Path:
    """``trainyard demo-model DIR --shape qwen3-0.6b-narrow``: Qwen3-0.6B's width and vocabulary with 2 layers,
    random init, the real Qwen tokenizer."""
    from shared.realshape import build_model

    return build_model(work / "narrow", shape="qwen3-0.6b-narrow")


def random_lora(base: Path, out: Path, seed: int = 0) -> Path:
    """A LoRA r16 on all linear layers (what the demo spec trains) with small random B matrices."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                           LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.01)
    model.save_pretrained(out, safe_serialization=True)
    return out


def trained_tiny(work: Path) -> tuple[Path, Path]:
    """The tiny Qwen3 and the demo job's last checkpoint (trained by the trainer with the registry running)."""
    base = build_tiny_model(work / "tiny")
    with demojob.servers(work / "demo") as common:
        job = demojob.train(common, base, work / "demo")
        consumer, capturer, _ = demojob.evaluator(common)
        adapter = capturer.registry.materialize(job.versions[-1][1], work / "last")
    return base, adapter


@torch.inference_mode()
def peer(model: Any, tok: Any, items: list[Item]) -> list[str]:
    """One left-padded generate over the batch + one teacher-forced pass (full logits) for the loss."""
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    tok.padding_side = "left"
    enc = tok([x.prompt for x in items], return_tensors="pt", padding=True, add_special_tokens=False)
    gen = model.generate(**enc, max_new_tokens=MAX_NEW, do_sample=False, pad_token_id=pad)
    texts = [t.strip() for t in tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)]
    tok.padding_side = "right"
    prompts = tok([x.prompt for x in items], add_special_tokens=False)["input_ids"]
    full = tok([x.prompt + x.target for x in items], return_tensors="pt", padding=True, add_special_tokens=False)
    labels = full["input_ids"].masked_fill(full["attention_mask"] == 0, -100)
    for row, p in enumerate(prompts):
        labels[row, :len(p)] = -100
    logits = model(**full).logits.float()
    nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), labels[:, 1:], reduction="none")
    losses = nll.sum(-1) / (labels[:, 1:] != -100).sum(-1)
    assert torch.isfinite(losses).all()
    return texts


@torch.inference_mode()
def floor(model: Any, prompts: list[list[int]], targets: list[list[int]], steps: list[int], pad: int) -> float:
    """The least work (see the module docstring), in bare torch on the model's body and head; returns the CPU
    seconds of its decode steps (the rest is the prefill and the target pass)."""
    net = causal_lm(model)
    width = max(map(len, prompts))
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    cache = new_cache(net)
    hidden = net.model(input_ids=ids, attention_mask=mask, position_ids=positions_of(mask), cache=cache).last_hidden_state
    first = net.lm_head(hidden[:, -1])  # predicts each target's first token and the first generated one
    tw = max(map(len, targets))
    gold = torch.tensor([t + [pad] * (tw - len(t)) for t in targets])
    gold_mask = torch.tensor([[1] * len(t) + [0] * (tw - len(t)) for t in targets])
    full_mask = torch.cat([mask, gold_mask], 1)
    hidden = net.model(input_ids=gold, attention_mask=full_mask, position_ids=positions_of(full_mask)[:, width:],
                       cache=cache).last_hidden_state
    keep = gold_mask[:, 1:].bool()  # target position j predicts target token j + 1
    logits = net.lm_head(hidden[:, :-1][keep]).float()
    _ = logits.gather(-1, gold[:, 1:][keep][:, None]) - torch.logsumexp(logits, -1, keepdim=True)
    _ = first.float().log_softmax(-1)
    cache.crop(-tw)
    t0 = time.process_time()
    nxt, pos, active = first.argmax(-1), mask.sum(-1, keepdim=True), torch.tensor(steps)
    for step in range(max(steps) - 1):
        running = active > step + 1
        if not bool(running.all()):
            keep_rows = running.nonzero().squeeze(1)
            cache.batch_select_indices(keep_rows)
            active, mask, pos, nxt = active[keep_rows], mask[keep_rows], pos[keep_rows], nxt[keep_rows]
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], 1)
        hidden = net.model(input_ids=nxt[:, None], attention_mask=mask, position_ids=pos, cache=cache).last_hidden_state
        nxt = net.lm_head(hidden[:, -1]).argmax(-1)
        pos = pos + 1
    return time.process_time() - t0


def measure(model: Any, tok: Any, items: list[Item], repeats: int) -> dict[str, Any]:
    """Peer, Trainyard (at the evaluator's settings and with the answer cut off) and the floor, interleaved."""
    room = EvaluatorSettings.model_fields["answer_room"].default
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    runs: dict[str, list[float]] = {"peer": [], "ours": [], "ours_no_room": [], "floor": [], "floor_decode": []}
    for _ in range(repeats):
        t0 = time.process_time()
        peer_texts = peer(model, tok, items)
        runs["peer"].append(time.process_time() - t0)
        engine = Engine(model, tok, max_new_tokens=MAX_NEW, batch_size=BATCH, answer_room=room)
        t0 = time.process_time()
        _, gens = engine.evaluate(items)
        runs["ours"].append(time.process_time() - t0)
        full = Engine(model, tok, max_new_tokens=MAX_NEW, batch_size=BATCH)
        t0 = time.process_time()
        _, gens_full = full.evaluate(items)
        runs["ours_no_room"].append(time.process_time() - t0)
        prompts = tok([x.prompt for x in items], add_special_tokens=False)["input_ids"]
        targets = tok([x.target for x in items], add_special_tokens=False)["input_ids"]
        t0 = time.process_time()
        runs["floor_decode"].append(floor(model, prompts, targets, [g.n_tokens for g in gens], pad))
        runs["floor"].append(time.process_time() - t0)
    med = {k: statistics.median(v) for k, v in runs.items()}
    return {"runs": runs, "median": med, "engine": engine, "full": full, "gens": gens,
            "agree": sum(a == g.text for a, g in zip(peer_texts, gens_full, strict=True)),
            "tokens": sum(g.n_tokens for g in gens), "rows": len(items)}


def describe(label: str, m: dict[str, Any]) -> str:
    med, eng, rp = m["median"], m["engine"], m["engine"].stats.replay
    return (f"{label}: peer {med['peer']:.2f}s, Trainyard {med['ours']:.2f}s ({med['peer'] / med['ours']:.2f}x; "
            f"with the answer cut off, i.e. 48 tokens for every row like the peer: {med['ours_no_room']:.2f}s = "
            f"{med['peer'] / med['ours_no_room']:.2f}x), floor {med['floor']:.2f}s (ratio "
            f"{med['ours'] / med['floor']:.2f}; its decode steps {med['floor_decode']:.2f}s, prefill + target pass the "
            f"rest); {m['rows']} rows, {m['tokens']} tokens generated; near-tie steps "
            f"{eng.stats.near_steps} of {eng.stats.decode_steps}, rows re-decoded {eng.stats.reruns} "
            f"({rp.body_steps} body passes, {rp.head_steps} vocabulary projections, {rp.diverged} diverged, "
            f"{rp.seconds:.2f}s wall, the rest of this note is CPU seconds); the peer's predictions equal "
            f"Trainyard's uncut ones on {m['agree']}/{m['rows']} rows")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="tiny,narrow")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # the tokenizer's threads would count as work
    only = set(args.only.split(","))
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cache = ModelCache("cpu")
        if "tiny" in only:
            base, adapter = trained_tiny(work)
            with cache.adapted(str(base), adapter) as (model, tok):
                items = [Item(r.prompt, r.target) for r in (render(tok, e["messages"]) for e in demo_examples(100))]
                results["tiny"] = measure(model, tok, items, args.repeats)
        if "narrow" in only:
            base = narrow_model(work)
            with cache.adapted(str(base), random_lora(base, work / "lora")) as (model, tok):
                items = [Item(r.prompt, r.target) for r in (render(tok, e["messages"]) for e in demo_examples(32))]
                results["narrow"] = measure(model, tok, items, args.repeats)
    key = "narrow" if "narrow" in results else "tiny"
    m = results[key]
    notes = "; ".join(describe(k, v) for k, v in results.items())
    where = ("narrow real-vocabulary Qwen3 (demo-model --shape qwen3-0.6b-narrow: hidden 1024, 2 layers, vocab "
             "151,936, real Qwen tokenizer, random init + LoRA r16 all-linear, float32, 32 examples)" if key == "narrow" else "tiny Qwen3 + the demo job's last checkpoint, 100 examples")
    common = f"{where}; CPU seconds, 1 torch thread; max_new_tokens {MAX_NEW}, answer_room at the evaluator's default. "
    ratio = m["median"]["peer"] / m["median"]["ours"]
    tiny_ok = "tiny" not in results or results["tiny"]["median"]["peer"] >= results["tiny"]["median"]["ours"]
    record("snapshot_vs_peer", value=ratio, unit="x", baseline=m["median"]["peer"], ratio=ratio,
           target=">= 2.0 narrow real-vocab, >= 1.0 tiny",
           runs=[p / o for p, o in zip(m["runs"]["peer"], m["runs"]["ours"], strict=True)], command=CMD,
           baseline_name="peer: one left-padded generate + one teacher-forced pass (s)",
           met=ratio >= 2.0 and tiny_ok, notes=common + notes)
    fl = m["median"]["ours"] / m["median"]["floor"]
    record("snapshot_floor_ratio", value=fl, unit="x", baseline=m["median"]["floor"], ratio=fl, target="<= 1.3",
           runs=[o / f for o, f in zip(m["runs"]["ours"], m["runs"]["floor"], strict=True)], command=CMD,
           baseline_name="floor: bare-torch prefill + target pass + decode of running rows (s)", met=fl <= 1.3,
           notes=common + notes)


if __name__ == "__main__":
    main()
