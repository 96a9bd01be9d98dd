"""Datasets as users have them, dropped in the real inbox: every file gets an outcome.

JSON arrays (LLaMA-Factory's alpaca and sharegpt files), CSV, Parquet and BOM-prefixed JSONL become jobs; a
JSON object beside a dataset of the same name is its spec; a lone spec is rejected once it has waited
``inbox_orphan_s``; any other file is rejected at once with a reason naming the accepted types.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis

from services.trainer import jobstore
from services.trainer.inbox import InboxWatcher
from shared import streams
from shared.bus import read_all
from shared.settings import TrainerSettings
from shared.storage import s3_client

FORMATS = Path(__file__).resolve().parents[1] / "data" / "formats"
ALPACA = [{"instruction": "Capital of France?", "input": "", "output": "Paris"},
          {"instruction": "Capital of Italy?", "input": "", "output": "Rome"}]
SHAREGPT_TOOLS = [{
    "conversations": [{"from": "human", "value": "Weather in Oslo?"},
                      {"from": "function_call", "value": '{"name": "get_weather", "arguments": {"city": "Oslo"}}'},
                      {"from": "observation", "value": "3 degrees"},
                      {"from": "gpt", "value": "3 °C."}],
    "tools": '[{"name": "get_weather", "description": "weather", "parameters": {"type": "object", '
             '"properties": {"city": {"type": "string"}}}}]'}]


@pytest.fixture
def settings(settings_kwargs: dict, tmp_path: Path) -> TrainerSettings:
    return TrainerSettings(**settings_kwargs, inbox_dir=tmp_path / "inbox", control_dir=tmp_path / "control",
                           checkpoints_dir=tmp_path / "ckpt", inbox_stable_s=0.0)


def scan(settings: TrainerSettings, r: redis.Redis) -> list[str]:
    watcher = InboxWatcher(settings, r, s3_client(settings))
    return watcher.scan_once() + watcher.scan_once()  # the first scan sees the files, the second takes them


def errors(settings: TrainerSettings, stem: str) -> str:
    return (settings.inbox_dir / "rejected" / f"{stem}.errors.txt").read_text()


def test_a_json_array_with_its_json_spec_becomes_a_job(settings: TrainerSettings, r: redis.Redis) -> None:
    inbox = settings.inbox_dir
    inbox.mkdir(parents=True)
    (inbox / "alpaca_en_demo.json").write_text(json.dumps(ALPACA, indent=2))
    (inbox / "alpaca_en_demo.json.part").write_text("[")  # still being copied: not touched
    sidecar = inbox / "sharegpt_tools.json"
    sidecar.write_text(json.dumps({"max_steps": 7, "lr": 0.001}))
    (inbox / "sharegpt_tools.jsonl").write_text("".join(json.dumps(x) + "\n" for x in SHAREGPT_TOOLS))
    jobs = scan(settings, r)
    assert len(jobs) == 2
    by_name = {jobstore.load(r, j)["dataset"]["name"]: jobstore.load(r, j) for j in jobs}
    alpaca, tools = by_name["alpaca_en_demo"], by_name["sharegpt_tools"]
    assert (alpaca["dataset"]["format"], alpaca["dataset"]["file_type"], alpaca["dataset"]["n_examples"]) == \
        ("alpaca", "json", 2)
    assert tools["dataset"]["format"] == "sharegpt" and tools["dataset"]["n_tool_examples"] == 1
    assert tools["spec"]["max_steps"] == 7 and tools["spec"]["lr"] == 0.001  # the JSON object was its spec
    assert sorted(p.name for p in (inbox / "accepted").iterdir()) == [
        "alpaca_en_demo.json", "sharegpt_tools.json", "sharegpt_tools.jsonl"]
    assert sorted(p.name for p in inbox.iterdir() if p.is_file()) == ["alpaca_en_demo.json.part"]


def test_csv_parquet_and_a_bom_become_jobs(settings: TrainerSettings, r: redis.Redis) -> None:
    inbox = settings.inbox_dir
    inbox.mkdir(parents=True)
    (inbox / "sheet.csv").write_bytes(b"\xef\xbb\xbfprompt,completion\r\nCapital of France?,Paris\r\n2+2?,4\r\n")
    pq.write_table(pa.Table.from_pylist([{"text": "one"}, {"text": "two"}, {"text": "three"}]),
                   inbox / "hub_export.parquet")
    (inbox / "windows.jsonl").write_bytes((FORMATS / "bom.jsonl").read_bytes())
    jobs = scan(settings, r)
    got = {d["name"]: (d["format"], d["file_type"], d["n_examples"])
           for d in (jobstore.load(r, j)["dataset"] for j in jobs)}
    assert got == {"sheet": ("prompt_completion", "csv", 2), "hub_export": ("text", "parquet", 3),
                   "windows": ("chat", "jsonl", 2)}
    assert (inbox / "accepted" / "windows.jsonl").read_bytes().startswith(b"\xef\xbb\xbf")  # bytes unchanged


def test_every_other_file_is_rejected_with_a_reason(settings: TrainerSettings, r: redis.Redis) -> None:
    inbox = settings.inbox_dir
    inbox.mkdir(parents=True)
    (inbox / "notes.txt").write_text("my notes")
    (inbox / "data.jsonl~").write_text("{}")
    (inbox / "number.json").write_text("42")
    (inbox / "bad.csv").write_text("prompt,completion\nok,fine\nmissing,\n")
    (inbox / "array.json").write_text('[{"prompt": "a", "completion": "b"},\n {"prompt": "c"}]')
    assert scan(settings, r) == [] and not jobstore.all_ids(r)
    assert [p.name for p in inbox.iterdir() if p.is_file()] == []  # nothing left without an outcome
    accepted = ".jsonl (one example per line), .json (a JSON array of examples), .csv or .parquet"
    assert f"unsupported file type '.txt': a dataset is {accepted}" in errors(settings, "notes")
    assert "unsupported file type '.jsonl~'" in errors(settings, "data")
    assert "not a JSON array: a .json dataset is a JSON array of examples" in errors(settings, "number")
    assert "row 2 (line 3): field 'completion' is empty" in errors(settings, "bad")
    assert "item [1] (line 2): unknown format" in errors(settings, "array")
    assert (inbox / "rejected" / "notes.txt").read_text() == "my notes"  # the original, moved whole
    rejected = [e for _, e in read_all(r, streams.JOBS) if e.type == "dataset.rejected"]
    assert len(rejected) == 5


def test_a_spec_waits_for_its_dataset_and_a_lone_one_is_rejected(settings: TrainerSettings,
                                                                  r: redis.Redis) -> None:
    inbox = settings.inbox_dir
    inbox.mkdir(parents=True)
    (inbox / "later.json").write_text(json.dumps({"max_steps": 3}))  # the spec first, as `trainyard demo` does
    (inbox / "lonely.yaml").write_text("max_steps: 3\n")
    (inbox / "linked.json").symlink_to(inbox / "later.json")
    waiting = settings.model_copy(update={"inbox_orphan_s": 3600.0})
    assert scan(waiting, r) == []
    assert (inbox / "later.json").exists() and (inbox / "lonely.yaml").exists()
    (inbox / "later.csv").write_text("text\nhello\n")
    (job,) = scan(waiting, r)
    assert jobstore.load(r, job)["spec"]["max_steps"] == 3
    assert sorted(p.name for p in (inbox / "accepted").iterdir()) == ["later.csv", "later.json"]
    assert scan(settings.model_copy(update={"inbox_orphan_s": 0.0}), r) == []
    assert not (inbox / "lonely.yaml").exists() and not (inbox / "linked.json").is_symlink()
    assert "linked.json is a symbolic link; links are refused, never followed" in errors(settings, "linked")
    assert "lonely.yaml is a job spec with no dataset named lonely.jsonl, .json, .csv or .parquet beside it" \
        in errors(settings, "lonely")
