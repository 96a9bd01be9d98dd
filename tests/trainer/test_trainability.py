"""Submit-time trainability: every example must leave a loss token within max_seq_len, or the file is refused
with its line numbers (``submit_job``, the inbox, the upload API), never failing the job at step 0."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from services.api.main import create_app
from services.trainer import queueing
from services.trainer.exceptions import DatasetError
from services.trainer.inbox import InboxWatcher
from services.trainer.submit import submit_job
from shared import streams
from shared.bus import read_all
from shared.settings import ApiSettings, TrainerSettings
from shared.storage import ensure_bucket, s3_client


@pytest.fixture
def settings(settings_kwargs: dict, tmp_path: Path) -> TrainerSettings:
    return TrainerSettings(**settings_kwargs, inbox_dir=tmp_path / "inbox", control_dir=tmp_path / "control",
                           checkpoints_dir=tmp_path / "ckpt", inbox_stable_s=0.0)


def spec(tiny_model: Path, **kw: object) -> dict:
    return {"base_model": str(tiny_model), "max_steps": 2, "tracked": {"count": 2}, "device": "cpu",
            "max_seq_len": 64, **kw}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


LONG_QUESTION = " ".join(["word"] * 200)  # far more than max_seq_len tokens before the answer
ROWS = [{"prompt": "What is two plus two?", "completion": "four"},
        {"prompt": LONG_QUESTION, "completion": "yes"},
        {"prompt": "Name a colour.", "completion": "blue"},
        {"prompt": LONG_QUESTION + " again", "completion": "no"}]


def test_untrainable_examples_refused_at_submit_with_line_numbers(
        settings: TrainerSettings, r: redis.Redis, tiny_model: Path, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "long.jsonl", ROWS)
    with pytest.raises(DatasetError) as err:
        submit_job(settings, r, s3_client(settings), data, spec=spec(tiny_model, max_seq_len=32), source="cli")
    report = err.value.report
    assert [line.split(":")[0] for line in report] == ["line 2", "line 4"], report
    assert all("max_seq_len" in line and "32" in line for line in report)
    assert "dataset.rejected" in [e.type for _, e in read_all(r, streams.JOBS)]
    assert not list(queueing.order(r))


def test_inbox_refuses_untrainable_file_with_line_numbers(
        settings: TrainerSettings, r: redis.Redis, tiny_model: Path) -> None:
    inbox = settings.inbox_dir
    inbox.mkdir(parents=True)
    rows = [{"messages": [{"role": "system", "content": " ".join(["rules"] * 100)},
                          {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
            {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}]
    original = write_jsonl(inbox / "sys.jsonl", rows).read_bytes()
    (inbox / "sys.yaml").write_text(json.dumps(spec(tiny_model, max_seq_len=48)), encoding="utf-8")
    watcher = InboxWatcher(settings, r, s3_client(settings))
    watcher.scan_once()
    assert watcher.scan_once() == [] and not list(queueing.order(r))
    rejected = inbox / "rejected"
    assert (rejected / "sys.jsonl").read_bytes() == original and (rejected / "sys.yaml").is_file()
    report = (rejected / "sys.errors.txt").read_text(encoding="utf-8").splitlines()
    assert len(report) == 2 and report[1].startswith("line 1: no answer token within max_seq_len (48)"), report


def test_untrainable_text_and_template_errors_named(tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    from services.trainer import trainability

    tok = AutoTokenizer.from_pretrained(tiny_model)
    assert trainability.problem(tok, [{"role": "assistant", "content": "x"}], 64) is None  # x + eos
    tok_no_eos = AutoTokenizer.from_pretrained(tiny_model, eos_token=None)
    assert "too short" in trainability.problem(tok_no_eos, [{"role": "assistant", "content": "x"}], 64)
    tok.chat_template = "{{ raise_exception('no system role') }}"
    why = trainability.problem(tok, [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], 64)
    assert why is not None and "chat template" in why and "no system role" in why


def test_upload_api_refuses_untrainable_dataset_as_422_with_lines(
        settings_kwargs: dict, r: redis.Redis, tiny_model: Path, tmp_path: Path) -> None:
    api = ApiSettings(**settings_kwargs, api_token="tok", uploads_dir=tmp_path / "uploads")
    ensure_bucket(s3_client(api), api.bucket)
    data = write_jsonl(tmp_path / "long.jsonl", ROWS)
    with TestClient(create_app(api, targets=[])) as client, data.open("rb") as f:
        res = client.post("/api/jobs/upload", headers={"Authorization": "Bearer tok"},
                          files={"file": ("long.jsonl", f, "application/jsonl")},
                          data={"spec": json.dumps(spec(tiny_model, max_seq_len=32))})
    assert res.status_code == 422, res.text
    body = res.json()
    assert [line.split(":")[0] for line in body["report"]] == ["line 2", "line 4"]
    assert "line 2: no answer token within max_seq_len (32)" in body["detail"]
    assert str(tmp_path) not in body["detail"]  # no server path
    assert not list(queueing.order(r))
