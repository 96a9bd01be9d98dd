"""The GPU memory estimate of LoRA and full fine-tuning, and the refusal at submit of a spec that cannot fit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from services.trainer import admission, memory
from services.trainer.exceptions import SpecError
from services.trainer.spec import TrainMethod, estimate_memory_gb, memory_terms, parse_spec
from services.trainer.submit import submit_job
from shared.modeling import demo_dataset_path
from shared.storage import s3_client
from tests.support.trainer import make_settings

QWEN3_06B = {"hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28, "num_attention_heads": 16,
             "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151_936, "tie_word_embeddings": True}


def test_full_method_defaults_to_gradient_checkpointing_unless_told() -> None:
    assert parse_spec({}).method == TrainMethod.lora and parse_spec({}).gradient_checkpointing is False
    assert parse_spec({"method": "full"}).gradient_checkpointing is True
    assert parse_spec({"method": "full", "gradient_checkpointing": False}).gradient_checkpointing is False
    again = parse_spec(parse_spec({"method": "full", "gradient_checkpointing": False}))
    assert again.gradient_checkpointing is False  # a stored spec keeps what it said
    with pytest.raises(SpecError, match="method"):
        parse_spec({"method": "freeze"})
    with pytest.raises(SpecError, match="full versions cannot be deployed yet"):
        parse_spec({"method": "full", "deploy_policy": "on-complete", "deploy_target": "box"})


def test_parameter_count_of_qwen3_06b_from_its_config(tmp_path: Path) -> None:
    assert 0.59e9 < memory.params_of(QWEN3_06B) < 0.61e9
    (tmp_path / "config.json").write_text(json.dumps(QWEN3_06B))
    assert memory.shape_of(str(tmp_path)) == memory.Shape(memory.params_of(QWEN3_06B) / 1e9, 28, 1024, 151_936)


def test_full_fine_tune_of_qwen3_06b_fits_24_gb_with_every_term() -> None:
    spec = parse_spec({"method": "full"})
    terms = memory.check_fits(spec, 24.0, memory.Shape())
    assert set(terms) == {"weights", "gradients", "adamw_states", "activations", "logits", "overhead"}
    assert terms["weights"] == pytest.approx(1.19, abs=0.01) and terms["adamw_states"] == pytest.approx(4.77, abs=0.01)
    assert 12 < sum(terms.values()) < 24
    lora = estimate_memory_gb(parse_spec({}))
    assert lora < estimate_memory_gb(spec)  # LoRA: no full gradients or optimizer states
    assert memory_terms(parse_spec({"method": "full", "gradient_checkpointing": False}))["activations"] > 3


def test_a_spec_that_cannot_fit_is_refused_with_the_numbers() -> None:
    spec = parse_spec({"method": "full", "batch_size": 16, "max_seq_len": 2048})
    with pytest.raises(SpecError) as info:
        memory.check_fits(spec, 24.0, memory.Shape())
    msg = str(info.value)
    assert "does not fit the 24 GB GPU" in msg and "adamw_states 4.8" in msg and "logits 49.8" in msg
    assert "batch_size (16)" in msg
    memory.check_fits(spec, 141.0, memory.Shape())  # an H200 takes it


def test_submit_refuses_it_and_a_bigger_gpu_setting_admits_it(settings_kwargs: dict, r: redis.Redis,
                                                               tmp_path: Path) -> None:
    spec = {"method": "full", "batch_size": 16, "max_seq_len": 2048, "device": "cuda"}
    settings = make_settings(settings_kwargs, tmp_path)
    with pytest.raises(SpecError, match=r"estimated \d+\.\d GB of GPU memory for full training"):
        submit_job(settings, r, s3_client(settings), demo_dataset_path(), spec=spec)
    assert r.keys("*") == []  # nothing stored, nothing queued
    big = make_settings(settings_kwargs, tmp_path, gpu_memory_gb=141.0)
    assert admission.check(big, parse_spec(spec), demo_dataset_path()) is None
    admission.check(settings, parse_spec({**spec, "device": "cpu"}), demo_dataset_path())  # the CPU has no GPU budget
