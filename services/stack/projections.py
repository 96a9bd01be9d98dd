"""Every projection of the system, for `trainyard rebuild` and the consistency checks of the drills."""

from __future__ import annotations

from shared.projection import Projection
from shared.settings import CommonSettings


def all_projections(settings: CommonSettings) -> list[Projection]:
    from services.deployer.api import DeploymentsProjection
    from services.evaluator.api import EvolutionProjection
    from services.registry.api import RegistryClient, VersionsProjection
    from services.trainer.api import JobsProjection
    from shared.storage import s3_client

    registry = RegistryClient(s3_client(settings), settings.bucket)
    return [JobsProjection(), VersionsProjection(), EvolutionProjection(registry), DeploymentsProjection()]
