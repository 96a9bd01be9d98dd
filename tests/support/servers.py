"""Run a real app under uvicorn on a free loopback port, and wait for a server to be ready."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import uvicorn
from fastapi import FastAPI

from services.stack.servers import free_port
from shared.runtime import poll


def wait_ready(url: str, timeout: float, alive: Callable[[], bool] = lambda: True, every: float = 0.05) -> None:
    """Poll ``url + "/ready"`` until it answers 200; ``RuntimeError`` as soon as ``alive()`` turns False (the
    server's process or thread died), ``TimeoutError`` after ``timeout`` seconds."""

    def ready() -> bool:
        if not alive():
            raise RuntimeError(f"the server at {url} stopped before it was ready")
        try:
            return httpx.get(f"{url}/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    poll(f"{url}/ready", ready, timeout, every)


@dataclass
class RunningServer:
    url: str
    server: uvicorn.Server
    thread: threading.Thread


@contextmanager
def serve_app(app: FastAPI, port: int | None = None) -> Iterator[RunningServer]:
    """Serve ``app`` on 127.0.0.1 in a thread until the block ends."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                            timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"uvicorn did not start on port {port}")
        time.sleep(0.02)
    try:
        yield RunningServer(f"http://127.0.0.1:{port}", server, thread)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
