"""Adapters to the other services' read functions and commands, imported lazily.

The API reads projections and S3 documents through the modules named in docs/contracts.md and writes by
calling the owning service's commands. Those modules are imported on first use so the gateway starts (and
answers 503 with a clear message) even where a service is not installed; errors they raise are turned
into the API's own errors by ``call``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar

from services.api.errors import status_for_foreign
from services.api.exceptions import ApiError, BackendUnavailable, BadInput, Conflict, NotFound

T = TypeVar("T")

TRAINER_PROJECTION = "services.trainer.projection"
TRAINER_SUBMIT = "services.trainer.submit"
TRAINER_CONTROL = "services.trainer.control"
TRAINER_DATASETS = "services.trainer.datasets"
REGISTRY_PROJECTION = "services.registry.projection"
REGISTRY_COMMANDS = "services.registry.commands"
REGISTRY_CONTEXT = "services.registry.context"
EVOLUTION = "services.evaluator.readmodel"
DEPLOYER_PROJECTION = "services.deployer.projection"
DEPLOYER_COMMANDS = "services.deployer.commands"

_BY_STATUS: dict[int, type[ApiError]] = {404: NotFound, 409: Conflict, 422: BadInput}


def module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:  # not installed, or installed but broken: either way not usable now
        raise BackendUnavailable(f"{name} is not available: {exc}") from exc


def function(module_name: str, name: str) -> Callable[..., Any]:
    fn = getattr(module(module_name), name, None)
    if fn is None:
        raise BackendUnavailable(f"{module_name}.{name} is not available in this version")
    return fn


def call(module_name: str, name: str, /, *args: Any, **kwargs: Any) -> Any:
    """Call ``module_name.name(*args, **kwargs)``, mapping the owner's exceptions to API errors."""
    fn = function(module_name, name)
    try:
        return fn(*args, **kwargs)
    except ApiError:
        raise
    except Exception as exc:
        status = status_for_foreign(exc)
        if status is None:
            raise
        err = _BY_STATUS[status](str(exc) or type(exc).__name__)
        err.report = getattr(exc, "report", None)  # type: ignore[attr-defined]
        raise err from exc


def available(module_name: str) -> bool:
    try:
        module(module_name)
        return True
    except BackendUnavailable:
        return False



def registry_context(app_state: Any) -> Any:
    """The registry's ``Registry`` context (settings, Redis, primary and replica clients), opened once."""
    ctx = getattr(app_state, "registry_ctx", None)
    if ctx is None:
        opener = function(REGISTRY_CONTEXT, "Registry").open
        ctx = opener(app_state.settings, app_state.redis, ensure=False)
        app_state.registry_ctx = ctx
    return ctx
