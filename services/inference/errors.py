"""Maps the service's exceptions onto HTTP statuses with an OpenAI-shaped error body.

Body: ``{"error": {"message": str, "type": str, "code": int, ...details}}``; details (e.g. ``file`` and
``mismatches`` on a 422 upload commit, ``received`` on a 409 upload offset) sit next to ``message``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.inference import exceptions as ex

log = logging.getLogger(__name__)

STATUS: dict[type[ex.InferenceError], int] = {
    ex.NotReadyError: 503,
    ex.BadRequestError: 400,
    ex.ModelNotFoundError: 404,
    ex.AdapterPathError: 400,
    ex.PickledWeightsError: 400,
    ex.IncompatibleAdapterError: 409,
    ex.AdapterLoadError: 400,
    ex.OutOfMemoryError: 507,
    ex.UploadNotFoundError: 404,
    ex.UploadConflictError: 409,
    ex.UploadTooLargeError: 413,
    ex.ChecksumMismatchError: 422,
    ex.FetchError: 502,
}


def status_of(exc: BaseException) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def error_body(exc: BaseException) -> dict[str, Any]:
    """The JSON error for ``exc`` (also used inside SSE streams)."""
    code = status_of(exc)
    message = str(exc.args[0]) if exc.args else type(exc).__name__
    details = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else {}
    if code == 500:
        message = f"internal error: {message}"
    return {"error": {"message": message, "type": type(exc).__name__, "code": code, **details}}


def error_response(status: int, message: str, type_: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": type_, "code": status}}, status_code=status,
                        headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(ex.InferenceError)
    async def _domain(_: Request, exc: ex.InferenceError) -> JSONResponse:
        return JSONResponse(error_body(exc), status_code=status_of(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
        return error_response(400, "invalid request: " + "; ".join(parts), "invalid_request_error")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), "http_error", headers=exc.headers)

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse(error_body(exc), status_code=500)
