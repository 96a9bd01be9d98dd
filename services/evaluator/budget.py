"""How many tokens each prediction of a snapshot may take: its target's length plus the answer room, up to the
hard limit ``TRAINYARD_MAX_NEW_TOKENS`` (512) and to what the model's context leaves after the prompt.

A long target gets room to be matched exactly. A row whose limit is below its target + answer room and that
stops at that limit is flagged ``at_limit``: its answer is longer than any prediction may be, so it can never
count as learned (the Evolution page says so)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

FLAG_AT_LIMIT = "at_limit"  # cut at the hard limit (or the context), short of target length + answer room


@dataclass(frozen=True)
class RowBudget:
    limit: int  # most tokens to generate for this row
    capped: bool  # the limit is below the target's length + answer room


def row_budgets(target_lengths: Sequence[int], prompt_lengths: Sequence[int], *, hard_limit: int,
                answer_room: int | None, context: int) -> list[RowBudget]:
    """Each row's limit: target tokens + ``answer_room`` (unbounded when None), at most ``hard_limit`` and at
    most what the context leaves after the prompt (an inference server refuses more), at least 1."""
    out = []
    for n_target, n_prompt in zip(target_lengths, prompt_lengths, strict=True):
        cap = max(1, min(hard_limit, context - n_prompt))
        want = None if answer_room is None else n_target + answer_room
        limit = cap if want is None else max(1, min(cap, want))
        out.append(RowBudget(limit, want is None or limit < want))
    return out


def token_lengths(tokenizer: Any, texts: Sequence[str]) -> list[int]:
    """Token counts of ``texts``, tokenised as the engine does (no special tokens added)."""
    if not texts:
        return []
    return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


def flag_limits(rows: list[dict[str, Any]], budgets: Sequence[RowBudget]) -> None:
    """Record each row's ``limit`` and flag ``at_limit`` the rows cut short of target + answer room (in place)."""
    for row, b in zip(rows, budgets, strict=True):
        row["limit"] = b.limit
        if b.capped and "truncated" in row["flags"] and FLAG_AT_LIMIT not in row["flags"]:
            row["flags"].append(FLAG_AT_LIMIT)
