"""One generation request and the execution of a batch of them with ``model.generate``.

Every step of ``generate`` calls ``RowTracker`` (a per-row stopping criterion) with the token ids so far:
it appends each row's new token, decodes the row's text, cuts it at a ``stop`` string, streams the new part
to the request's sink and tells ``generate`` which rows are done (``max_tokens`` reached, a stop string, an
end-of-sequence token or the client gone). Rows that finish early receive padding until the batch ends;
their own tokens are unaffected, so a request's greedy text equals the one it gets alone.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

REPLACEMENT_CHAR = "\ufffd"


class FinishReason(StrEnum):
    STOP = "stop"
    LENGTH = "length"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class GenResult:
    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int


class Sink(Protocol):
    """Where a request's output goes; called from the engine's worker thread."""

    def delta(self, text: str) -> None: ...

    def done(self, result: GenResult) -> None: ...

    def fail(self, exc: BaseException) -> None: ...


@dataclass(eq=False)
class GenRequest:
    model: str  # public model name: "base" or an adapter's lora_name
    prompt_ids: list[int]
    max_new_tokens: int
    sink: Sink
    temperature: float | None = None  # None or 0: greedy
    top_p: float | None = None
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    cancelled: threading.Event = field(default_factory=threading.Event)
    enqueued_at: float = field(default_factory=time.monotonic)

    @property
    def greedy(self) -> bool:
        return not self.temperature

    def batch_key(self, by_length: bool) -> tuple[Any, ...]:
        """Requests with equal keys may share a ``generate`` call."""
        sampling = None if self.greedy else (self.temperature, self.top_p)
        return (self.model, len(self.prompt_ids) if by_length else None, sampling)


@dataclass(eq=False)
class _Row:
    req: GenRequest
    ids: list[int] = field(default_factory=list)
    text: str = ""
    sent: int = 0
    finish: FinishReason | None = None


def _held_back(text: str, stops: list[str]) -> int:
    """How many trailing characters to hold back while streaming: a partial UTF-8 char or a stop prefix."""
    hold = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:k]):
                hold = max(hold, k)
                break
    if text.endswith(REPLACEMENT_CHAR):
        hold = max(hold, 1)
    return hold


class RowTracker(StoppingCriteria):
    """Follows each row of a running batch; returns which rows are finished."""

    def __init__(self, requests: list[GenRequest], tokenizer: Any, eos_ids: set[int], prompt_len: int) -> None:
        self.rows = [_Row(req) for req in requests]
        self.tokenizer = tokenizer
        self.eos_ids = eos_ids
        self.prompt_len = prompt_len

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        last = input_ids[:, -1].tolist()
        for row, token in zip(self.rows, last, strict=True):
            if row.finish is None:
                self._advance(row, int(token))
        return torch.tensor([row.finish is not None for row in self.rows], dtype=torch.bool, device=input_ids.device)

    def _advance(self, row: _Row, token: int) -> None:
        req = row.req
        if req.cancelled.is_set():
            row.finish = FinishReason.CANCELLED
            return
        row.ids.append(token)
        if token in self.eos_ids:
            row.finish = FinishReason.STOP
        elif len(row.ids) >= req.max_new_tokens:
            row.finish = FinishReason.LENGTH
        if not (req.stream or req.stop or row.finish):
            return  # nothing to look at yet: decode once at the end
        text = self.tokenizer.decode(row.ids, skip_special_tokens=True)
        cut = min((i for i in (text.find(s) for s in req.stop) if i >= 0), default=-1)
        if cut >= 0:
            text, row.finish = text[:cut], FinishReason.STOP
        row.text = text
        self._emit(row)

    def _emit(self, row: _Row) -> None:
        if row.req.stream:
            upto = len(row.text) if row.finish else len(row.text) - _held_back(row.text, row.req.stop)
            if upto > row.sent:
                row.req.sink.delta(row.text[row.sent:upto])
                row.sent = upto
        if row.finish and row.finish is not FinishReason.CANCELLED:
            row.req.sink.done(GenResult(text=row.text, finish_reason=row.finish,
                                        prompt_tokens=len(row.req.prompt_ids), completion_tokens=len(row.ids)))

    def close(self) -> None:
        """After ``generate`` returned: settle rows it ended without our say (e.g. the context limit)."""
        for row in self.rows:
            if row.finish is None:
                row.finish = FinishReason.CANCELLED if row.req.cancelled.is_set() else FinishReason.LENGTH
                row.text = self.tokenizer.decode(row.ids, skip_special_tokens=True)
                self._emit(row)

    @property
    def completion_tokens(self) -> int:
        return sum(len(row.ids) for row in self.rows)


def run_batch(model: Any, tokenizer: Any, requests: list[GenRequest], *, device: str, pad_id: int,
              eos_ids: set[int]) -> RowTracker:
    """Generate for ``requests`` (same adapter and sampling settings) in one ``generate`` call.

    Prompts of equal length are stacked as they are (bitwise the same numerics as one alone); unequal
    ones are left-padded with an attention mask.
    """
    lengths = {len(r.prompt_ids) for r in requests}
    width = max(lengths)
    kwargs: dict[str, Any] = {}
    if len(lengths) == 1:
        input_ids = torch.tensor([r.prompt_ids for r in requests], dtype=torch.long, device=device)
    else:
        rows = [[pad_id] * (width - len(r.prompt_ids)) + r.prompt_ids for r in requests]
        mask = [[0] * (width - len(r.prompt_ids)) + [1] * len(r.prompt_ids) for r in requests]
        input_ids = torch.tensor(rows, dtype=torch.long, device=device)
        kwargs["attention_mask"] = torch.tensor(mask, dtype=torch.long, device=device)
    first = requests[0]
    if first.greedy:
        kwargs["do_sample"] = False
    else:
        kwargs.update(do_sample=True, temperature=first.temperature, top_p=first.top_p or 1.0, top_k=0)
    tracker = RowTracker(requests, tokenizer, eos_ids, width)
    with torch.no_grad():
        model.generate(input_ids, max_new_tokens=max(r.max_new_tokens for r in requests),
                       stopping_criteria=StoppingCriteriaList([tracker]), pad_token_id=pad_id, **kwargs)
    tracker.close()
    return tracker
