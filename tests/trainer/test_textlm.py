"""Plain-text datasets train as language modelling, and data that cannot train is refused at submit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
from rq import SimpleWorker

from services.registry.client import RegistryClient
from services.trainer import queueing
from services.trainer.submit import submit_job
from shared import streams
from shared.bus import read_all
from shared.settings import TrainerSettings, as_env
from shared.storage import s3_client
from tests.support.trainer import make_settings, tiny_spec

TEXTS = [
    "The quick brown fox jumps over the lazy dog near the river bank every morning.",
    "Paris is the capital of France and it is known for the Eiffel Tower and fine food.",
    "Water boils at one hundred degrees Celsius at sea level and freezes at zero degrees.",
    "A week has seven days and a year has twelve months with about three hundred days.",
]


@pytest.fixture
def settings(settings_kwargs: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TrainerSettings:
    """Trainer settings, also in the environment (``run_job`` loads its settings from there)."""
    s = make_settings(settings_kwargs, tmp_path)
    for k, v in as_env(s).items():
        monkeypatch.setenv(k, v)
    return s


def spec(tiny_model: Path, **kw: object) -> dict:
    return tiny_spec(tiny_model, max_steps=2, checkpoint_every=2, batch_size=2, tracked={"count": 2}, **kw)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def job_types(r: redis.Redis, job_id: str) -> list[str]:
    return [e.type for _, e in read_all(r, streams.JOBS) if e.job_id == job_id]


@pytest.mark.parametrize("packing", [False, True])
def test_plain_text_job_trains(settings: TrainerSettings, r: redis.Redis, tiny_model: Path, tmp_path: Path,
                               packing: bool) -> None:
    data = write_jsonl(tmp_path / "corpus.jsonl", [{"text": t} for t in TEXTS])
    s3 = s3_client(settings)
    job_id = submit_job(settings, r, s3, data, spec=spec(tiny_model, packing=packing), source="cli")
    SimpleWorker(list(queueing.QUEUES), connection=r).work(burst=True)
    failed = [e.payload for _, e in read_all(r, streams.JOBS) if e.type == "job.failed"]
    assert job_types(r, job_id) == ["job.queued", "job.started", "job.completed"], failed
    losses = [e.payload["loss"] for _, e in read_all(r, streams.METRICS)]
    assert len(losses) == 2 and all(loss > 0 for loss in losses)
    tracked = RegistryClient(s3, settings.bucket).get_json(f"tracked/{job_id}.json")
    assert {ex["messages"][0]["content"] for ex in tracked["examples"]} <= set(TEXTS) and len(tracked["examples"]) == 2


def test_text_features_are_language_modelling(tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    from services.trainer.features import IGNORE, build_features, text_ids

    tok = AutoTokenizer.from_pretrained(tiny_model)
    text = " ".join(TEXTS)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert text_ids(tok, text) == [*ids, tok.eos_token_id]  # raw tokens + end of sequence, no chat template
    assert tok.convert_tokens_to_ids("<|im_start|>") not in ids
    conv = [[{"role": "assistant", "content": text}]]
    cut = build_features(tok, conv, 16)
    assert len(cut) == 1 and cut[0]["input_ids"] == ids[:16] and cut[0]["labels"] == ids[:16]
    packed = build_features(tok, conv, 16, packing=True)
    assert [t for f in packed for t in f["input_ids"]] == [*ids, tok.eos_token_id]  # nothing lost
    assert all(len(f["input_ids"]) <= 16 and IGNORE not in f["labels"] for f in packed)
    chat = build_features(tok, [[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]], 64)
    assert IGNORE in chat[0]["labels"]  # chat keeps loss on the answer only
