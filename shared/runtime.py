"""Running a service process: logging, Redis connection, loops in threads, clean stop on SIGINT/SIGTERM.

A service ``main.py`` builds its consumers and projection runners and hands them to ``serve``::

    serve("registry", settings, loops=[consumer, runner])

Every loop object has ``run()`` and ``stop()``. The first signal asks every loop to stop after its current
item; a second one exits at once.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

import redis
from tenacity import retry, stop_after_delay, wait_exponential

from shared.settings import CommonSettings

log = logging.getLogger(__name__)


class Loop(Protocol):
    def run(self) -> None: ...

    def stop(self) -> None: ...


T = TypeVar("T")


def poll(what: str, fn: Callable[[], T], timeout: float, every: float = 0.5) -> T:
    """Call ``fn`` every ``every`` seconds until it returns something truthy, and return that; after
    ``timeout`` seconds raise ``TimeoutError`` naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def setup_logging(service: str, level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format=f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@retry(wait=wait_exponential(multiplier=0.2, max=5), stop=stop_after_delay(60), reraise=True)
def connect_redis(url: str) -> redis.Redis:
    """A Redis client that has answered PING (retried with backoff while the server starts)."""
    client = redis.Redis.from_url(url, health_check_interval=10, socket_keepalive=True)
    client.ping()
    return client


def warn_about_replica(service: str, settings: CommonSettings) -> list[str]:
    """Say loudly at start-up when the registry's replica is not a backup (each service that stores does)."""
    warnings = settings.replica_warnings()
    for line in warnings:
        log.warning("%s: WARNING: %s", service, line)
    return warnings


def serve(service: str, settings: CommonSettings, loops: Sequence[Loop]) -> None:
    stopping = threading.Event()
    warn_about_replica(service, settings)

    def on_signal(signum: int, _frame: object) -> None:
        if stopping.is_set():
            log.warning("%s: second signal, exiting now", service)
            os._exit(1)
        log.info("%s: signal %d, stopping after current work (again to exit now)", service, signum)
        stopping.set()
        for loop in loops:
            loop.stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    threads = [threading.Thread(target=_guard(service, loop, stopping), name=f"{service}-{i}", daemon=True)
               for i, loop in enumerate(loops)]
    for t in threads:
        t.start()
    log.info("%s running with %d loop(s)", service, len(loops))
    try:
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(timeout=0.5)
    finally:
        log.info("%s stopped", service)


def _guard(service: str, loop: Loop, stopping: threading.Event):
    def run() -> None:
        while not stopping.is_set():
            try:
                loop.run()
                return
            except Exception:  # noqa: BLE001 - a loop that crashes is restarted, never silently lost
                log.exception("%s: loop %r crashed; restarting in 1 s", service, loop)
                stopping.wait(1.0)

    return run
