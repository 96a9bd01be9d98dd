"""The API gateway and web UI: ``python -m services.api.main`` serves both on 127.0.0.1:8080.

``create_app`` only wires things: settings, clients, the live-feed hub, error handlers, metrics, routers
and the static UI. Each resource's routes live in ``services/api/routes/<resource>.py``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import redis
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from services.api import errors, observability
from services.api.hub import Hub
from services.api.observability import ApiMetrics
from services.api.routes import (
    datasets,
    deployments,
    events,
    evolution,
    health,
    jobs,
    playground,
    preview,
    queue,
    registry,
    storage,
    versions,
)
from services.registry.api import RegistryClient
from shared.settings import ApiSettings, CommonSettings, DeployerSettings, TargetConfig, load
from shared.storage import s3_client

STATIC = Path(__file__).parent / "static"


def load_targets(settings: ApiSettings) -> list[TargetConfig]:
    """The deployer's targets (``TRAINYARD_TARGETS``), read the same way the deployer reads them."""
    common = {k: getattr(settings, k) for k in CommonSettings.model_fields}
    return list(DeployerSettings(**common).targets)


def create_app(settings: ApiSettings, targets: list[TargetConfig] | None = None) -> FastAPI:
    hub = Hub(settings.redis_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        hub.stop()

    app = FastAPI(title="Trainyard API", version="0.1.0", lifespan=lifespan,
                  description="Queue LoRA jobs, watch the model learn, never lose a model, deploy safely. "
                              "Mutations need `Authorization: Bearer <token>`; errors are problem+json.")
    app.state.settings = settings
    app.state.redis = redis.Redis.from_url(settings.redis_url, health_check_interval=10)
    app.state.s3 = s3_client(settings)
    app.state.registry = RegistryClient(app.state.s3, settings.bucket)
    app.state.hub = hub
    app.state.metrics = ApiMetrics()
    app.state.targets = load_targets(settings) if targets is None else targets

    errors.install(app)
    observability.install(app, app.state.metrics)
    for module in (health, preview, playground, jobs, queue, datasets, versions, evolution, deployments, registry,
                   storage, events):
        app.include_router(module.router)
    app.include_router(deployments.targets_router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False, response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse(render_index(settings))

    return app


def render_index(settings: ApiSettings) -> str:
    """The single page; in dev mode it carries the dev token so the page can act without a login."""
    html = (STATIC / "index.html").read_text()
    config = {"dev": settings.dev, "devToken": settings.api_token if settings.dev else None}
    # JSON inside <script>: escape '<' so no string can close the tag.
    blob = json.dumps(config).replace("<", "\\u003c")
    return html.replace("/*TRAINYARD_CONFIG*/", f"window.TRAINYARD = {blob};")


def main() -> None:
    import uvicorn

    from shared.runtime import setup_logging, warn_about_replica

    settings = load(ApiSettings)
    setup_logging("api", settings.log_level)
    warn_about_replica("api", settings)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level.lower())


if __name__ == "__main__":
    main()
