"""The live feed: ``GET /api/events/stream`` (server-sent events), resumable with ``Last-Event-ID``."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from services.api.deps import READ, HubDep, RedisDep
from services.api.exceptions import BadInput
from services.api.hub import FEED_STREAMS, FeedItem, entry_key, history, matches
from services.api.problems import INVALID_QUERY, READ_ERRORS
from services.api.schemas import EventList

router = APIRouter(prefix="/api/events", tags=["events"])

ENTRY_ID = re.compile(r"^\d+-\d+$")
MAX_ID_PART = 2**64 - 1  # Redis stream ids are two unsigned 64-bit integers


def valid_entry_id(value: str) -> bool:
    if not ENTRY_ID.match(value):
        return False
    ms, seq = value.split("-")
    return int(ms) <= MAX_ID_PART and int(seq) <= MAX_ID_PART
KEEPALIVE_S = 15.0


@router.get("", response_model=EventList, dependencies=READ, responses={**READ_ERRORS, **INVALID_QUERY})
def recent(r: RedisDep, job_id: Annotated[str | None, Query()] = None,
           types: Annotated[str | None, Query(description="comma-separated types; 'job.*' prefixes")] = None,
           after: Annotated[str, Query(pattern=r"^\d+-\d+$")] = "0-0",
           limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> dict:
    """Events after an entry id (oldest first), for logs and catching up."""
    if not valid_entry_id(after):
        raise BadInput(f"after: {after!r} is not a stream entry id like 1700000000000-0")
    wanted = _types(types)
    items = [i for i in history(r, after, limit=100_000) if matches(i, job_id, wanted)][:limit]
    import json

    return {"data": [json.loads(i.data) for i in items], "count": len(items),
            "last_id": items[-1].entry_id if items else after}


@router.get("/stream", dependencies=READ, responses={**READ_ERRORS, **INVALID_QUERY, 200: {
    "content": {"text/event-stream": {}}, "description": "server-sent events: id = stream entry id"}})
async def stream(
    request: Request, hub: HubDep, r: RedisDep,
    job_id: Annotated[str | None, Query()] = None,
    types: Annotated[str | None, Query(description="comma-separated types; 'metrics.*' prefixes")] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    since: Annotated[str | None, Query(pattern=r"^\d+-\d+$", description="like Last-Event-ID")] = None,
) -> StreamingResponse:
    """Metrics and state changes as they happen. Reconnect with ``Last-Event-ID`` to get what was missed."""
    resume = last_event_id or since
    if resume is not None and not valid_entry_id(resume):
        raise BadInput(f"Last-Event-ID: {resume!r} is not a stream entry id like 1700000000000-0")
    wanted = _types(types)
    sub = hub.subscribe()  # subscribe before replaying, so nothing falls between the two
    metrics = request.app.state.metrics
    metrics.subscribers.inc()

    async def body() -> AsyncIterator[str]:
        sent: set[tuple[str, str]] = set()
        # Replay from the start of the resume id's millisecond in every stream: sequence numbers are per
        # stream, so same-millisecond entries of other streams may or may not have been seen (at least once).
        floor = (entry_key(resume)[0], 0) if resume else (0, 0)
        try:
            yield "retry: 2000\n\n"
            if resume:
                replay = await asyncio.to_thread(history, r, f"{floor[0]}-0", FEED_STREAMS, 10_000, True)
                for item in replay:
                    sent.add((item.stream, item.entry_id))
                    if matches(item, job_id, wanted):
                        yield item.sse()
            while True:
                try:
                    item: FeedItem | None = await asyncio.wait_for(sub.queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield ": keepalive\n\n"
                    continue
                if item is None:
                    return
                if (item.stream, item.entry_id) in sent or entry_key(item.entry_id) < floor:
                    continue
                if matches(item, job_id, wanted):
                    metrics.feed_delivered.inc()
                    yield item.sse()
        finally:
            hub.unsubscribe(sub)
            metrics.subscribers.dec()

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _types(types: str | None) -> list[str] | None:
    return [t.strip() for t in types.split(",") if t.strip()] if types else None
