"""Every dataset file type through the real upload API: the answer says which format was detected."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis

from services.api.main import create_app
from services.trainer import jobstore
from shared.settings import ApiSettings
from shared.storage import ensure_bucket, s3_client
from tests.support.servers import RunningServer, serve_app

TOKEN = "upload-formats-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TOOLS = {"tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
         "messages": [{"role": "user", "content": [{"type": "text", "text": "Find "}, {"type": "text", "text": "x"}]},
                      {"role": "assistant", "content": None, "tool_calls": [
                          {"id": "1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]},
                      {"role": "tool", "tool_call_id": "1", "content": "found"},
                      {"role": "assistant", "content": "Found it."}]}


def parquet_bytes(rows: list[dict]) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    return buf.getvalue()


FILES = {
    "sheet.csv": (b"\xef\xbb\xbfinstruction,input,output\nCapital of France?,,Paris\nTranslate,bonjour,hello\n",
                  "alpaca in a CSV file, 2 example(s)"),
    "alpaca_en_demo.json": (b"\xef\xbb\xbf" + json.dumps([{"instruction": "a", "input": "", "output": "b"}] * 3, indent=2).encode(),
                            "alpaca in a JSON array, 3 example(s)"),
    "train.parquet": (parquet_bytes([{"prompt": "p", "completion": "c"}] * 4),
                      "prompt_completion in a Parquet file, 4 example(s)"),
    "agent.jsonl": ("\ufeff" + (json.dumps(TOOLS) + "\n") * 2 + json.dumps({"messages": TOOLS["messages"][-1:]}) + "\n",
                    "chat in a JSONL file, 3 example(s) (2 with tool calls)"),
}


@pytest.fixture
def server(settings_kwargs: dict, tmp_path: Path) -> Iterator[RunningServer]:
    settings = ApiSettings(**settings_kwargs, api_token=TOKEN, uploads_dir=tmp_path / "up")
    ensure_bucket(s3_client(settings), settings.bucket)
    with serve_app(create_app(settings, targets=[])) as running:
        yield running


@pytest.mark.parametrize("name", sorted(FILES))
def test_upload_of_each_type_queues_a_job_and_says_what_was_detected(server: RunningServer, r: redis.Redis,
                                                                    name: str) -> None:
    data, detected = FILES[name]
    body = data.encode() if isinstance(data, str) else data
    res = httpx.post(f"{server.url}/api/jobs/upload", headers=AUTH, files={"file": (name, body)},
                     data={"spec": '{"max_steps": 3}'}, timeout=60)
    assert res.status_code == 201, res.text
    assert res.json()["detected"] == detected
    assert res.json()["file_type"] == {"csv": "csv", "json": "json", "parquet": "parquet",
                                       "jsonl": "jsonl"}[name.rsplit(".", 1)[1]]
    queued = jobstore.load(r, res.json()["job_id"])
    assert queued["state"] == "queued" and queued["dataset"]["file_type"] == res.json()["file_type"]

    stored = httpx.post(f"{server.url}/api/datasets", headers=AUTH, files={"file": (name, body)}, timeout=60)
    assert stored.status_code == 201, stored.text
    assert stored.json()["detected"] == detected and stored.json()["name"] == name.rsplit(".", 1)[0]


def test_an_upload_of_another_type_is_refused_naming_the_accepted_ones(server: RunningServer) -> None:
    res = httpx.post(f"{server.url}/api/jobs/upload", headers=AUTH,
                     files={"file": ("data.xlsx", b"PK\x03\x04 not a dataset")}, timeout=60)
    assert res.status_code == 422
    assert ("unsupported file type '.xlsx': a dataset is .jsonl (one example per line), .json (a JSON array of "
            "examples), .csv or .parquet") in res.json()["report"]
