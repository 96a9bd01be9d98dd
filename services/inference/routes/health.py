"""Liveness and readiness (open) and Prometheus metrics (behind the token)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from services.inference.deps import Authorized, EngineDep, MetricsDep

open_router = APIRouter(tags=["health"])
metrics_router = APIRouter(tags=["health"], dependencies=Authorized)


@open_router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@open_router.get("/ready")
async def ready(engine: EngineDep) -> JSONResponse:
    if engine.ready:
        return JSONResponse({"status": "ready", "model": engine.served_name, "device": engine.device,
                             "adapters": [a.name for a in engine.adapters()]})
    status = "failed" if engine.load_error else "loading"
    return JSONResponse({"status": status, "model": engine.served_name, "error": engine.load_error}, status_code=503)


@metrics_router.get("/metrics")
async def metrics(m: MetricsDep) -> Response:
    return Response(m.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
