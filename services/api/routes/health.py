"""Liveness, readiness (Redis and S3 answer) and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.api.deps import RedisDep, RegistryDep
from services.api.schemas import Readiness

router = APIRouter(tags=["health"])


@router.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", response_class=JSONResponse, responses={
    200: {"model": Readiness}, 503: {"model": Readiness, "description": "Redis or S3 not reachable"}})
def ready(r: RedisDep, registry: RegistryDep) -> JSONResponse:
    checks: dict[str, Any] = {}
    try:
        checks["redis"] = bool(r.ping())
    except Exception as exc:  # noqa: BLE001 - reported in the answer
        checks["redis"] = f"{type(exc).__name__}: {exc}"
    try:
        checks["s3"] = bool(registry.s3.bucket_exists(registry.bucket)) or "bucket missing"
    except Exception as exc:  # noqa: BLE001
        checks["s3"] = f"{type(exc).__name__}: {exc}"
    ok = checks["redis"] is True and checks["s3"] is True
    return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks},
                        status_code=200 if ok else 503)


@router.get("/metrics", response_class=Response, responses={
    200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}, "description": "Prometheus text"}})
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
