"""Every projection of the system, for `trainyard rebuild` and the consistency checks of the drills."""

from __future__ import annotations

from shared.projection import Projection


def all_projections() -> list[Projection]:
    from services.deployer.projection import DeploymentsProjection
    from services.evaluator.readmodel import EvolutionProjection
    from services.registry.projection import VersionsProjection
    from services.trainer.projection import JobsProjection

    return [JobsProjection(), VersionsProjection(), EvolutionProjection(), DeploymentsProjection()]
