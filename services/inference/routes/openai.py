"""OpenAI-compatible endpoints: ``GET /v1/models``, ``POST /v1/completions``, ``POST /v1/chat/completions``."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, StreamingResponse

from services.inference import serving
from services.inference.deps import Authorized, EngineDep, MetricsDep
from services.inference.exceptions import BadRequestError, NotReadyError
from services.inference.schemas import ChatRequest, CompletionRequest

router = APIRouter(prefix="/v1", tags=["openai"], dependencies=Authorized)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@router.get("/models")
async def models(engine: EngineDep) -> dict[str, Any]:
    if not engine.ready:
        raise NotReadyError(engine.load_error or "the base model is still loading")
    base = engine.served_name
    data = [{"id": base, "object": "model", "created": 0, "owned_by": "trainyard", "root": base, "parent": None}]
    data += [{"id": a.name, "object": "model", "created": int(a.loaded_at), "owned_by": "trainyard",
              "root": a.name, "parent": base} for a in engine.adapters()]
    return {"object": "list", "data": data}


@router.post("/completions", response_model=None)
async def completions(body: CompletionRequest, engine: EngineDep, metrics: MetricsDep) -> Any:
    if body.echo or body.logprobs or body.suffix:
        raise BadRequestError("echo, logprobs and suffix are not supported")
    prompts = [body.prompt] if isinstance(body.prompt, str) else list(body.prompt)
    if not prompts:
        raise BadRequestError("prompt must not be empty")
    if body.stream:
        if len(prompts) != 1:
            raise BadRequestError("streaming takes a single prompt")
        job = serving.prepare(engine, body, prompts[0], serving.DEFAULT_COMPLETION_TOKENS)
        return StreamingResponse(serving.stream(job, metrics, chat=False, include_usage=body.include_usage()),
                                 media_type="text/event-stream", headers=SSE_HEADERS)
    jobs = [serving.prepare(engine, body, p, serving.DEFAULT_COMPLETION_TOKENS) for p in prompts]
    try:
        results = await asyncio.gather(*(serving.result_of(j, metrics) for j in jobs))
    finally:
        for j in jobs:
            j.req.cancelled.set()
    return JSONResponse(serving.completion_response(jobs[0].model_label, list(results)))


@router.post("/chat/completions", response_model=None)
async def chat_completions(body: ChatRequest, engine: EngineDep, metrics: MetricsDep) -> Any:
    if body.logprobs:
        raise BadRequestError("logprobs are not supported")
    engine.resolve(body.model)
    try:
        messages = [{"role": m.role, "content": m.text()} for m in body.messages]
        prompt = engine.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except ValueError as exc:
        raise BadRequestError(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - template errors (jinja) are the client's messages
        raise BadRequestError(f"the chat template rejected the messages: {exc}") from exc
    job = serving.prepare(engine, body, prompt, serving.DEFAULT_CHAT_TOKENS, body.max_completion_tokens)
    if body.stream:
        return StreamingResponse(serving.stream(job, metrics, chat=True, include_usage=body.include_usage()),
                                 media_type="text/event-stream", headers=SSE_HEADERS)
    result = await serving.result_of(job, metrics)
    return JSONResponse(serving.chat_response(job.model_label, result))
