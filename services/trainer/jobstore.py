"""The trainer's own job records in Redis (its write model): spec, dataset, state, queue position.

Readers outside the trainer use the jobs projection (``services.trainer.projection``); this record is what
the worker and the control functions act on, changed with optimistic transactions (WATCH/MULTI) so that a
control request and the worker never both win a transition.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import redis

from services.trainer.exceptions import InvalidTransition, JobNotFound
from services.trainer.states import JobState
from shared import streams

RUNNING_KEY = streams.key("trainer", "running")  # hash job_id -> worker name, while a worker trains it
HEARTBEAT_TTL_S = 5  # a running job whose worker has not refreshed this for so long is orphaned


def record_key(job_id: str) -> str:
    return streams.key("trainer", "job", job_id)


def heartbeat_key(job_id: str) -> str:
    return streams.key("trainer", "heartbeat", job_id)


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _decode(raw: dict[bytes, bytes]) -> dict[str, Any]:
    out: dict[str, Any] = {k.decode(): v.decode() for k, v in raw.items()}
    for name in ("spec", "dataset"):
        if name in out:
            out[name] = json.loads(out[name])
    for name in ("attempt", "step"):
        if name in out:
            out[name] = int(out[name])
    return out


def create(r: redis.Redis, job_id: str, *, spec: dict[str, Any], dataset: dict[str, Any], priority: str,
           name: str) -> None:
    r.hset(record_key(job_id), mapping={
        "id": job_id, "name": name, "spec": json.dumps(spec), "dataset": json.dumps(dataset),
        "state": JobState.queued.value, "priority": priority, "attempt": 0, "step": 0,
        "created_at": now_iso(), "updated_at": now_iso(),
    })


def load(r: redis.Redis, job_id: str) -> dict[str, Any]:
    raw = r.hgetall(record_key(job_id))
    if not raw:
        raise JobNotFound(f"no job {job_id!r}")
    return _decode(raw)


def update(r: redis.Redis, job_id: str, **fields: Any) -> None:
    mapping = {k: json.dumps(v) if isinstance(v, dict | list) else str(v) for k, v in fields.items()}
    mapping["updated_at"] = now_iso()
    r.hset(record_key(job_id), mapping=mapping)


def transition(r: redis.Redis, job_id: str, allowed_from: Iterable[JobState], to: JobState, *,
               action: str = "", **fields: Any) -> dict[str, Any]:
    """Move a job to ``to`` if its current state is in ``allowed_from``; return the record before the move."""
    allowed = {s.value for s in allowed_from}
    key = record_key(job_id)
    with r.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(key)
                raw = pipe.hgetall(key)
                if not raw:
                    raise JobNotFound(f"no job {job_id!r}")
                before = _decode(raw)
                if before["state"] not in allowed:
                    what = action or f"move to {to.value}"
                    raise InvalidTransition(f"cannot {what} job {job_id}: it is {before['state']}")
                pipe.multi()
                mapping = {k: json.dumps(v) if isinstance(v, dict | list) else str(v) for k, v in fields.items()}
                pipe.hset(key, mapping={**mapping, "state": to.value, "updated_at": now_iso()})
                pipe.execute()
                return before
            except redis.WatchError:
                continue


def all_ids(r: redis.Redis) -> list[str]:
    prefix = record_key("")
    return sorted(k.decode()[len(prefix):] for k in r.scan_iter(match=prefix + "*", count=500))


def running_jobs(r: redis.Redis) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in r.hgetall(RUNNING_KEY).items()}


def orphaned(r: redis.Redis) -> list[str]:
    """Jobs recorded as running whose worker stopped refreshing the heartbeat (crash, kill -9)."""
    out = []
    for job_id in all_ids(r):
        state = r.hget(record_key(job_id), "state")
        if state and state.decode() == JobState.running.value and not r.exists(heartbeat_key(job_id)):
            out.append(job_id)
    return out
