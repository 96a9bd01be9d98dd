"""FastAPI dependencies: the bearer-token check and typed access to the app's engine, store and metrics."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from services.inference.engine import Engine
from services.inference.metrics import Metrics
from services.inference.uploads import UploadStore
from shared.settings import InferenceSettings


def require_token(request: Request) -> None:
    settings: InferenceSettings = request.app.state.settings
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), settings.token.encode()):
        raise HTTPException(status_code=401, detail="missing or wrong bearer token",
                            headers={"WWW-Authenticate": "Bearer"})


def _engine(request: Request) -> Engine:
    return request.app.state.engine


def _store(request: Request) -> UploadStore:
    return request.app.state.uploads


def _metrics(request: Request) -> Metrics:
    return request.app.state.metrics


def _settings(request: Request) -> InferenceSettings:
    return request.app.state.settings


EngineDep = Annotated[Engine, Depends(_engine)]
StoreDep = Annotated[UploadStore, Depends(_store)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]
SettingsDep = Annotated[InferenceSettings, Depends(_settings)]
Authorized = [Depends(require_token)]
