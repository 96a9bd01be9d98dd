"""Admission checks: dataset rules (roles, blank answers, duplicate ids), spec bounds, base model, held-out path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from services.registry.client import RegistryClient
from services.trainer import admission, jobstore
from services.trainer.datasets import load_and_validate
from services.trainer.exceptions import DatasetError, SpecError
from services.trainer.spec import parse_spec
from services.trainer.submit import submit_job
from shared.settings import TrainerSettings
from shared.storage import s3_client

USER = {"role": "user", "content": "hi"}
ANSWER = {"role": "assistant", "content": "hello"}


def write(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(x) + "\n" for x in records))
    return path


def report_of(path: Path) -> list[str]:
    with pytest.raises(DatasetError) as info:
        load_and_validate(path)
    return info.value.report


# -- dataset rules ------------------------------------------------------------------------------------
def test_roles_out_of_order_blank_answers_and_duplicate_ids(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", [
        {"id": "a", "messages": [USER, ANSWER]},
        {"id": "b", "messages": [{"role": "assistant", "content": "Hello!"}, USER, ANSWER]},
        {"id": "c", "messages": [USER, {"role": "assistant", "content": " \n"}]},
        {"id": "a", "messages": [USER, ANSWER]},
        {"id": "d", "conversations": [{"from": "gpt", "value": "x"}, {"from": "human", "value": "q"},
                                      {"from": "gpt", "value": "y"}]},
        {"id": 7, "messages": [{"role": "system", "content": "s"}, USER, ANSWER]},
        {"id": "7", "messages": [USER, ANSWER]},
    ])
    assert report_of(path) == [
        "line 2: roles out of order: messages[0] is an assistant turn before any user turn",
        "line 3: empty assistant turn: messages[1].content is blank",
        "line 4: duplicate id 'a' (first used on line 1)",
        "line 5: mixed formats: this line is sharegpt, the file is chat",
        "line 7: duplicate id '7' (first used on line 6)",
    ]
    sharegpt = write(tmp_path / "s.jsonl", [
        {"conversations": [{"from": "gpt", "value": "x"}, {"from": "human", "value": "q"}, {"from": "gpt", "value": "y"}]},
        {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": ""}]},
    ])
    assert report_of(sharegpt) == [
        "line 1: roles out of order: conversations[0] is an assistant turn before any user turn",
        "line 2: empty assistant turn: conversations[1].content is blank",
    ]


def test_valid_shapes_still_pass(tmp_path: Path) -> None:
    """System first, multi-turn, plain text (a lone assistant turn) and examples without ids are fine."""
    chat = write(tmp_path / "c.jsonl", [
        {"messages": [{"role": "system", "content": "s"}, USER, ANSWER, USER, ANSWER]},
        {"messages": [USER, ANSWER]}, {"messages": [USER, ANSWER]},
    ])
    assert load_and_validate(chat).n_examples == 3
    text = write(tmp_path / "t.jsonl", [{"text": "a"}, {"text": "a"}])
    assert load_and_validate(text).n_examples == 2


# -- spec bounds --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("field", "value", "message"), [
    ("max_seq_len", 1_000_000_000, "max_seq_len: Input should be less than or equal to 131072"),
    ("batch_size", 10**7, "batch_size: Input should be less than or equal to 65536"),
    ("grad_accum", 10**7, "grad_accum: Input should be less than or equal to 65536"),
    ("epochs", 1e9, "epochs: Input should be less than or equal to 10000"),
    ("max_steps", 10**12, "max_steps: Input should be less than or equal to 100000000"),
    ("lora_alpha", 10**9, "lora_alpha: Input should be less than or equal to 16384"),
    ("weight_decay", 1e6, "weight_decay: Input should be less than or equal to 10"),
    ("lr", float("inf"), "lr: Input should be less than or equal to 10"),
])
def test_absurd_hyperparameters_are_refused_naming_the_field(field: str, value: object, message: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec({field: value})
    assert message in str(info.value)
    assert parse_spec({"max_seq_len": 131_072}).max_seq_len == 131_072


# -- base model ---------------------------------------------------------------------------------------
def test_base_model_local_and_hub(tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    admission.check_base_model(str(tiny_model))  # a real model directory
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpecError, match="base_model: .* is not a model directory \\(no config.json in it\\)"):
        admission.check_base_model(str(tmp_path / "empty"))
    with pytest.raises(SpecError, match="base_model: local model directory .* does not exist"):
        admission.check_base_model(str(tmp_path / "missing" / "model"))
    with pytest.raises(SpecError, match="neither a local model directory nor a hub id like 'org/name'"):
        admission.check_base_model("just a name")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SpecError, match="'no-such-org/no-such-model-7b' .* cannot be reached offline"):
        admission.check_base_model("no-such-org/no-such-model-7b")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    admission.check_base_model("no-such-org/no-such-model-7b")  # online: the hub decides later


# -- held-out path ------------------------------------------------------------------------------------
def test_heldout_path_must_stay_inside_the_allowed_roots(tmp_path: Path) -> None:
    data_dir, inbox = tmp_path / "uploads" / "u1", tmp_path / "inbox"
    secret = write(tmp_path / "private" / "secret.jsonl", [{"prompt": "p", "completion": "c"}])
    write(data_dir / "held.jsonl", [{"prompt": "p", "completion": "c"}])
    write(inbox / "heldout" / "h.jsonl", [{"prompt": "p", "completion": "c"}])
    (data_dir / "link.jsonl").symlink_to(secret)
    (inbox / "linked_dir").symlink_to(secret.parent)
    roots = [data_dir.resolve(), inbox.resolve()]
    assert admission.resolve_heldout("held.jsonl", roots) == data_dir.resolve() / "held.jsonl"
    assert admission.resolve_heldout("heldout/h.jsonl", roots) == inbox.resolve() / "heldout" / "h.jsonl"
    assert admission.resolve_heldout(str(inbox.resolve() / "heldout" / "h.jsonl"), roots).is_file()
    refused = {
        "../../private/secret.jsonl": "contains '..'",
        "../../../../../../etc/passwd": "contains '..'",
        str(secret): "is outside the allowed directories",
        "/etc/passwd": "is outside the allowed directories",
        "link.jsonl": "symbolic link",
        "linked_dir/secret.jsonl": "symbolic link",
        "nope.jsonl": "not found in the allowed directories",
        "heldout": "is not a regular file",
        " ": "must be a file name",
    }
    for raw, why in refused.items():
        with pytest.raises(SpecError) as info:
            admission.resolve_heldout(raw, roots)
        assert str(info.value).startswith("invalid job spec: tracked.heldout_path: ") and why in str(info.value), raw


def test_submit_refuses_traversal_and_stores_an_allowed_heldout(settings_kwargs: dict, tmp_path: Path,
                                                                r: redis.Redis, tiny_model: Path) -> None:
    settings = TrainerSettings(**settings_kwargs, inbox_dir=tmp_path / "inbox", checkpoints_dir=tmp_path / "ck",
                               control_dir=tmp_path / "control")
    s3 = s3_client(settings)
    data = write(tmp_path / "up" / "train.jsonl", [{"prompt": f"q{i}", "completion": "a"} for i in range(3)])
    write(tmp_path / "private" / "secret.jsonl", [{"prompt": "secret", "completion": "s"}])
    for bad in ("../private/secret.jsonl", str(tmp_path / "private" / "secret.jsonl")):
        with pytest.raises(SpecError, match="heldout_path"):
            submit_job(settings, r, s3, data, spec={"base_model": str(tiny_model), "tracked": {"heldout_path": bad}})
    with pytest.raises(SpecError, match="base_model"):
        submit_job(settings, r, s3, data, spec={"base_model": str(tmp_path / "nope")})
    assert not jobstore.all_ids(r)
    held = write(tmp_path / "up" / "held.jsonl", [{"prompt": "h", "completion": "x"}])
    job_id = submit_job(settings, r, s3, data, spec={"base_model": str(tiny_model),
                                                     "tracked": {"heldout_path": "held.jsonl"}})
    sha = jobstore.load(r, job_id)["spec"]["tracked"]["heldout_sha256"]
    dest = tmp_path / "fetched.jsonl"
    RegistryClient(s3, settings.bucket).fetch_blob(sha, dest)
    assert dest.read_bytes() == held.read_bytes()
