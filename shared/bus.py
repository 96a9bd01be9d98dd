"""The stream bus: publish events with XADD, consume them in consumer groups.

The consumer loop, top to bottom:
  1. create each group idempotently (BUSYGROUP tolerated), at the start of the stream;
  2. drain this consumer's own pending entries (what it read before a crash but never acked);
  3. reclaim entries idle too long in dead consumers (XAUTOCLAIM);
  4. read new entries (``>``), run the handler, ack only after it succeeded;
  5. an entry delivered ``max_deliveries`` times without success, or one that cannot be parsed, moves to the
     dead-letter stream with the error, then is acked.

Handlers are idempotent by event id: a processed id is recorded in the same MULTI/EXEC as the ack, and an
id already recorded is acked without running the handler again.

The log is the source of truth and is never trimmed here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import redis

from shared import streams
from shared.events import DeadLettered, Event, InvalidEventError, UnknownEventError, parse_event
from shared.handlers import Handler, receives

__all__ = ["Consumer", "ConsumerConfig", "Handler", "Marker", "publish", "publish_many", "read_all", "receives"]

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Marker:
    """A hash field written together with an event: ``HSET key field value`` (``value`` defaults to the event's
    id), so whoever checks the marker never sees it without the event, nor the event without it."""

    key: str
    field: str
    value: str | None = None


# XADD guarded by a string key: a retry of the same publish (the command ran, its reply was lost) finds the
# key and returns the first entry id instead of appending the event again.
_PUBLISH_ONCE = """
local done = redis.call('GET', KEYS[1])
if done then return done end
local id = redis.call('XADD', KEYS[2], '*', 'type', ARGV[1], 'event', ARGV[2])
redis.call('SET', KEYS[1], id, 'EX', tonumber(ARGV[3]))
return id
"""


def _fields(event: Event) -> dict[str, str]:
    return {"type": event.type, "event": event.to_json()}


def _id(entry_id: bytes | str) -> str:
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


def publish(r: redis.Redis, event: Event, stream: str | None = None, *, marker: Marker | None = None,
            once_key: str | None = None, once_ttl_s: int = 3600) -> str:
    """Append ``event`` to its stream (``stream`` overrides) and return the entry id. The one way to publish.

    ``marker``: the XADD and the marker's HSET run in one MULTI/EXEC (``r`` must be a client, not a pipeline).
    ``once_key``: the XADD is skipped when that key exists (set to the entry id for ``once_ttl_s`` seconds), in
    one Lua script, so retrying a publish whose reply was lost appends nothing twice.
    A pipeline as ``r`` queues the XADD in it (no id is returned until it executes).
    """
    target = stream or streams.stream_for(event.type)
    if once_key is not None:
        return _id(r.eval(_PUBLISH_ONCE, 2, once_key, target, event.type, event.to_json(), once_ttl_s))
    if marker is None:
        return _id(r.xadd(target, _fields(event)))
    pipe = r.pipeline(transaction=True)
    pipe.xadd(target, _fields(event))
    pipe.hset(marker.key, marker.field, marker.value if marker.value is not None else event.id)
    return _id(pipe.execute()[0])


def publish_many(r: redis.Redis, events: Iterable[Event]) -> list[str]:
    pipe = r.pipeline(transaction=False)
    for event in events:
        pipe.xadd(streams.stream_for(event.type), _fields(event))
    return [_id(i) for i in pipe.execute()]


def read_all(r: redis.Redis, stream: str, start: str = "-", count: int = 1000) -> Iterable[tuple[str, Event]]:
    """Every event of a stream from ``start`` (inclusive), oldest first; unparseable entries are skipped."""
    cursor = start
    exclusive = False
    while True:
        lo = f"({cursor}" if exclusive else cursor
        batch = r.xrange(stream, min=lo, max="+", count=count)
        if not batch:
            return
        for entry_id, fields in batch:
            eid = _s(entry_id)
            try:
                yield eid, parse_event(fields[b"event"] if b"event" in fields else fields["event"])
            except (UnknownEventError, InvalidEventError, KeyError):
                log.warning("skipping unreadable entry %s in %s", eid, stream)
            cursor = eid
        exclusive = True


@dataclass(frozen=True)
class ConsumerConfig:
    """Stream, group and consumer settings of one consumer."""

    group: str
    consumer: str
    streams: tuple[str, ...]
    max_deliveries: int = 5
    claim_idle_ms: int = 30_000
    block_ms: int = 1000
    batch: int = 100
    retry_delay_s: float = 0.5
    dead_letter_stream: str = streams.DEAD_LETTER


@dataclass
class Consumer:
    """A consumer-group reader that dispatches each event to the handler registered for its type."""

    r: redis.Redis
    config: ConsumerConfig
    handlers: dict[str, Handler]
    default: Handler | None = None  # for types without a handler; None means ack and ignore
    processed: int = 0
    _stop: bool = field(default=False, repr=False)
    _last_claim: float = field(default=0.0, repr=False)
    _last_pending_retry: float = field(default=0.0, repr=False)

    # -- setup --------------------------------------------------------------------------------------
    def ensure_groups(self) -> None:
        for stream in self.config.streams:
            try:
                self.r.xgroup_create(stream, self.config.group, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def stop(self) -> None:
        self._stop = True

    # -- loop ---------------------------------------------------------------------------------------
    def run(self, until: Callable[[], bool] | None = None) -> None:
        """Consume until ``stop()`` is called or ``until()`` returns True."""
        self.ensure_groups()
        self.drain_pending()
        while not self._stop and not (until and until()):
            try:
                self.run_once()
            except redis.ConnectionError as exc:
                log.warning("redis unavailable (%s); retrying", exc)
                time.sleep(1.0)
        log.info("consumer %s/%s stopped after %d events", self.config.group, self.config.consumer, self.processed)

    def run_once(self, block_ms: int | None = None) -> int:
        """One pass: retry own pending (rate-limited), reclaim idle entries, read new ones. Returns count."""
        now = time.monotonic()
        n = 0
        if now - self._last_pending_retry >= self.config.retry_delay_s:
            self._last_pending_retry = now
            n += self.drain_pending()
        if now - self._last_claim >= max(self.config.claim_idle_ms / 1000 / 2, 0.05):
            self._last_claim = now
            n += self.reclaim()
        got = self.r.xreadgroup(
            self.config.group,
            self.config.consumer,
            dict.fromkeys(self.config.streams, ">"),
            count=self.config.batch,
            block=self.config.block_ms if block_ms is None else block_ms,
        )
        for stream, entries in got or []:
            n += self._handle_batch(_s(stream), entries, fresh=True)
        return n

    def drain_pending(self) -> int:
        """Re-run this consumer's own pending entries (read earlier, never acked)."""
        n = 0
        for stream in self.config.streams:
            got = self.r.xreadgroup(self.config.group, self.config.consumer, {stream: "0"}, count=self.config.batch)
            for _s_name, entries in got or []:
                entries = [e for e in entries if e[1]]  # entries deleted from the stream come back empty
                n += self._handle_batch(stream, entries, fresh=False)
        return n

    def reclaim(self) -> int:
        """Take over entries that other (dead) consumers left idle for longer than ``claim_idle_ms``."""
        n = 0
        for stream in self.config.streams:
            try:
                res = self.r.xautoclaim(
                    stream, self.config.group, self.config.consumer, self.config.claim_idle_ms, "0-0",
                    count=self.config.batch,
                )
            except redis.ResponseError:
                continue
            entries = [e for e in res[1] if e[1]]
            if entries:
                log.info("reclaimed %d idle entries from %s", len(entries), stream)
                n += self._handle_batch(stream, entries, fresh=False)
        return n

    # -- dispatch -----------------------------------------------------------------------------------
    def _processed_key(self) -> str:
        return streams.key("processed", self.config.group)

    def _handle_batch(self, stream: str, entries: list, fresh: bool) -> int:
        parsed: list[tuple[str, dict, Event | None]] = []
        for entry_id, fields in entries:
            eid = _s(entry_id)
            raw = fields.get(b"event", fields.get("event"))
            try:
                if raw is None:
                    raise InvalidEventError("entry has no 'event' field")
                parsed.append((eid, fields, parse_event(raw)))
            except (UnknownEventError, InvalidEventError) as exc:
                self._dead_letter(stream, eid, fields, f"{type(exc).__name__}: {exc}", deliveries=1)
                parsed.append((eid, fields, None))
        # One round trip tells which events this group already handled (redeliveries, duplicate publishes).
        ids = [e.id for _, _, e in parsed if e is not None]
        flags = self.r.smismember(self._processed_key(), ids) if ids else []
        seen = {i for i, f in zip(ids, flags, strict=True) if f}
        acked: list[tuple[str, str | None]] = []
        for eid, fields, event in parsed:
            if event is None or event.id in seen:
                acked.append((eid, None))
                continue
            done = self._handle_entry(stream, eid, fields, event, fresh)
            if done is not None:
                acked.append(done)
                seen.add(event.id)
        if acked:
            pipe = self.r.pipeline(transaction=True)
            pipe.xack(stream, self.config.group, *[a[0] for a in acked])
            event_ids = [a[1] for a in acked if a[1]]
            if event_ids:
                pipe.sadd(self._processed_key(), *event_ids)
            pipe.execute()
        return len(acked)

    def _handle_entry(
        self, stream: str, eid: str, fields: dict, event: Event, fresh: bool
    ) -> tuple[str, str | None] | None:
        """Run the handler for one entry. Returns (entry id, event id) to ack, or None to leave pending."""
        handler = self.handlers.get(event.type, self.default)
        if handler is None:
            return (eid, event.id)
        if not fresh:
            deliveries = self._deliveries(stream, eid)
            if deliveries > self.config.max_deliveries:
                error = self.r.hget(self._error_key(), eid)
                self._dead_letter(stream, eid, fields, _s(error) if error else "too many deliveries", deliveries)
                return (eid, event.id)
        try:
            handler(event)
        except Exception as exc:  # noqa: BLE001 - the entry stays pending and is retried, then dead-lettered
            log.exception("handler for %s (%s) failed", event.type, event.id)
            self.r.hset(self._error_key(), eid, f"{type(exc).__name__}: {exc}")
            return None
        self.processed += 1
        return (eid, event.id)

    def _error_key(self) -> str:
        return streams.key("errors", self.config.group)

    def _deliveries(self, stream: str, eid: str) -> int:
        info = self.r.xpending_range(stream, self.config.group, min=eid, max=eid, count=1)
        return int(info[0]["times_delivered"]) if info else 1

    def _dead_letter(self, stream: str, eid: str, fields: dict, error: str, deliveries: int) -> None:
        log.error("dead-lettering %s from %s (group %s): %s", eid, stream, self.config.group, error)
        payload = DeadLettered(
            stream=stream,
            entry_id=eid,
            group=self.config.group,
            error=error,
            deliveries=deliveries,
            fields={_s(k): _s(v) for k, v in fields.items()},
        )
        publish(self.r, Event.create("event.dead_lettered", payload), stream=self.config.dead_letter_stream)
        self.r.hdel(self._error_key(), eid)


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
