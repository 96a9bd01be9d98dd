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


def call_with(module_name: str, name: str, /, *, positional: tuple[str, ...] = (), **available: Any) -> Any:
    """Call a command passing, by name, those of ``available`` its signature takes.

    Commands of the registry and deployer take different mixes of (settings, r, s3, client, ...); this
    binds what the function asks for, so the API keeps working while their signatures settle.
    """
    import inspect

    fn = function(module_name, name)
    params = inspect.signature(fn).parameters
    aliases = {"redis": "r", "client": "registry", "registry_client": "registry", "minio": "s3",
               "s3_client": "s3", "target_name": "target", "vid": "version_id"}
    kwargs: dict[str, Any] = {}
    args: list[Any] = []
    for pname, p in params.items():
        key = pname if pname in available else aliases.get(pname, pname)
        if key not in available:
            if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise BackendUnavailable(f"{module_name}.{name} needs {pname!r}, which the API cannot supply")
            continue
        if p.kind == p.POSITIONAL_ONLY or pname in positional:
            args.append(available[key])
        else:
            kwargs[pname] = available[key]
    return call(module_name, name, *args, **kwargs)
