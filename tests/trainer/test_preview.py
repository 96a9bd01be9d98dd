"""The preview is the training code path: its loss mask is the collator's labels for the same examples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.trainer import features, preview
from services.trainer.datasets import load_and_validate
from services.trainer.spec import parse_spec
from services.trainer.trainability import load_tokenizer

DEMO = Path(__file__).resolve().parents[2] / "shared" / "demo_data" / "demo.jsonl"


def _spec(tiny_model: Path, **kw):
    return parse_spec({"base_model": str(tiny_model), "batch_size": 3, **kw})


@pytest.mark.parametrize("packing", [False, True])
def test_preview_loss_mask_equals_the_collators_labels(tiny_model: Path, packing: bool) -> None:
    spec = _spec(tiny_model, packing=packing, max_seq_len=64)
    tok = load_tokenizer(str(tiny_model))
    examples = load_and_validate(DEMO).examples[:6]
    out = preview.preview_examples(tok, spec, examples, n=6)

    feats = features.build_features(tok, [e.messages for e in examples], spec.max_seq_len, spec.packing)
    assert [e["n_tokens"] for e in out["examples"]] == [len(f["input_ids"]) for f in feats]
    collate = features.collator(tok, spec.packing)
    for start in (0, 3):
        labels = collate(feats[start:start + 3])["labels"]
        shown = out["examples"][start:start + 3]
        if packing:  # one row per batch: the row's labels are the shown examples' masks in layout order
            order = collate.layout([len(f["input_ids"]) for f in feats[start:start + 3]])[0]
            expected = [x != features.IGNORE for x in labels[0].tolist()]
            got = [t["loss"] for i in order for t in shown[i]["tokens"]]
            assert got == expected[:len(got)] and not any(expected[len(got):])
            assert not shown[order[1]]["tokens"][0]["loss"]  # a packed example never learns its first token
        else:
            for i, e in enumerate(shown):
                assert [t["loss"] for t in e["tokens"]] == (labels[i, :e["n_tokens"]] != features.IGNORE).tolist()
                assert [t["id"] for t in e["tokens"]] == feats[start + i]["input_ids"]
    first = out["examples"][0]
    answer = "".join(t["text"] for t in first["tokens"] if t["loss"])
    assert examples[0].messages[-1]["content"] in answer  # the loss is on the answer ...
    assert examples[0].messages[0]["content"] not in answer  # ... not on the prompt
    assert "<|im_start|>assistant" in first["text"]  # the rendered chat template
    if packing:
        assert [len(r["examples"]) for r in out["rows"]] == [3, 3] and out["rows"][0]["padding"] == 0
    else:
        assert out["rows"] == []


def test_stats_count_cut_examples_and_the_histogram(tiny_model: Path, tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    rows = [{"prompt": "hi", "completion": "short"}] * 3 + [{"prompt": "x " * 60, "completion": "long answer"}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = _spec(tiny_model, max_seq_len=40)
    out = preview.preview_file(data, spec, n=2)
    stats = out["stats"]
    assert stats["n_examples"] == 4 and stats["measured"] == 4
    assert stats["dropped"] == 1 and stats["cut"] == 0  # the long prompt leaves no answer token within 40
    assert "line 4" in stats["dropped_reasons"][0]
    assert sum(b["count"] for b in stats["histogram"]) == 4 and stats["histogram"][-1]["count"] == 1
    assert out["count"] == 2 and out["format"] == "prompt_completion"
    longest = stats["max_length"]
    out = preview.preview_file(data, _spec(tiny_model, max_seq_len=longest - 1), n=8)
    assert out["stats"]["dropped"] == 0 and out["stats"]["cut"] == 1  # the answer is cut, the example kept
    assert out["examples"][3]["n_tokens"] == longest - 1 and out["examples"][3]["tokens"][-2]["loss"]


def test_plain_text_with_packing_is_split_not_cut(tiny_model: Path, tmp_path: Path) -> None:
    data = tmp_path / "t.jsonl"
    data.write_text(json.dumps({"text": "word " * 80}) + "\n" + json.dumps({"text": "a short text"}) + "\n")
    out = preview.preview_file(data, _spec(tiny_model, max_seq_len=32, packing=True), n=2)
    assert out["stats"]["split"] == 1 and out["stats"]["cut"] == 0
    chunks = [e for e in out["examples"] if e["line"] == 1]
    assert len(chunks) > 1 and all(e["n_tokens"] <= 32 for e in chunks)
