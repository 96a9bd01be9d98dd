"""What is accepted can be trained: each new file type and tool calling, dropped in the real inbox, trains
through the real worker and recipe (the dataset comes back from the registry as a blob without its extension,
so the recipe must tell its type from its content), and the tracked examples carry the rendered messages.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis
from rq import SimpleWorker

from services.registry.client import RegistryClient
from services.trainer import jobstore, queueing
from services.trainer.inbox import InboxWatcher
from shared import streams
from shared.bus import read_all
from shared.settings import TrainerSettings
from shared.storage import s3_client

PAIRS = [("What is the capital of France?", "Paris"), ("What colour is the sky?", "Blue"),
         ("What do bees make?", "Honey"), ("Which animal says moo?", "A cow")]
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}
CITIES = [("Paris", "21 C"), ("Oslo", "3 C"), ("Rome", "25 C")]


def parquet(rows: list[dict]) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    return buf.getvalue()


def openai_tools(city: str, temp: str) -> dict:
    return {"tools": [WEATHER], "messages": [
        {"role": "user", "content": [{"type": "text", "text": f"Weather in {city}?"}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "type": "function", "function": {
            "name": "get_weather", "arguments": json.dumps({"city": city})}}]},
        {"role": "tool", "tool_call_id": "c", "content": temp},
        {"role": "assistant", "content": f"{temp} in {city}."}]}


def sharegpt_tools(city: str, temp: str) -> dict:
    return {"tools": json.dumps([WEATHER["function"]]), "conversations": [
        {"from": "human", "value": f"Weather in {city}?"},
        {"from": "function_call", "value": json.dumps({"name": "get_weather", "arguments": {"city": city}})},
        {"from": "observation", "value": temp}, {"from": "gpt", "value": f"{temp} in {city}."}]}


CASES = {  # file name -> (bytes, detected format, tool examples)
    "alpaca.json": (json.dumps([{"instruction": q, "input": "", "output": a} for q, a in PAIRS], indent=2).encode(),
                    "alpaca", 0),
    "sheet.csv": (("\ufeffprompt,completion\r\n" + "".join(f"{q},{a}\r\n" for q, a in PAIRS)).encode(),
                  "prompt_completion", 0),
    "hub.parquet": (parquet([{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
                             for q, a in PAIRS]), "chat", 0),
    "openai_tools.jsonl": ("".join(json.dumps(openai_tools(c, t)) + "\n" for c, t in CITIES).encode(), "chat", 3),
    "sharegpt_tools.json": (json.dumps([sharegpt_tools(c, t) for c, t in CITIES]).encode(), "sharegpt", 3),
}


@pytest.fixture
def settings(settings_kwargs: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TrainerSettings:
    kw = {**settings_kwargs, "checkpoints_dir": tmp_path / "ckpt", "inbox_dir": tmp_path / "inbox",
          "control_dir": tmp_path / "control", "inbox_stable_s": 0.0}
    for k, v in kw.items():
        monkeypatch.setenv(f"TRAINYARD_{k.upper()}", str(v))
    return TrainerSettings(**kw)


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_new_format_trains_from_the_inbox(settings: TrainerSettings, r: redis.Redis, tiny_model: Path,
                                               name: str) -> None:
    data, fmt, n_tools = CASES[name]
    settings.inbox_dir.mkdir(parents=True)
    (settings.inbox_dir / name).write_bytes(data)
    spec = {"base_model": str(tiny_model), "lr": 3e-3, "max_steps": 2, "checkpoint_every": 2, "log_every": 1,
            "batch_size": 2, "grad_accum": 1, "warmup_steps": 0, "tracked": {"count": 2}, "device": "cpu",
            "max_seq_len": 512}
    (settings.inbox_dir / (Path(name).stem + ".yaml")).write_text(json.dumps(spec))
    watcher = InboxWatcher(settings, r, s3_client(settings))
    (job_id,) = watcher.scan_once() + watcher.scan_once()
    dataset = jobstore.load(r, job_id)["dataset"]
    assert (dataset["format"], dataset["n_tool_examples"]) == (fmt, n_tools)
    SimpleWorker(list(queueing.QUEUES), connection=r).work(burst=True)

    events = [e for _, e in read_all(r, streams.JOBS) if e.job_id == job_id]
    assert [e.type for e in events][-1] == "job.completed", [(e.type, e.payload) for e in events]
    losses = [e.payload["loss"] for _, e in read_all(r, streams.METRICS) if e.job_id == job_id]
    assert len(losses) == 2 and all(0 < x < 100 for x in losses)
    tracked = RegistryClient(s3_client(settings), settings.bucket).get_json(f"tracked/{job_id}.json")
    final = tracked["examples"][0]["messages"]
    assert final[-1]["role"] == "assistant" and final[-1]["content"]
    if n_tools:  # the evaluator sees the conversation as trained: tools, calls and replies in Qwen3's format
        text = "".join(m["content"] for m in final)
        assert "# Tools" in final[0]["content"] and "<tool_call>\n{\"name\": \"get_weather\"" in text
        assert "<tool_response>" in text
