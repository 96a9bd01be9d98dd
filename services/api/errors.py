"""Every error as ``application/problem+json`` (RFC 9457): type, title, status, detail, instance.

Errors raised by the services' public modules map to HTTP statuses through ``STATUS``, an explicit table of
exception types (a subclass maps like its nearest listed base); anything else is a 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.api.exceptions import ApiError
from services.deployer import api as deployer
from services.evaluator import api as evaluator
from services.registry import api as registry
from services.trainer import api as trainer
from shared.events import InvalidEventError, UnknownEventError

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


STATUS: dict[type[Exception], int] = {
    trainer.JobNotFound: 404, trainer.InvalidTransition: 409, trainer.SpecError: 422, trainer.DatasetError: 422,
    registry.NotFoundError: 404, registry.ProtectedError: 409, registry.PurgeRefusedError: 409,
    registry.TrashedError: 409, registry.InvalidInputError: 422,
    evaluator.UnknownJobError: 404, evaluator.InvalidQueryError: 422,
    deployer.DeploymentNotFoundError: 404, deployer.UnknownTargetError: 404, deployer.PreflightError: 409,
    deployer.InvalidRequestError: 422,
    UnknownEventError: 404, InvalidEventError: 422,
}


def status_for_foreign(exc: Exception) -> int | None:
    """The HTTP status for an exception raised by a service's public module (``STATUS``), else None."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return None


def field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "form"):
        parts = parts[1:] or parts
    return ".".join(parts)


def _report(exc: Exception) -> dict[str, Any]:
    report = getattr(exc, "report", None)
    return {"report": report} if isinstance(report, (list, dict, str)) else {}


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    return problem(status_for_foreign(exc) or 500, str(exc) or type(exc).__name__, request, **_report(exc))


def install(app: FastAPI) -> None:
    for exc_type in STATUS:  # each listed type (and its subclasses) answers with its own status
        app.add_exception_handler(exc_type, _service_error)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return problem(exc.status, str(exc) or exc.title, request, **_report(exc))

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
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, f"{type(exc).__name__}: {exc}", request)
