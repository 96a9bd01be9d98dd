"""The gateway's explicit table of service exceptions to HTTP statuses (services/api/errors.py)."""

from __future__ import annotations

from services.api.errors import STATUS, status_for_foreign
from services.deployer import api as deployer
from services.evaluator import api as evaluator
from services.registry import api as registry
from services.trainer import api as trainer


def test_listed_types_map_to_their_status() -> None:
    assert status_for_foreign(trainer.JobNotFound("j")) == 404
    assert status_for_foreign(trainer.InvalidTransition("x")) == 409
    assert status_for_foreign(trainer.DatasetError("x")) == 422
    assert status_for_foreign(registry.TrashedError("x")) == 409
    assert status_for_foreign(registry.NotFoundError("x")) == 404
    assert status_for_foreign(evaluator.InvalidQueryError("x")) == 422
    assert status_for_foreign(deployer.PreflightError("x")) == 409
    assert status_for_foreign(deployer.UnknownTargetError("x")) == 404


def test_subclass_maps_like_its_nearest_listed_base_and_others_are_not_mapped() -> None:
    class Gone(registry.NotFoundError):
        pass

    class NotFoundLookalike(Exception):  # the old class-name match would have called this a 404
        pass

    assert status_for_foreign(Gone("x")) == 404
    assert status_for_foreign(NotFoundLookalike("x")) is None
    assert status_for_foreign(registry.IntegrityError("x")) is None  # a corrupt blob is a 500, not a client error
    assert all(issubclass(t, Exception) and s in (404, 409, 422) for t, s in STATUS.items())
