"""The playground: an OpenAI chat API per target that can talk to any adapter version (or the base).

``POST /api/playground/{target}/v1/chat/completions`` takes an OpenAI chat body whose ``model`` is a version
id or ``base``; the gateway loads the version on the target when needed (``services.api.playground``) and
proxies the request, streamed or not, with the target's token. Greedy by default (``temperature`` 0).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from services.api import playground
from services.api.deps import WRITE, RedisDep, RegistryDep, SettingsDep
from services.api.exceptions import BackendUnavailable
from services.api.problems import NOT_FOUND, WRITE_ERRORS
from services.api.routes.deployments import known_target

router = APIRouter(prefix="/api/playground", tags=["playground"])


class PlaygroundChat(BaseModel):
    """An OpenAI chat completion request; ``model`` is a registry version id or ``base``."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=200, examples=["base"])
    messages: list[dict[str, Any]] = Field(min_length=1)
    stream: bool = False
    temperature: float = 0.0
    max_tokens: int = Field(default=128, ge=1, le=4096)


class ChatAnswer(BaseModel):
    """The target's OpenAI chat completion, as it sent it (model output: render as text)."""

    model_config = ConfigDict(extra="allow")
    id: str | None = None
    model: str | None = None
    choices: list[dict[str, Any]] = Field(default_factory=list)


def _forward(config: Any, body: dict[str, Any]) -> tuple[httpx.Client, httpx.Response]:
    headers = {"Authorization": f"Bearer {config.token}"} if config.token else {}
    http = httpx.Client(base_url=config.url.rstrip("/"), headers=headers, timeout=httpx.Timeout(120, connect=5))
    try:
        res = http.send(http.build_request("POST", "/v1/chat/completions", json=body), stream=True)
    except httpx.HTTPError as exc:
        http.close()
        raise BackendUnavailable(f"target {config.name} is not reachable ({type(exc).__name__})") from exc
    return http, res


@router.post("/{target}/v1/chat/completions", dependencies=WRITE, response_model=None,
             responses={**WRITE_ERRORS, **NOT_FOUND, 200: {"model": ChatAnswer,
                                                            "description": "the OpenAI chat answer, or its SSE stream",
                                                            "content": {"text/event-stream": {}}}})
def chat(target: str, body: PlaygroundChat, request: Request, settings: SettingsDep, r: RedisDep,
         registry: RegistryDep) -> Any:
    """Chat with a version (loaded on demand under ``play-<version>``, never replacing a deployment) or ``base``."""
    config = known_target(request, target)
    client = playground.target_client(config)
    try:
        name = playground.ensure_loaded(r, registry, client, config, body.model,
                                        Path(settings.uploads_dir) / "playground")
    except Exception as exc:
        if isinstance(exc, httpx.HTTPError) or "Unreachable" in type(exc).__name__:
            raise BackendUnavailable(f"target {target} is not reachable ({type(exc).__name__})") from exc
        raise
    finally:
        client.close()
    http, res = _forward(config, {**body.model_dump(), "model": name})
    if not body.stream or res.status_code >= 400:
        try:
            res.read()
            return JSONResponse(res.json(), status_code=res.status_code)
        finally:
            res.close()
            http.close()

    def relay() -> Iterator[bytes]:
        try:
            yield from res.iter_raw()
        finally:
            res.close()
            http.close()

    return StreamingResponse(relay(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
