"""Live feed fan-out: one blocking XREAD loop per process, many SSE subscribers.

The loop runs in a thread on its own Redis connection and hands each new stream entry to every
subscriber's asyncio queue (``call_soon_threadsafe``). A subscriber that falls too far behind is dropped
(its stream ends; the browser's EventSource reconnects with ``Last-Event-ID`` and replays what it missed).
Entry ids of all streams are Redis timestamps, so one ``Last-Event-ID`` resumes across streams. Sequence
numbers are per stream, so entries of different streams in the same millisecond have no common order: a
resume replays from the start of the ``Last-Event-ID``'s millisecond in every stream. Delivery on resume is
therefore at least once (events of that one millisecond may come again), never lossy.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import redis

from shared import streams

log = logging.getLogger(__name__)

FEED_STREAMS: tuple[str, ...] = (*streams.ALL, streams.DEAD_LETTER)
QUEUE_SIZE = 2000


@dataclass(frozen=True)
class FeedItem:
    entry_id: str
    stream: str
    type: str
    job_id: str | None
    data: str  # the event envelope as JSON, with "stream" and "entry_id" added

    def sse(self) -> str:
        return f"id: {self.entry_id}\nevent: {self.type}\ndata: {self.data}\n\n"


def to_item(stream: str, entry_id: str, fields: dict) -> FeedItem | None:
    raw = fields.get(b"event", fields.get("event"))
    if raw is None:
        return None
    try:
        envelope = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(envelope, dict):
        return None
    envelope["stream"] = stream
    envelope["entry_id"] = entry_id
    return FeedItem(entry_id, stream, str(envelope.get("type", "")), envelope.get("job_id"),
                    json.dumps(envelope, separators=(",", ":")))


def entry_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def history(r: redis.Redis, after: str, stream_names: Iterable[str] = FEED_STREAMS,
            limit: int = 10_000, inclusive: bool = False) -> list[FeedItem]:
    """Entries of every feed stream after ``after`` (or from it, ``inclusive``), oldest first."""
    items: list[FeedItem] = []
    lo = after if inclusive else f"({after}"
    for stream in stream_names:
        for eid, fields in r.xrange(stream, min=lo, max="+", count=limit):
            item = to_item(stream, _s(eid), fields)
            if item is not None:
                items.append(item)
    items.sort(key=lambda i: entry_key(i.entry_id))
    return items[:limit]


@dataclass(eq=False)  # identity-hashed: each connection is its own subscriber
class Subscriber:
    queue: asyncio.Queue[FeedItem | None]
    loop: asyncio.AbstractEventLoop
    dropped: bool = False

    def offer(self, item: FeedItem | None) -> None:
        if self.dropped:
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped = True
            self.queue.get_nowait()
            self.queue.put_nowait(None)  # end this subscriber's stream; it reconnects and replays


@dataclass
class Hub:
    redis_url: str
    block_ms: int = 1000
    subscribers: set[Subscriber] = field(default_factory=set)
    delivered: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def subscribe(self) -> Subscriber:
        sub = Subscriber(asyncio.Queue(QUEUE_SIZE), asyncio.get_running_loop())
        with self._lock:
            self.subscribers.add(sub)
        self._ensure_started()
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            self.subscribers.discard(sub)

    def start(self) -> None:
        self._ensure_started()

    def _ensure_started(self) -> None:
        ready: threading.Event | None = None
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                ready = threading.Event()
                self._thread = threading.Thread(target=self._run, args=(ready,), name="api-feed", daemon=True)
                self._thread.start()
        if ready is not None:
            ready.wait(5)  # positions taken: nothing published after subscribe() is missed

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.block_ms / 1000 + 2)
        with self._lock:
            subs = list(self.subscribers)
        for sub in subs:
            sub.loop.call_soon_threadsafe(sub.offer, None)

    def _run(self, ready: threading.Event) -> None:
        client = redis.Redis.from_url(self.redis_url, socket_timeout=self.block_ms / 1000 + 10)
        positions: dict[str, str] = {}
        try:
            for stream in FEED_STREAMS:  # start at the current end of each stream
                last = client.xrevrange(stream, count=1)
                positions[stream] = _s(last[0][0]) if last else "0-0"
            ready.set()
            while not self._stop.is_set():
                try:
                    got = client.xread(positions, block=self.block_ms, count=500)
                except redis.ConnectionError as exc:
                    log.warning("feed: redis unavailable (%s); retrying", exc)
                    self._stop.wait(1.0)
                    continue
                for stream, entries in got or []:
                    name = _s(stream)
                    for eid, fields in entries:
                        positions[name] = _s(eid)
                        item = to_item(name, positions[name], fields)
                        if item is not None:
                            self._fan_out(item)
        finally:
            ready.set()
            client.close()

    def _fan_out(self, item: FeedItem) -> None:
        with self._lock:
            subs = list(self.subscribers)
        for sub in subs:
            try:
                sub.loop.call_soon_threadsafe(sub.offer, item)
            except RuntimeError:  # its event loop is closed
                self.unsubscribe(sub)
        self.delivered += len(subs)


def matches(item: FeedItem, job_id: str | None, types: list[str] | None) -> bool:
    if job_id and item.job_id != job_id:
        return False
    if types:
        return any(item.type == t or (t.endswith("*") and item.type.startswith(t[:-1])) for t in types)
    return True


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
