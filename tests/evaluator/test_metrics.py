"""Per-example metrics on hand-made cases, and the MiniLM semantic scorer loaded offline."""

from __future__ import annotations

import pytest

from services.evaluator import metrics


@pytest.mark.parametrize(("pred", "target", "exact", "f1", "edit"), [
    ("Paris", "Paris", True, 1.0, 1.0),
    ("  Paris\n", "Paris", True, 1.0, 1.0),
    ("paris", "Paris", False, 1.0, 0.8),
    ("The capital is Paris", "Paris", False, 0.4, 0.25),
    ("Paris, France", "Paris France", False, 1.0, 12 / 13),
    ("", "Paris", False, 0.0, 0.0),
    ("", "", True, 1.0, 1.0),
    ("Rome", "Paris", False, 0.0, 0.0),
])
def test_exact_f1_edit(pred: str, target: str, exact: bool, f1: float, edit: float) -> None:
    assert metrics.exact_match(pred, target) is exact
    assert metrics.token_f1(pred, target) == pytest.approx(f1)
    assert metrics.edit_similarity(pred, target) == pytest.approx(edit)


def test_unicode_is_normalised_and_counted_by_character() -> None:
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    assert metrics.exact_match(composed, decomposed)
    assert metrics.edit_similarity(composed, decomposed) == 1.0
    assert metrics.token_f1("Ｔｏｋｙｏ 東京", "tokyo 東京") == 1.0  # NFKC + case folding
    assert metrics.edit_similarity("東京都", "東京") == pytest.approx(2 / 3)
    assert metrics.token_f1("Straße", "STRASSE") == 1.0


def test_flags() -> None:
    assert metrics.flags("Paris", hit_limit=False) == []
    assert metrics.flags("", hit_limit=False) == ["empty"]
    assert metrics.flags("xxxxxxxxxxxxxxxx", hit_limit=True) == ["truncated", "repeated"]
    assert "repeated" in metrics.flags("the cat the cat the cat the cat", hit_limit=False)
    assert metrics.flags("1000000", hit_limit=False) == []
    assert metrics.flags("Paris", hit_limit=False, input_truncated=True, loss=float("nan")) == [
        "input_truncated", "nan_loss"]


def test_semantic_scorer_embeds_each_distinct_text_once() -> None:
    scorer = metrics.SemanticScorer()
    assert scorer.available, scorer.unavailable_reason
    sims = scorer.similarities([("Paris", "Paris"), ("The capital is Paris", "Paris"),
                                ("banana bread recipe", "Paris"), ("", "Paris")])
    assert sims[0] == pytest.approx(1.0, abs=1e-5)
    assert sims[1] > sims[2]
    assert sims[3] == 0.0
    assert scorer.encoded == 3  # Paris, The capital is Paris, banana bread recipe
    scorer.similarities([("Paris", "The capital is Paris")])
    assert scorer.encoded == 3


def test_semantic_scorer_disabled_records_null() -> None:
    scorer = metrics.SemanticScorer(enabled=False)
    assert scorer.similarities([("a", "b")]) == [None]
    assert "disabled" in (scorer.unavailable_reason or "")
