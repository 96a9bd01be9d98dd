"""A base model directory without a tokenizer, or whose architecture's vocabulary does not fit its tokenizer,
is refused when the job is submitted (through the real inbox: rejected/ with a reason), never mid-training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import redis
import yaml

from services.trainer import admission, jobstore
from services.trainer.exceptions import SpecError
from services.trainer.inbox import InboxWatcher
from shared.settings import TrainerSettings
from shared.storage import s3_client

LINE = json.dumps({"prompt": "Capital of France?", "completion": "Paris"}) + "\n"


def _copy_model(src: Path, dest: Path, vocab_size: int | None = None, drop_tokenizer: bool = False) -> Path:
    shutil.copytree(src, dest)
    if vocab_size is not None:
        config = json.loads((dest / "config.json").read_text())
        config["vocab_size"] = vocab_size
        (dest / "config.json").write_text(json.dumps(config))
    if drop_tokenizer:
        for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json"):
            (dest / name).unlink(missing_ok=True)
    return dest


def _drop(inbox: Path, name: str, base_model: Path) -> None:
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / f"{name}.yaml").write_text(yaml.safe_dump({"base_model": str(base_model), "max_steps": 2}))
    (inbox / f"{name}.jsonl").write_text(LINE)


def test_inbox_rejects_a_model_without_tokenizer_or_with_a_mismatched_vocabulary(
        settings_kwargs: dict, tmp_path: Path, r: redis.Redis, tiny_model: Path) -> None:
    settings = TrainerSettings(**settings_kwargs, inbox_dir=tmp_path / "inbox", control_dir=tmp_path / "control",
                               checkpoints_dir=tmp_path / "ckpt", inbox_stable_s=0.0)
    no_tok = _copy_model(tiny_model, tmp_path / "no-tok", drop_tokenizer=True)
    too_few_rows = _copy_model(tiny_model, tmp_path / "rows-256", vocab_size=256)  # tokenizer ids up to 511
    far_too_many = _copy_model(tiny_model, tmp_path / "rows-151936", vocab_size=151_936)  # 512-token tokenizer
    _drop(settings.inbox_dir, "notok", no_tok)
    _drop(settings.inbox_dir, "fewrows", too_few_rows)
    _drop(settings.inbox_dir, "manyrows", far_too_many)
    _drop(settings.inbox_dir, "good", tiny_model)
    watcher = InboxWatcher(settings, r, s3_client(settings))
    watcher.scan_once()
    queued = watcher.scan_once()
    assert len(queued) == 1 and len(jobstore.all_ids(r)) == 1  # only the good one became a job
    rejected = settings.inbox_dir / "rejected"
    assert "has no tokenizer (no tokenizer.json, vocab.json or tokenizer.model in it)" in (
        rejected / "notok.errors.txt").read_text()
    assert "has ids up to 511 but its architecture has 256 embedding rows" in (
        rejected / "fewrows.errors.txt").read_text()
    assert "has 512 tokens but its architecture has 151936 embedding rows" in (
        rejected / "manyrows.errors.txt").read_text()
    for name in ("notok", "fewrows", "manyrows"):
        text = (rejected / f"{name}.errors.txt").read_text()
        assert "Traceback" not in text and (rejected / f"{name}.jsonl").read_text() == LINE


def test_padded_vocabulary_like_qwen3_is_accepted(tmp_path: Path, tiny_model: Path) -> None:
    padded = _copy_model(tiny_model, tmp_path / "padded", vocab_size=640)  # rows beyond the tokenizer: fine
    admission.check_base_model(str(padded))
    (padded / "tokenizer.json").write_text("{not json")
    with pytest.raises(SpecError, match="tokenizer.json of .* is not readable JSON"):
        admission.check_base_model(str(padded))
