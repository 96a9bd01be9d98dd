"""Every error as ``application/problem+json`` (RFC 9457): type, title, status, detail, instance.

Errors raised by other services' modules are mapped by class name, so the API does not depend on their
exception modules existing: ``*NotFound*``/``Unknown*`` -> 404, ``InvalidTransition``/``*Refused*``/``*Protected*``/``TrashedError``
-> 409, ``DatasetError``/``SpecError``/``*Invalid*`` -> 422.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.api.exceptions import ApiError

log = logging.getLogger(__name__)

PROBLEM = "application/problem+json"
TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found",
          405: "Method not allowed", 409: "Conflict", 413: "Payload too large", 422: "Invalid input",
          500: "Internal error", 503: "Back end not available"}


def problem(status: int, detail: str, request: Request | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": TITLES.get(status, "Error"), "status": status,
                            "detail": detail}
    if request is not None:
        body["instance"] = request.url.path
    body.update(extra)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def status_for_foreign(exc: Exception) -> int | None:
    """The HTTP status for an exception raised by another service's module, by its class name."""
    for cls in type(exc).__mro__:
        name = cls.__name__
        if "NotFound" in name or name.startswith("Unknown"):
            return 404
        if name in ("InvalidTransition", "AlreadyExists", "TrashedError", "PreflightError") or any(
                w in name for w in ("Refused", "Protected", "Conflict")):
            return 409
        if name in ("DatasetError", "SpecError", "ValidationFailed") or "Invalid" in name:
            return 422
    return None


def field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "form"):
        parts = parts[1:] or parts
    return ".".join(parts)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        report = getattr(exc, "report", None)
        extra = {"report": report} if isinstance(report, (list, dict, str)) else {}
        return problem(exc.status, str(exc) or exc.title, request, **extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such path {request.url.path}"
        return problem(exc.status_code, detail, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": field_name(e.get("loc", ())), "message": e.get("msg", "")} for e in exc.errors()]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "invalid request"
        return problem(422, detail, request, errors=errors)

    @app.exception_handler(Exception)
    async def _other(request: Request, exc: Exception) -> JSONResponse:
        status = status_for_foreign(exc)
        if status is None:
            log.exception("unhandled error on %s %s", request.method, request.url.path)
            return problem(500, f"{type(exc).__name__}: {exc}", request)
        report = getattr(exc, "report", None)
        extra = {"report": report} if isinstance(report, (list, dict, str)) else {}
        return problem(status, str(exc) or type(exc).__name__, request, **extra)
