"""Projections: read models built from the event log, rebuildable by replaying it.

A projection names the streams it reads and applies one event at a time to Redis keys under its own
namespace. The runner stores the stream position it has processed in the same MULTI/EXEC as the view
writes, so a crash between the two can neither skip nor double an event. ``rebuild`` replays the whole log
into a scratch namespace and compares it with the live view; ``--apply`` swaps it in.

Writing a projection::

    class JobsProjection:
        name = "jobs"
        streams = (streams.JOBS, streams.METRICS)

        def apply(self, view: View, event: Event) -> None:
            current = view.hget("jobs", event.job_id)   # reads go to Redis directly
            view.pipe.hset(view.key("jobs"), event.job_id, ...)  # writes go to view.pipe (one transaction)

Reads inside ``apply`` see the state before this event's writes (they are queued in the pipeline); keep
per-event logic self-contained. One runner process per projection and namespace.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

import redis

from shared import streams
from shared.events import Event, InvalidEventError, UnknownEventError, parse_event

log = logging.getLogger(__name__)

LIVE = "live"
SCRATCH = "rebuild"


@dataclass
class View:
    """Key builder and write pipeline for one projection in one namespace."""

    r: redis.Redis
    projection: str
    ns: str = LIVE
    pipe: redis.client.Pipeline | None = None

    def key(self, *parts: str) -> str:
        return streams.key("view", self.ns, self.projection, *parts)

    def prefix(self) -> str:
        return streams.key("view", self.ns, self.projection) + ":"

    # Convenience reads against committed state.
    def hget(self, name: str, field_: str) -> bytes | None:
        return self.r.hget(self.key(name), field_)

    def get(self, name: str) -> bytes | None:
        return self.r.get(self.key(name))


class Projection(Protocol):
    name: str
    streams: tuple[str, ...]

    def apply(self, view: View, event: Event) -> None: ...


def _position_key(view: View) -> str:
    return view.key("_position")


@dataclass
class ProjectionRunner:
    r: redis.Redis
    projection: Projection
    ns: str = LIVE
    batch: int = 500
    applied: int = 0
    _stop: bool = field(default=False, repr=False)

    @property
    def view(self) -> View:
        return View(self.r, self.projection.name, self.ns)

    def positions(self) -> dict[str, str]:
        raw = self.r.hgetall(_position_key(self.view))
        pos = {k.decode(): v.decode() for k, v in raw.items()}
        return {s: pos.get(s, "0-0") for s in self.projection.streams}

    def step(self, block_ms: int | None = None) -> int:
        """Apply the next batch of events (oldest first across the projection's streams)."""
        got = self.r.xread(self.positions(), count=self.batch, block=block_ms)
        entries: list[tuple[tuple[int, int], str, str, dict]] = []
        for stream, items in got or []:
            sname = stream.decode() if isinstance(stream, bytes) else stream
            for entry_id, fields in items:
                eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                ms, seq = eid.split("-")
                entries.append(((int(ms), int(seq)), sname, eid, fields))
        entries.sort(key=lambda e: e[0])
        for _, sname, eid, fields in entries:
            self._apply_one(sname, eid, fields)
        return len(entries)

    def _apply_one(self, stream: str, eid: str, fields: dict) -> None:
        view = self.view
        pipe = self.r.pipeline(transaction=True)
        view.pipe = pipe
        raw = fields.get(b"event", fields.get("event"))
        try:
            event = parse_event(raw) if raw is not None else None
        except (UnknownEventError, InvalidEventError) as exc:
            log.warning("projection %s skips unreadable entry %s: %s", self.projection.name, eid, exc)
            event = None
        if event is not None:
            self.projection.apply(view, event)
        pipe.hset(_position_key(view), stream, eid)
        pipe.execute()
        self.applied += 1

    def catch_up(self) -> int:
        total = 0
        while n := self.step():
            total += n
        return total

    def stop(self) -> None:
        self._stop = True

    def run(self, until: Callable[[], bool] | None = None, block_ms: int = 1000) -> None:
        while not self._stop and not (until and until()):
            try:
                self.step(block_ms=block_ms)
            except redis.ConnectionError as exc:
                log.warning("projection %s: redis unavailable (%s); retrying", self.projection.name, exc)
                time.sleep(1.0)


def dump(r: redis.Redis, projection: str, ns: str) -> dict[str, object]:
    """Every key of a projection's namespace (except its position) with a comparable value."""
    view = View(r, projection, ns)
    out: dict[str, object] = {}
    for k in r.scan_iter(match=view.prefix() + "*", count=1000):
        name = k.decode()[len(view.prefix()):]
        if name == "_position":
            continue
        kind = r.type(k).decode()
        if kind == "string":
            out[name] = r.get(k)
        elif kind == "hash":
            out[name] = r.hgetall(k)
        elif kind == "set":
            out[name] = sorted(r.smembers(k))
        elif kind == "zset":
            out[name] = r.zrange(k, 0, -1, withscores=True)
        elif kind == "list":
            out[name] = r.lrange(k, 0, -1)
        else:  # streams and others are compared by type only
            out[name] = kind
    return out


def clear(r: redis.Redis, projection: str, ns: str) -> None:
    view = View(r, projection, ns)
    keys = list(r.scan_iter(match=view.prefix() + "*", count=1000))
    if keys:
        r.delete(*keys)


@dataclass
class RebuildReport:
    projection: str
    applied: int
    keys: int
    equal: bool
    differing: list[str]


def rebuild(r: redis.Redis, projections: Iterable[Projection], apply: bool = False) -> list[RebuildReport]:
    """Replay the log into a scratch namespace, compare with live, and (optionally) swap it in."""
    reports = []
    for projection in projections:
        clear(r, projection.name, SCRATCH)
        runner = ProjectionRunner(r, projection, ns=SCRATCH)
        applied = runner.catch_up()
        rebuilt, live = dump(r, projection.name, SCRATCH), dump(r, projection.name, LIVE)
        differing = sorted(k for k in set(rebuilt) | set(live) if rebuilt.get(k) != live.get(k))
        if apply:
            clear(r, projection.name, LIVE)
            scratch_view, live_view = View(r, projection.name, SCRATCH), View(r, projection.name, LIVE)
            for k in r.scan_iter(match=scratch_view.prefix() + "*", count=1000):
                name = k.decode()[len(scratch_view.prefix()):]
                r.rename(k, live_view.key(name))
        else:
            clear(r, projection.name, SCRATCH)
        reports.append(RebuildReport(projection.name, applied, len(rebuilt), not differing, differing))
    return reports
