"""The FastAPI app factory: ``create_app(settings)`` wires the engine, upload store, metrics and routers.

The base model loads on the engine's thread after startup: ``/health`` answers at once, ``/ready`` turns
200 when the base is loaded (503 with the reason if loading failed).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from services.inference import errors
from services.inference.engine import Engine
from services.inference.metrics import Metrics
from services.inference.routes import health, lora, openai, uploads
from services.inference.uploads import UploadStore
from shared.settings import InferenceSettings


def create_app(settings: InferenceSettings) -> FastAPI:
    metrics = Metrics()
    engine = Engine(settings, metrics)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        engine.start()
        try:
            yield
        finally:
            engine.stop()

    app = FastAPI(title="Trainyard inference", version="1", lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine
    app.state.metrics = metrics
    app.state.uploads = UploadStore(settings.adapters_dir, settings.max_upload_mb * 1024 * 1024)
    app.state.upload_locks = {}
    errors.install(app)
    for router in (health.open_router, health.metrics_router, openai.router, lora.router, uploads.router):
        app.include_router(router)

    @app.middleware("http")
    async def count(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        t0 = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        label = getattr(route, "path", "unmatched")
        metrics.requests.labels(route=label, method=request.method, status=str(response.status_code)).inc()
        metrics.latency.labels(route=label).observe(time.perf_counter() - t0)
        return response

    return app
