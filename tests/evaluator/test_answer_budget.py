"""Long answers get room: each prediction may run to its target's length + the answer room, up to the hard
limit TRAINYARD_MAX_NEW_TOKENS (512), and a row cut at that limit is flagged ``at_limit``.
The real Capturer on the tiny model, its tracked examples read from real S3."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.evaluator.capture import Capturer, Request
from services.evaluator.metrics import SemanticScorer
from services.evaluator.models import ModelCache
from services.registry.client import RegistryClient
from shared import storage
from shared.settings import EvaluatorSettings
from shared.storage import s3_client

LONG = " ".join(f"step {i}: stir the pot and taste it." for i in range(1, 6))  # more than 48 tokens


def _tracked(registry: RegistryClient, job_id: str) -> None:
    examples = [
        {"idx": 0, "id": "short", "split": "train", "messages": [
            {"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris"}]},
        {"idx": 1, "id": "long", "split": "train", "messages": [
            {"role": "user", "content": "How do I cook the soup?"}, {"role": "assistant", "content": LONG}]},
    ]
    registry.put_json(storage.tracked_key(job_id), {"job_id": job_id, "dataset_sha256": "d" * 64,
                                                    "sha256": "e" * 64, "seed": 0, "examples": examples})


def _capture(settings_kwargs: dict, r, tiny_model: Path, job_id: str, **overrides) -> dict:
    settings = EvaluatorSettings(**settings_kwargs, device="cpu", embeddings=False, **overrides)
    registry = RegistryClient(s3_client(settings), settings.bucket)
    registry.ensure_bucket()
    _tracked(registry, job_id)
    capturer = Capturer(settings, r, registry, ModelCache("cpu"), SemanticScorer(False))
    doc = capturer.compute(Request(job_id=job_id, step=0, version_id=None, base_model=str(tiny_model)))
    return {e["id"]: e for e in doc["examples"]}


def test_a_long_target_gets_its_length_plus_the_answer_room(settings_kwargs: dict, r, tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    from shared.modeling import render

    rows = _capture(settings_kwargs, r, tiny_model, "job-budget")
    tok = AutoTokenizer.from_pretrained(tiny_model)
    target = render(tok, [{"role": "user", "content": "How do I cook the soup?"},
                          {"role": "assistant", "content": LONG}]).target  # the answer and its end of turn
    n_long = len(tok(target, add_special_tokens=False)["input_ids"])
    assert n_long > 48
    long, short = rows["long"], rows["short"]
    assert long["limit"] == n_long + 16 and short["limit"] < 24  # the answer room (16) past each target
    assert "truncated" in long["flags"] and long["pred_len"] == long["limit"] > 48, long  # the random model rambles
    assert "at_limit" not in long["flags"] and "at_limit" not in short["flags"]


@pytest.mark.parametrize("hard_limit", [40])
def test_rows_cut_by_the_hard_limit_are_flagged(settings_kwargs: dict, r, tiny_model: Path, hard_limit: int) -> None:
    rows = _capture(settings_kwargs, r, tiny_model, "job-hard", max_new_tokens=hard_limit)
    long, short = rows["long"], rows["short"]
    assert long["limit"] == hard_limit and long["pred_len"] == hard_limit
    assert {"truncated", "at_limit"} <= set(long["flags"]), long
    assert "at_limit" not in short["flags"] and short["limit"] < hard_limit
