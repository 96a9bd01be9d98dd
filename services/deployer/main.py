"""The deployer service: ``python -m services.deployer.main``.

One consumer (group ``deployer``) on DEPLOYMENTS, JOBS, REGISTRY and EVOLUTION runs deployments and job
deploy policies (``handlers.py``); one runner keeps the ``deployments`` projection up to date.
Targets come from ``TRAINYARD_TARGETS`` (JSON list of {name, url, token, kind}).
"""

from __future__ import annotations

import socket

import redis

from services.deployer.deploy import Deployer
from services.deployer.handlers import DeployerHandlers
from services.deployer.projection import DeploymentsProjection
from services.registry.api import RegistryClient
from shared import storage, streams
from shared.bus import Consumer, ConsumerConfig
from shared.projection import ProjectionRunner
from shared.runtime import connect_redis, serve, setup_logging
from shared.settings import DeployerSettings, load

STREAMS = (streams.DEPLOYMENTS, streams.JOBS, streams.REGISTRY, streams.EVOLUTION)


def build(settings: DeployerSettings, r: redis.Redis, consumer: str | None = None,
          ) -> tuple[Consumer, ProjectionRunner, Deployer]:
    registry = RegistryClient(storage.s3_client(settings), settings.bucket)
    registry.ensure_bucket()
    deployer = Deployer(r=r, registry=registry, settings=settings)
    config = ConsumerConfig(group=streams.GROUP_DEPLOYER, consumer=consumer or f"deployer-{socket.gethostname()}",
                            streams=STREAMS, claim_idle_ms=600_000)
    return (Consumer(r, config, DeployerHandlers(deployer).mapping()),
            ProjectionRunner(r, DeploymentsProjection()), deployer)


def main() -> None:
    settings = load(DeployerSettings)
    setup_logging("deployer", settings.log_level)
    r = connect_redis(settings.redis_url)
    consumer, runner, _ = build(settings, r)
    serve("deployer", settings, loops=[consumer, runner])


if __name__ == "__main__":
    main()
