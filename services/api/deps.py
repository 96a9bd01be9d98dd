"""Dependencies handlers take as plain parameters: settings, Redis, S3 / registry client, token checks."""

from __future__ import annotations

import hmac
from typing import Annotated

import redis
from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from minio import Minio

from services.api.exceptions import Unauthorized
from services.api.hub import Hub
from services.registry import api as registry_api
from services.registry.api import RegistryClient
from shared.settings import ApiSettings

bearer = HTTPBearer(auto_error=False, description="the API token (TRAINYARD_API_TOKEN)")


def get_settings(request: Request) -> ApiSettings:
    return request.app.state.settings


def get_redis(request: Request) -> redis.Redis:
    return request.app.state.redis


def get_s3(request: Request) -> Minio:
    return request.app.state.s3


def get_registry(request: Request) -> RegistryClient:
    return request.app.state.registry


def get_registry_ctx(request: Request) -> registry_api.Registry:
    """The registry's command context (settings, Redis, primary and replica clients), opened once."""
    state = request.app.state
    ctx = getattr(state, "registry_ctx", None)
    if ctx is None:
        ctx = state.registry_ctx = registry_api.Registry.open(state.settings, state.redis, ensure=False)
    return ctx


def get_hub(request: Request) -> Hub:
    return request.app.state.hub


def _token_ok(settings: ApiSettings, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(token.encode(), settings.api_token.encode())


def require_token(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    """Every mutation: a bearer token equal to ``ApiSettings.api_token``, else 401."""
    token = creds.credentials if creds else None
    if not _token_ok(request.app.state.settings, token):
        raise Unauthorized("a valid bearer token is required" if token else "missing bearer token")
    return token or ""


def check_read(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    token: Annotated[str | None, Query(include_in_schema=False)] = None,
) -> None:
    """Reads: open unless ``ApiSettings.open_reads`` is False (then a token, header or ``?token=``)."""
    settings: ApiSettings = request.app.state.settings
    if settings.open_reads:
        return
    given = creds.credentials if creds else token
    if not _token_ok(settings, given):
        raise Unauthorized("reads need a valid bearer token on this server")


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
RedisDep = Annotated[redis.Redis, Depends(get_redis)]
S3Dep = Annotated[Minio, Depends(get_s3)]
RegistryDep = Annotated[RegistryClient, Depends(get_registry)]
HubDep = Annotated[Hub, Depends(get_hub)]
RegistryCtxDep = Annotated[registry_api.Registry, Depends(get_registry_ctx)]
TokenDep = Annotated[str, Depends(require_token)]
READ = [Depends(check_read)]
WRITE = [Depends(require_token)]


def page(offset: Annotated[int, Query(ge=0, description="items to skip")] = 0,
         limit: Annotated[int, Query(ge=1, le=1000, description="items per page")] = 50) -> tuple[int, int]:
    return offset, limit


PageDep = Annotated[tuple[int, int], Depends(page)]
