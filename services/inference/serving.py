"""Turns OpenAI requests into engine requests and engine output into OpenAI responses and SSE chunks."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from services.inference.engine import BASE, Engine
from services.inference.errors import error_body
from services.inference.exceptions import BadRequestError
from services.inference.generation import GenRequest, GenResult
from services.inference.metrics import Metrics
from services.inference.schemas import _OpenAIRequest

DEFAULT_COMPLETION_TOKENS = 16  # OpenAI's default for /v1/completions
DEFAULT_CHAT_TOKENS = 512


class AsyncSink:
    """Receives engine output on the worker thread and hands it to the request's event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def _put(self, item: tuple[str, Any]) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the loop is gone (server shutting down): nobody is listening
            pass

    def delta(self, text: str) -> None:
        self._put(("delta", text))

    def done(self, result: GenResult) -> None:
        self._put(("done", result))

    def fail(self, exc: BaseException) -> None:
        self._put(("error", exc))


@dataclass
class Job:
    req: GenRequest
    sink: AsyncSink
    model_label: str  # what responses report as "model"


def prepare(engine: Engine, body: _OpenAIRequest, prompt: str, default_tokens: int,
            max_tokens: int | None = None) -> Job:
    """Validate one prompt against the model and submit it to the engine."""
    model = engine.resolve(body.model)
    if body.n != 1:
        raise BadRequestError("only n=1 is supported")
    ids = engine.tokenizer(prompt)["input_ids"]
    if not ids:
        raise BadRequestError("the prompt is empty")
    limit = engine.max_positions or 10**9
    wanted = max_tokens or body.max_tokens
    if wanted is None:
        wanted = max(1, min(default_tokens, limit - len(ids)))
    if len(ids) + wanted > limit:
        raise BadRequestError(f"prompt ({len(ids)} tokens) + max_tokens ({wanted}) exceeds the model's "
                              f"context length ({limit})")
    sink = AsyncSink()
    req = GenRequest(model=model, prompt_ids=list(ids), max_new_tokens=wanted, sink=sink,
                     temperature=body.temperature, top_p=body.top_p, stop=body.stop_list(), stream=body.stream)
    engine.submit(req)
    return Job(req=req, sink=sink, model_label=engine.served_name if model == BASE else model)


async def result_of(job: Job, metrics: Metrics) -> GenResult:
    try:
        while True:
            kind, value = await job.sink.queue.get()
            if kind == "done":
                metrics.completions.labels(model=job.req.model, result="ok").inc()
                return value
            if kind == "error":
                metrics.completions.labels(model=job.req.model, result="error").inc()
                raise value
    finally:
        job.req.cancelled.set()  # a no-op when done; stops the row if the client went away


def usage(results: list[GenResult]) -> dict[str, int]:
    p = sum(r.prompt_tokens for r in results)
    c = sum(r.completion_tokens for r in results)
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def completion_response(label: str, results: list[GenResult]) -> dict[str, Any]:
    return {
        "id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()), "model": label,
        "choices": [{"index": i, "text": r.text, "finish_reason": r.finish_reason.value, "logprobs": None}
                    for i, r in enumerate(results)],
        "usage": usage(results),
    }


def chat_response(label: str, result: GenResult) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
        "model": label,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text},
                     "finish_reason": result.finish_reason.value, "logprobs": None}],
        "usage": usage([result]),
    }


def _sse(obj: dict[str, Any]) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


async def stream(job: Job, metrics: Metrics, *, chat: bool, include_usage: bool) -> AsyncIterator[str]:
    """SSE chunks (``data: {...}``) ending with ``data: [DONE]``; an error mid-stream becomes an error event."""
    rid = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
    created = int(time.time())
    obj = "chat.completion.chunk" if chat else "text_completion"

    def chunk(text: str | None, finish: str | None, first: bool = False) -> dict[str, Any]:
        if chat:
            delta: dict[str, Any] = {"role": "assistant", "content": ""} if first else {}
            if text is not None:
                delta["content"] = text
            choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        else:
            choice = {"index": 0, "text": text or "", "finish_reason": finish, "logprobs": None}
        return {"id": rid, "object": obj, "created": created, "model": job.model_label, "choices": [choice]}

    try:
        if chat:
            yield _sse(chunk(None, None, first=True))
        while True:
            kind, value = await job.sink.queue.get()
            if kind == "delta":
                yield _sse(chunk(value, None))
            elif kind == "error":
                metrics.completions.labels(model=job.req.model, result="error").inc()
                yield _sse(error_body(value))
                break
            else:
                metrics.completions.labels(model=job.req.model, result="ok").inc()
                yield _sse(chunk(None if chat else "", value.finish_reason.value))
                if include_usage:
                    yield _sse({"id": rid, "object": obj, "created": created, "model": job.model_label,
                                "choices": [], "usage": usage([value])})
                break
        yield "data: [DONE]\n\n"
    finally:
        job.req.cancelled.set()
