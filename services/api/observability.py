"""Prometheus metrics of the gateway: request counts and latencies by route template, live subscribers."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ApiMetrics:
    """One registry per app, so several apps in one process (tests) do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("trainyard_api_requests_total", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("trainyard_api_request_seconds", "HTTP request latency", ["method", "route"],
                                 registry=self.registry)
        self.subscribers = Gauge("trainyard_api_sse_subscribers", "open live-feed connections",
                                 registry=self.registry)
        self.feed_delivered = Counter("trainyard_api_sse_events_total", "events sent to live-feed clients",
                                      registry=self.registry)


def install(app: FastAPI, metrics: ApiMetrics) -> None:
    @app.middleware("http")
    async def _measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        t0 = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        if not template.startswith("/api/events"):  # streams stay open; their latency is meaningless
            metrics.latency.labels(request.method, template).observe(time.perf_counter() - t0)
        metrics.requests.labels(request.method, template, str(response.status_code)).inc()
        return response
