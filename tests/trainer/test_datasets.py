"""Format detection, conversion and each validation error (with line numbers)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.trainer.datasets import detect_format, load_and_validate
from services.trainer.exceptions import DatasetError, SpecError
from services.trainer.features import tokenize
from services.trainer.spec import DatasetFormat, JobSpec, estimate_memory_gb, parse_spec


def write(tmp_path: Path, lines: list[object], name: str = "d.jsonl") -> Path:
    p = tmp_path / name
    p.write_bytes(b"".join((x if isinstance(x, bytes) else json.dumps(x).encode()) + b"\n" for x in lines))
    return p


CHAT = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}


@pytest.mark.parametrize(("record", "fmt"), [
    (CHAT, DatasetFormat.chat),
    ({"prompt": "a", "completion": "b"}, DatasetFormat.prompt_completion),
    ({"instruction": "a", "input": "x", "output": "b"}, DatasetFormat.alpaca),
    ({"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}]}, DatasetFormat.sharegpt),
    ({"text": "plain"}, DatasetFormat.text),
])
def test_each_format_detected_and_converted(tmp_path: Path, record: dict, fmt: DatasetFormat) -> None:
    assert detect_format(record) == fmt
    ds = load_and_validate(write(tmp_path, [record, record]))
    assert ds.format == fmt and ds.n_examples == 2
    assert ds.examples[0].messages[-1]["role"] == "assistant"
    if fmt == DatasetFormat.alpaca:
        assert ds.examples[0].messages[0]["content"] == "a\n\nx"


def test_every_bad_line_is_reported_and_file_untouched(tmp_path: Path) -> None:
    lines: list[object] = [
        CHAT,
        b"{not json",
        b"\xff\xfe bad bytes",
        {"messages": []},
        {"messages": [{"role": "user", "content": 3}, {"role": "assistant", "content": "x"}]},
        {"messages": [{"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}]},
        {"prompt": "a", "completion": "b"},
        {"foo": 1},
        {"messages": [{"role": "user", "content": "x" * 50}, {"role": "assistant", "content": "y"}]},
    ]
    path = write(tmp_path, lines)
    before = path.read_bytes()
    with pytest.raises(DatasetError) as info:
        load_and_validate(path, max_chars=40)
    report = info.value.report
    assert report[0].startswith("line 2: invalid JSON")
    assert report[1].startswith("line 3: not UTF-8")
    assert report[2] == "line 4: empty conversation"
    assert report[3] == "line 5: messages[0].content must be a string or a list of text parts, got int"
    assert report[4] == "line 6: the last message must be the assistant's answer"
    assert report[5].startswith("line 7: mixed formats: this line is prompt_completion, the file is chat")
    assert report[6].startswith("line 8: unknown format")
    assert report[7].startswith("line 9: over-long example (51 characters, limit 40)")
    assert len(report) == 8
    assert path.read_bytes() == before


def test_missing_fields_and_wrong_types(tmp_path: Path) -> None:
    path = write(tmp_path, [{"prompt": "a", "completion": 5}, {"instruction": "i", "output": ""}],)
    with pytest.raises(DatasetError) as info:
        load_and_validate(path)
    assert info.value.report[0] == "line 1: field 'completion' must be a string, got int"
    assert info.value.report[1].startswith("line 2: mixed formats")
    with pytest.raises(DatasetError) as info:
        load_and_validate(write(tmp_path, [{"instruction": "i", "output": ""}], "b.jsonl"))
    assert info.value.report == ["line 1: field 'output' is empty"]


def test_empty_file_and_format_override(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="empty"):
        load_and_validate(write(tmp_path, [b""]))
    # forcing prompt_completion on a file mixing in text fields reports missing fields, not "mixed formats"
    with pytest.raises(DatasetError) as info:
        load_and_validate(write(tmp_path, [{"prompt": "a", "completion": "b", "text": "t"}, {"text": "t"}], "o.jsonl"),
                          "prompt_completion")
    assert info.value.report == ["line 2: missing field 'prompt'"]


def test_loss_only_on_assistant_tokens(tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    msgs = [{"role": "user", "content": "What is the capital of France?"},
            {"role": "assistant", "content": "Paris"}, {"role": "user", "content": "And Italy?"},
            {"role": "assistant", "content": "Rome"}]
    f = tokenize(tok, msgs, 512)
    assert f is not None
    trained = tok.decode([t for t, lab in zip(f["input_ids"], f["labels"], strict=True) if lab != -100])
    assert trained == "Paris<|im_end|>Rome<|im_end|>"
    assert tokenize(tok, msgs, 5) is None  # truncation left no answer token


def test_spec_validation_and_memory_estimate() -> None:
    spec = JobSpec()
    assert spec.target_modules == "all-linear" and spec.lora_r == 16
    assert 8 < estimate_memory_gb(spec) < 24
    with pytest.raises(SpecError) as info:
        parse_spec({"lr": -1, "bogus": 1, "deploy_policy": "on-complete"})
    msg = str(info.value)
    assert "lr" in msg and "bogus" in msg
    with pytest.raises(SpecError, match="deploy_target"):
        parse_spec({"deploy_policy": "on-complete"})
