"""Per-example statistics across snapshots (pure functions, no I/O).

* learned-at: the first step from which exact match holds in every later snapshot (None if the last
  snapshot is wrong);
* forgetting events: steps where a correct example became incorrect;
* dataset cartography (Swayamdipta et al., 2020): mean and standard deviation of the gold-token confidence
  across snapshots and the fraction of snapshots correct, placed in a region.

``ExampleState`` is the same computation folded one snapshot at a time (steps in increasing order), as
the read model keeps it; ``summarize`` computes it from a whole history.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from enum import StrEnum


class Region(StrEnum):
    EASY = "easy-to-learn"
    AMBIGUOUS = "ambiguous"
    HARD = "hard-to-learn"


class LearnState(StrEnum):
    LEARNED = "learned"  # correct in the latest snapshot
    FORGOTTEN = "forgotten"  # correct in some earlier snapshot, wrong in the latest
    NEVER = "never_learned"  # never correct so far


# Variability (std of confidence) at or above this marks an example ambiguous; below it, mean confidence
# at or above CONFIDENT is easy-to-learn and under it hard-to-learn.
AMBIGUOUS_STD = 0.2
CONFIDENT = 0.5


@dataclass(frozen=True)
class Point:
    step: int
    exact: bool
    confidence: float | None  # None or nan when the loss could not be computed


def region(mean_conf: float | None, std_conf: float | None) -> Region | None:
    if mean_conf is None or std_conf is None:
        return None
    if std_conf >= AMBIGUOUS_STD:
        return Region.AMBIGUOUS
    return Region.EASY if mean_conf >= CONFIDENT else Region.HARD


@dataclass
class ExampleState:
    """Derived statistics of one example, updated snapshot by snapshot in step order."""

    n: int = 0
    correct: int = 0
    n_conf: int = 0
    sum_conf: float = 0.0
    sumsq_conf: float = 0.0
    last_step: int | None = None
    last_exact: bool | None = None
    ever_correct: bool = False
    learned_at: int | None = None
    forgetting: list[int] = field(default_factory=list)

    def update(self, point: Point) -> None:
        if self.last_step is not None and point.step <= self.last_step:
            raise ValueError(f"step {point.step} is not after {self.last_step}; recompute from the history")
        self.n += 1
        if point.exact:
            self.correct += 1
            self.ever_correct = True
            if self.learned_at is None:
                self.learned_at = point.step
        else:
            self.learned_at = None
            if self.last_exact:
                self.forgetting.append(point.step)
        conf = point.confidence
        if conf is not None and math.isfinite(conf):
            self.n_conf += 1
            self.sum_conf += conf
            self.sumsq_conf += conf * conf
        self.last_step, self.last_exact = point.step, point.exact

    @property
    def mean_confidence(self) -> float | None:
        return self.sum_conf / self.n_conf if self.n_conf else None

    @property
    def std_confidence(self) -> float | None:
        if not self.n_conf:
            return None
        mean = self.sum_conf / self.n_conf
        return math.sqrt(max(0.0, self.sumsq_conf / self.n_conf - mean * mean))

    @property
    def correctness(self) -> float | None:
        return self.correct / self.n if self.n else None

    @property
    def region(self) -> Region | None:
        return region(self.mean_confidence, self.std_confidence)

    @property
    def state(self) -> LearnState:
        if self.last_exact:
            return LearnState.LEARNED
        return LearnState.FORGOTTEN if self.ever_correct else LearnState.NEVER

    def summary(self) -> dict[str, object]:
        """What readers see: learned-at, forgetting events, cartography and state."""
        reg = self.region
        return {
            "learned_at": self.learned_at,
            "forgetting_events": list(self.forgetting),
            "n_snapshots": self.n,
            "confidence_mean": _r(self.mean_confidence),
            "confidence_std": _r(self.std_confidence),
            "correctness": _r(self.correctness),
            "region": reg.value if reg else None,
            "state": self.state.value,
        }

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ExampleState:
        return cls(**data)


def summarize(history: Iterable[Point]) -> dict[str, object]:
    """Derived statistics of a whole history (any order; sorted by step here)."""
    state = ExampleState()
    for point in sorted(history, key=lambda p: p.step):
        state.update(point)
    return state.summary()


def learned_at(history: Iterable[Point]) -> int | None:
    return summarize(history)["learned_at"]  # type: ignore[return-value]


def forgetting_events(history: Iterable[Point]) -> list[int]:
    return summarize(history)["forgetting_events"]  # type: ignore[return-value]


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 6)
