"""The registry service: ``python -m services.registry.main``.

Loops (each a thread under ``shared.runtime.serve``):
  1. consumer group ``registry`` on CHECKPOINTS, REGISTRY and EVOLUTION -> ``handlers.py``
     (checkpoint.saved -> version.stored; dataset.stored; snapshot.captured -> ``best``);
  2. the replica worker, group ``registry-replica`` on REGISTRY -> ``replica.py``;
  3. the versions projection -> ``projection.py``.
"""

from __future__ import annotations

import os
import socket

from services.registry import handlers
from services.registry.context import Registry
from services.registry.projection import VersionsProjection
from services.registry.replica import replica_consumer
from shared import streams
from shared.bus import Consumer, ConsumerConfig
from shared.projection import ProjectionRunner
from shared.runtime import Loop, serve, setup_logging
from shared.settings import RegistrySettings, load

GROUP = streams.GROUP_REGISTRY


def build_loops(reg: Registry, consumer_name: str | None = None) -> list[Loop]:
    name = consumer_name or f"{socket.gethostname()}-{os.getpid()}"
    config = ConsumerConfig(group=GROUP, consumer=name,
                            streams=(streams.CHECKPOINTS, streams.REGISTRY, streams.EVOLUTION))
    return [
        Consumer(reg.r, config, handlers.handlers(reg)),
        replica_consumer(reg, consumer=f"replica-{name}"),
        ProjectionRunner(reg.r, VersionsProjection()),
    ]


def main() -> None:
    settings = load(RegistrySettings)
    setup_logging("registry", settings.log_level)
    reg = Registry.open(settings)
    serve("registry", settings, build_loops(reg))


if __name__ == "__main__":
    main()
