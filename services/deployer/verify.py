"""Verification: does the target, serving the new adapter, reproduce the evaluator's recorded predictions?

Pure logic plus one loop over the target client. A case is one tracked example: the prompt rendered with
``shared.modeling.render`` and the ``prediction`` the evaluator recorded for this version. The target's
greedy completion, stripped, must equal it; the deployment passes when the matched fraction reaches the
threshold (below 1.0 only to absorb GPU numeric differences).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from services.deployer.exceptions import PreflightError, TargetError, VerificationError
from services.deployer.target import TargetClient
from shared.modeling import render


@dataclass(frozen=True)
class Case:
    idx: int
    example_id: str
    prompt: str
    expected: str
    max_tokens: int | None = None  # the row's own generation limit (its pred_len when the evaluator cut it)


@dataclass(frozen=True)
class Check:
    case: Case
    got: str
    latency_ms: float

    @property
    def matched(self) -> bool:
        return self.got == self.case.expected


@dataclass
class VerifyResult:
    checks: list[Check] = field(default_factory=list)

    @property
    def checked(self) -> int:
        return len(self.checks)

    @property
    def matched(self) -> int:
        return sum(c.matched for c in self.checks)

    @property
    def latency_ms(self) -> float | None:
        return statistics.median(c.latency_ms for c in self.checks) if self.checks else None

    def passed(self, threshold: float) -> bool:
        return self.checked > 0 and self.matched / self.checked >= threshold

    def describe(self, threshold: float) -> str:
        text = f"{self.matched}/{self.checked} predictions matched (threshold {threshold:g})"
        first = next((c for c in self.checks if not c.matched), None)
        if first is not None:  # model output is untrusted text: repr() escapes it, and it is truncated
            text += (f"; first mismatch: example {first.case.example_id!r} expected "
                     f"{first.case.expected[:80]!r}, target gave {first.got[:80]!r}")
        return text


def build_cases(snapshot: dict[str, Any], tracked: dict[str, Any], tokenizer: Any, limit: int) -> list[Case]:
    """Up to ``limit`` cases from a snapshot document and the job's tracked examples document."""
    by_idx = {int(e["idx"]): e for e in tracked.get("examples", [])}
    cases: list[Case] = []
    for ex in snapshot.get("examples", []):
        if len(cases) >= limit:
            break
        tracked_ex = by_idx.get(int(ex.get("idx", -1)))
        if tracked_ex is None or ex.get("prediction") is None:
            continue
        prompt = render(tokenizer, tracked_ex["messages"]).prompt
        cut = "truncated" in (ex.get("flags") or []) and int(ex.get("pred_len") or 0) > 0
        cases.append(Case(idx=int(ex["idx"]), example_id=str(ex.get("id", ex["idx"])), prompt=prompt,
                          expected=str(ex["prediction"]).strip(), max_tokens=_max_tokens(ex, cut)))
    if not cases:
        raise PreflightError("the snapshot has no tracked examples with recorded predictions to verify against")
    return cases


def _max_tokens(ex: dict[str, Any], cut: bool) -> int | None:
    """A cut row is asked for exactly the tokens it got; any other row for its own generation limit (recorded
    per row by the evaluator: target length + answer room, up to the hard limit), else the snapshot's."""
    if cut:
        return int(ex["pred_len"])
    return int(ex["limit"]) if ex.get("limit") else None


def normalise(text: str, eos: str | None) -> str:
    """The comparable form of a completion: cut at the end-of-turn marker if present, whitespace-stripped."""
    if eos:
        text = text.split(eos)[0]
    return text.strip()


def run_checks(client: TargetClient, model: str, cases: list[Case], max_tokens: int,
               eos: str | None = None) -> VerifyResult:
    result = VerifyResult()
    for case in cases:
        try:
            completion = client.complete(model, case.prompt, case.max_tokens or max_tokens)
        except TargetError as exc:
            raise VerificationError(f"completion on {model!r} failed during verification: {exc}") from exc
        result.checks.append(Check(case=case, got=normalise(completion.text, eos), latency_ms=completion.latency_ms))
    return result
