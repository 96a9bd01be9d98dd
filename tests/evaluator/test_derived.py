"""Learned-at, forgetting events and cartography regions on synthetic histories."""

from __future__ import annotations

import math

import pytest

from services.evaluator import derived
from services.evaluator.derived import ExampleState, LearnState, Point, Region


def hist(exacts: str, confs: list[float] | None = None, steps: list[int] | None = None) -> list[Point]:
    steps = steps or [i * 10 for i in range(len(exacts))]
    confs = confs or [0.5] * len(exacts)
    return [Point(s, c == "1", conf) for s, c, conf in zip(steps, exacts, confs, strict=True)]


@pytest.mark.parametrize(("exacts", "learned", "forgetting", "state"), [
    ("00011", 30, [], LearnState.LEARNED),
    ("01011", 30, [20], LearnState.LEARNED),
    ("01110", None, [40], LearnState.FORGOTTEN),
    ("00000", None, [], LearnState.NEVER),
    ("11111", 0, [], LearnState.LEARNED),
    ("10101", 40, [10, 30], LearnState.LEARNED),
])
def test_learned_at_and_forgetting(exacts: str, learned: int | None, forgetting: list[int], state: LearnState) -> None:
    h = hist(exacts)
    assert derived.learned_at(h) == learned
    assert derived.forgetting_events(h) == forgetting
    assert derived.summarize(h)["state"] == state.value


def test_order_of_points_does_not_matter() -> None:
    h = hist("01011")
    assert derived.summarize(list(reversed(h))) == derived.summarize(h)


def test_cartography_regions() -> None:
    easy = derived.summarize(hist("11111", [0.9, 0.95, 0.92, 0.97, 0.99]))
    hard = derived.summarize(hist("00000", [0.01, 0.02, 0.05, 0.03, 0.02]))
    ambiguous = derived.summarize(hist("01010", [0.1, 0.9, 0.2, 0.8, 0.3]))
    assert easy["region"] == Region.EASY and hard["region"] == Region.HARD and ambiguous["region"] == Region.AMBIGUOUS
    assert easy["correctness"] == 1.0 and hard["correctness"] == 0.0 and ambiguous["correctness"] == 0.4
    confs = [0.1, 0.9, 0.2, 0.8, 0.3]
    mean = sum(confs) / 5
    assert ambiguous["confidence_mean"] == pytest.approx(mean)
    assert ambiguous["confidence_std"] == pytest.approx(math.sqrt(sum((c - mean) ** 2 for c in confs) / 5))


def test_nan_confidence_is_left_out_of_cartography() -> None:
    s = derived.summarize(hist("001", [float("nan"), 0.2, 0.4]))
    assert s["confidence_mean"] == pytest.approx(0.3) and s["n_snapshots"] == 3


def test_state_round_trips_and_refuses_old_steps() -> None:
    state = ExampleState()
    for p in hist("011"):
        state.update(p)
    again = ExampleState.from_dict(state.to_dict())
    assert again.summary() == state.summary()
    with pytest.raises(ValueError, match="not after"):
        again.update(Point(10, True, 0.5))
