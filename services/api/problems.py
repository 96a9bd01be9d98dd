"""OpenAPI documentation of the problem+json error responses."""

from __future__ import annotations

from typing import Any

from services.api.schemas import Problem

_P = {"model": Problem, "content": {"application/problem+json": {}}}

READ_ERRORS: dict[int | str, dict[str, Any]] = {401: {**_P, "description": "reads need a token here"}}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {**_P, "description": "unknown id (named in detail)"}}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {**_P, "description": "missing or wrong bearer token"},
    404: {**_P, "description": "unknown id (named in detail)"},
    409: {**_P, "description": "not allowed in the current state"},
    422: {**_P, "description": "invalid body (the field is named)"},
}
INVALID_QUERY: dict[int | str, dict[str, Any]] = {422: {**_P, "description": "invalid query parameter (named)"}}
