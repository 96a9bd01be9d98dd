"""Padding-free packing: a packed row computes exactly what the examples compute one by one."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import torch

from services.trainer.features import (
    IGNORE,
    PackCollator,
    PadCollator,
    build_features,
    first_fit_decreasing,
    use_packed_attention,
)
from services.trainer.recipe import build_model
from services.trainer.spec import JobSpec

WORDS = ["the", "quick", "brown", "fox", "Paris", "Rome", "jumps", "over", "dog"]


def conversations(n: int, seed: int = 0) -> list[list[dict[str, str]]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        q = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 30)))
        a = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12)))
        out.append([{"role": "user", "content": q}, {"role": "assistant", "content": a}])
    return out


def peft_model(tiny_model: Path, attn: str) -> tuple[Any, Any]:
    spec = JobSpec(base_model=str(tiny_model), lora_dropout=0.0, device="cpu", seed=3)
    model, tok = build_model(spec, "cpu")
    with torch.no_grad():  # LoRA B starts at zero: give it weights so the adapter path is exercised too
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    if attn == "sdpa_packed":
        use_packed_attention(model)
    model.eval()
    return model, tok


def test_first_fit_decreasing_fills_bins_within_capacity() -> None:
    lengths = [5, 9, 3, 7, 2, 8, 1]
    bins = first_fit_decreasing(lengths, 10)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= 10 for b in bins)
    assert bins[0][0] == 1  # longest first
    assert len(bins) == 4  # 9+1, 8+2, 7+3, 5


def test_pack_collator_layout() -> None:
    batch = [{"input_ids": [1, 2, 3], "labels": [IGNORE, 2, 3]},
             {"input_ids": [4, 5], "labels": [4, 5]},  # a loss label on the first token must not survive
             {"input_ids": [6, 7, 8, 9], "labels": [IGNORE, IGNORE, 8, 9]}]
    out = PackCollator(pad_id=0, row_tokens=5)(batch)
    assert out["input_ids"].tolist() == [[6, 7, 8, 9, 0], [1, 2, 3, 4, 5]]
    assert out["position_ids"].tolist() == [[0, 1, 2, 3, 0], [0, 1, 2, 0, 1]]
    assert out["labels"].tolist() == [[IGNORE, IGNORE, 8, 9, IGNORE], [IGNORE, 2, 3, IGNORE, 5]]
    assert out["cu_seq_lens_q"].tolist() == [0, 4, 5, 8, 10]
    assert "attention_mask" not in out
    # logits only where the next token is an answer token; shift_labels are those next tokens in order
    assert out["logits_to_keep"].tolist() == [[False, True, True, False, False], [True, True, False, True, False]]
    assert out["shift_labels"].tolist() == [8, 9, 2, 3, 5]


@pytest.mark.parametrize("attn", ["sdpa", "sdpa_packed"])
@pytest.mark.parametrize("row_tokens", [None, 96])
def test_packed_rows_match_examples_run_alone(tiny_model: Path, attn: str, row_tokens: int | None) -> None:
    model, tok = peft_model(tiny_model, attn)
    feats = build_features(tok, conversations(7), 64)
    batch = PackCollator(tok.pad_token_id, row_tokens)(feats)
    assert (batch["input_ids"].shape[0] == 1) == (row_tokens is None)
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                       cu_seq_lens_q=batch["cu_seq_lens_q"], cu_seq_lens_k=batch["cu_seq_lens_k"],
                       max_length_q=batch["max_length_q"], max_length_k=batch["max_length_k"],
                       use_cache=batch["use_cache"]).logits
        alone = [model(input_ids=torch.tensor([f["input_ids"]])).logits[0] for f in feats]
    # find each example in the packed rows by its token ids and positions
    cu = batch["cu_seq_lens_q"].tolist()
    flat = packed.reshape(-1, packed.shape[-1])
    flat_ids = batch["input_ids"].reshape(-1).tolist()
    matched = 0
    for s, e in zip(cu[:-1], cu[1:], strict=True):
        for f, logits in zip(feats, alone, strict=True):
            if flat_ids[s:e] == f["input_ids"]:
                per_token = torch.nn.functional.cross_entropy(flat[s:e - 1], torch.tensor(f["input_ids"][1:]),
                                                              reduction="none")
                expected = torch.nn.functional.cross_entropy(logits[:-1], torch.tensor(f["input_ids"][1:]),
                                                             reduction="none")
                assert torch.allclose(per_token, expected, atol=1e-5), (attn, s, e)
                matched += 1
                break
    assert matched == len(feats)


def test_packed_loss_and_gradients_equal_padded(tiny_model: Path) -> None:
    model, tok = peft_model(tiny_model, "sdpa_packed")
    feats = build_features(tok, conversations(8, seed=1), 64)
    pad = PadCollator(tok.pad_token_id)(feats)
    packed = PackCollator(tok.pad_token_id)(feats)

    def loss_and_grads(batch: dict[str, Any]) -> tuple[float, list[torch.Tensor]]:
        model.zero_grad()
        loss = model(**batch).loss
        loss.backward()
        return loss.item(), [p.grad.clone() for p in model.parameters() if p.requires_grad]

    loss_pad, grads_pad = loss_and_grads(pad)
    loss_packed, grads_packed = loss_and_grads(packed)
    assert loss_pad == pytest.approx(loss_packed, abs=1e-5)
    assert packed["shift_labels"].numel() == int((pad["labels"][:, 1:] != IGNORE).sum())
    for a, b in zip(grads_pad, grads_packed, strict=True):
        assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.slow
def test_trainer_loss_curve_matches_padded(tiny_model: Path, tmp_path: Path) -> None:
    from transformers import Trainer

    from services.trainer.features import collator
    from services.trainer.recipe import training_args

    spec = JobSpec(base_model=str(tiny_model), lora_dropout=0.0, device="cpu", max_steps=4, batch_size=4,
                   log_every=1, lr=3e-3, warmup_steps=0, checkpoint_every=1000, max_seq_len=64)
    curves = {}
    for packing in (False, True):
        model, tok = build_model(spec, "cpu")
        if packing:
            use_packed_attention(model)
        feats = build_features(tok, conversations(16, seed=2), spec.max_seq_len)
        trainer = Trainer(model=model, args=training_args(spec, tmp_path / str(packing), "cpu"),
                          train_dataset=feats, data_collator=collator(tok, packing))
        trainer.train()
        curves[packing] = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(curves[True]) == 4
    assert curves[True] == pytest.approx(curves[False], abs=1e-4)
