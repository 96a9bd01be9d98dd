"""Errors the API turns into ``application/problem+json`` responses (see ``errors.py``)."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


class ApiError(Exception):
    """Base of the API's own errors; ``status`` is the HTTP status it maps to."""

    status = 500
    title = "Internal error"


class NotFound(ApiError):
    status, title = 404, "Not found"


class Unauthorized(ApiError):
    status, title = 401, "Unauthorized"


class Conflict(ApiError):
    status, title = 409, "Conflict"


class BadInput(ApiError):
    status, title = 422, "Invalid input"


class BackendUnavailable(ApiError):
    """A peer the request needs (an inference target) does not answer."""

    status, title = 503, "Back end not available"


class ApiClientError(Exception):
    """The CLI's view of an API error (or an unreachable API); the message is one line."""


class ApiUnreachable(ApiClientError):
    """The API did not answer at all (refused, timed out, unknown host); the message says what to run."""


def found(value: T | None, what: str) -> T:
    """``value``, or ``NotFound(what)`` when it is None (what a read function returns for an unknown id)."""
    if value is None:
        raise NotFound(what)
    return value
