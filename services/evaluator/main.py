"""The evaluator service: ``python -m services.evaluator.main``.

Consumes ``job.started`` and ``version.stored`` (group ``evaluator`` on JOBS and REGISTRY), captures
evolution snapshots (see ``handlers`` and ``capture``) and runs the ``evolution`` projection
(``readmodel``) that the API reads.
"""

from __future__ import annotations

import socket

import redis

from services.evaluator.capture import Capturer
from services.evaluator.handlers import Handlers
from services.evaluator.metrics import SemanticScorer
from services.evaluator.models import ModelCache
from services.evaluator.readmodel import EvolutionProjection
from services.registry.api import RegistryClient
from shared import bus, streams
from shared.projection import ProjectionRunner
from shared.runtime import connect_redis, serve, setup_logging
from shared.settings import EvaluatorSettings, load
from shared.storage import s3_client


def build(settings: EvaluatorSettings, r: redis.Redis, consumer: str | None = None,
          warm_up: bool = False) -> tuple[bus.Consumer, ProjectionRunner]:
    """The snapshot consumer and the evolution projection runner of one evaluator process.

    ``warm_up`` loads MiniLM and runs it once now, so the first snapshot does not pay for it (the service
    does; tests leave it off)."""
    registry = RegistryClient(s3_client(settings), settings.bucket)
    registry.ensure_bucket()
    models = ModelCache(settings.device, settings.gpu_memory_budget_mb, settings.dtype)
    semantic = SemanticScorer(settings.embeddings, device=models.device, batch_size=settings.embeddings_batch_size)
    if warm_up:
        semantic.warm_up()
        models.warm_up()
    capturer = Capturer(settings, r, registry, models, semantic)
    handlers = Handlers(r, capturer)
    config = bus.ConsumerConfig(
        group=streams.GROUP_EVALUATOR,
        consumer=consumer or f"evaluator-{socket.gethostname()}",
        streams=(streams.JOBS, streams.REGISTRY),
        batch=10,
        claim_idle_ms=10 * 60_000,  # a snapshot can take minutes on a big model: reclaim only dead work
    )
    consumer_loop = bus.Consumer(r, config, handlers.table())
    runner = ProjectionRunner(r, EvolutionProjection(registry))
    return consumer_loop, runner


def main() -> None:
    settings = load(EvaluatorSettings)
    setup_logging("evaluator", settings.log_level)
    r = connect_redis(settings.redis_url)
    consumer, runner = build(settings, r, warm_up=True)
    serve("evaluator", settings, loops=[consumer, runner])


if __name__ == "__main__":
    main()
