"""Deployer domain logic with plain objects: cases, comparison, policies, adapter names."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.deployer import policy
from services.deployer.domain import SERVING_NAME, DeployPolicy, adapter_name_for
from services.deployer.exceptions import PreflightError
from services.deployer.verify import Case, Check, VerifyResult, build_cases, normalise
from shared.modeling import render


@pytest.fixture(scope="module")
def tokenizer(tiny_model: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def _tracked() -> dict:
    return {"job_id": "j1", "examples": [
        {"idx": i, "id": f"ex-{i}", "split": "train",
         "messages": [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": f"answer {i}"}]}
        for i in range(4)]}


def test_build_cases_renders_prompts_and_limits(tokenizer) -> None:
    snapshot = {"examples": [{"idx": 2, "id": "ex-2", "prediction": "  two \n"},
                             {"idx": 0, "id": "ex-0", "prediction": "zero"},
                             {"idx": 9, "id": "gone", "prediction": "x"},  # not in the tracked doc: skipped
                             {"idx": 1, "id": "ex-1", "prediction": "one"}]}
    cases = build_cases(snapshot, _tracked(), tokenizer, limit=2)
    assert [c.example_id for c in cases] == ["ex-2", "ex-0"]
    assert cases[0].expected == "two"
    assert cases[0].prompt == render(tokenizer, _tracked()["examples"][2]["messages"]).prompt
    assert cases[0].prompt.endswith("<|im_start|>assistant\n")


def test_build_cases_without_predictions_is_a_preflight_error(tokenizer) -> None:
    with pytest.raises(PreflightError, match="no tracked examples"):
        build_cases({"examples": [{"idx": 7, "prediction": "x"}]}, _tracked(), tokenizer, limit=4)


def test_normalise_cuts_at_eos_and_strips() -> None:
    assert normalise("  hi there <|im_end|> junk", "<|im_end|>") == "hi there"
    assert normalise("\nplain\n", None) == "plain"


def test_result_threshold_and_escaped_description() -> None:
    case = Case(idx=0, example_id="e0", prompt="p", expected="yes")
    result = VerifyResult([Check(case, "yes", 10.0), Check(case, "<script>alert(1)</script>\x1b[2J", 30.0)])
    assert (result.checked, result.matched, result.latency_ms) == (2, 1, 20.0)
    assert result.passed(0.5) and not result.passed(0.75)
    text = result.describe(1.0)
    assert "1/2 predictions matched (threshold 1)" in text
    assert "\\x1b" in text and "\x1b" not in text  # control characters are escaped, not passed through
    assert not VerifyResult([]).passed(0.0)


def test_adapter_names_are_safe_and_never_the_serving_name() -> None:
    assert adapter_name_for("v1", {"job_id": "job-7", "step": 30}) == "job-7-s30"
    assert adapter_name_for("v1", {"job_id": "a/b c", "step": 1}) == "a-b-c-s1"
    assert adapter_name_for("abc123", {}) == "abc123"
    assert adapter_name_for(SERVING_NAME, {}) == f"v-{SERVING_NAME}"


def test_policy_parsing_and_improvement() -> None:
    assert policy.parse_policy({"deploy_policy": "on-complete"}) == DeployPolicy.ON_COMPLETE
    assert policy.parse_policy({"deploy_policy": "bogus"}) == DeployPolicy.MANUAL
    assert policy.parse_policy(None) == DeployPolicy.MANUAL
    assert policy.improvement("eval_loss", 0.5, 0.7).deploy
    assert not policy.improvement("eval_loss", 0.9, 0.7).deploy
    assert policy.improvement("heldout.f1", 0.9, 0.7).deploy
    assert not policy.improvement("heldout.f1", 0.7, 0.7).deploy  # equal is not an improvement
    assert policy.improvement("eval_loss", 0.9, None).deploy
    assert not policy.improvement("eval_loss", None, 0.3).deploy


def test_metric_lookup_order() -> None:
    aggregates = {"heldout": {"f1": 0.4, "loss": 2.0}, "train": {"f1": 0.9}}
    assert policy.metric_value("eval_loss", {"eval_loss": 1.5}, aggregates) == 1.5
    assert policy.metric_value("train.f1", {}, aggregates) == 0.9
    assert policy.metric_value("f1", {}, aggregates) == 0.4
    assert policy.metric_value("missing", {"missing": "n/a"}, aggregates) is None
