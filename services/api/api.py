"""The gateway's public face for other services' command lines: the typed REST client and where the CLI finds
the running stack (``connect``: the API's URL and token, and Redis and S3 for the few direct commands).

Everything else in ``services.api`` (routes, the app) is private to it (enforced by import-linter, ``make lint``).
"""

from __future__ import annotations

from services.api.client import ApiClient
from services.api.connect import START_HINT, ConfigError, Endpoint, direct_env, resolve
from services.api.exceptions import ApiClientError

__all__ = ["START_HINT", "ApiClient", "ApiClientError", "ConfigError", "Endpoint", "direct_env", "resolve"]
