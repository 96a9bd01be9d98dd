"""Riding out a Redis restart: a patient client, retried calls, and publishes that never duplicate.

* ``patient_client(url)``: the trainer process's Redis client; every command (RQ's included) is retried with
  backoff for up to ``WORKER_PATIENCE_S`` while the server is down or loading its AOF.
* ``call(fn, ...)``: one idempotent Redis operation retried with backoff (tenacity) on connection errors,
  for up to ``patience_s`` (the training step waits meanwhile; a restart loses nothing).
* ``publish_once(r, event)``: ``shared.bus.publish`` guarded by a per-event marker key (``once_key``), so a
  retry after a lost reply (the command ran, the answer did not arrive) never appends the event twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from shared import streams
from shared.bus import publish
from shared.events import Event

log = logging.getLogger(__name__)

T = TypeVar("T")
RETRYABLE = (redis.ConnectionError, redis.TimeoutError)  # BusyLoadingError is a ConnectionError
WORKER_PATIENCE_S = 900.0  # how long the trainer process waits for Redis to come back
DEFAULT_PATIENCE_S = 30.0  # elsewhere (API calls of the trainer's functions): fail within this
MARKER_TTL_S = 3600
_patience = {"s": DEFAULT_PATIENCE_S}



def set_patience(seconds: float) -> None:
    """How long ``call``/``publish_once`` keep retrying in this process (the trainer sets the long one)."""
    _patience["s"] = seconds


def patience() -> float:
    return _patience["s"]


def patient_client(url: str, patience_s: float = WORKER_PATIENCE_S) -> redis.Redis:
    """A client whose every command retries (backoff 0.1 s doubling to 2 s) for about ``patience_s``."""
    retries = max(1, int(patience_s / 2) + 5)
    return redis.Redis.from_url(url, health_check_interval=10, socket_keepalive=True,
                                retry=Retry(ExponentialBackoff(cap=2.0, base=0.1), retries))


def _log_retry(what: str) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("redis unavailable during %s (%s); retry %d", what, exc, state.attempt_number)

    return before_sleep


def call(fn: Callable[..., T], *args: object, what: str = "a redis call", patience_s: float | None = None,
         **kwargs: object) -> T:
    """``fn(*args, **kwargs)`` retried with backoff on connection errors (only for idempotent operations)."""
    retrying = Retrying(retry=retry_if_exception_type(RETRYABLE), wait=wait_exponential(multiplier=0.2, max=5),
                        stop=stop_after_delay(patience() if patience_s is None else patience_s), reraise=True,
                        before_sleep=_log_retry(what))
    return retrying(fn, *args, **kwargs)


def marker_key(event_id: str) -> str:
    return streams.key("trainer", "published", event_id)


def publish_once(r: redis.Redis, event: Event, stream: str | None = None, patience_s: float | None = None) -> str:
    """Append ``event`` to its stream exactly once, retrying while Redis is down; returns the entry id."""
    return call(publish, r, event, stream, once_key=marker_key(event.id), once_ttl_s=MARKER_TTL_S,
                what=f"publishing {event.type}", patience_s=patience_s)
