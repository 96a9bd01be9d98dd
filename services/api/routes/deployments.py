"""Deployments and targets: history, current adapter per target, deploy, roll back."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from services.api.deps import READ, WRITE, PageDep, RedisDep
from services.api.exceptions import NotFound, found
from services.api.problems import NOT_FOUND, READ_ERRORS, WRITE_ERRORS
from services.api.schemas import (
    DeploymentAccepted,
    DeploymentCreate,
    DeploymentPublic,
    Page,
    RollbackCreate,
    TargetPublic,
    paginate,
)
from services.deployer import api as deployer
from services.registry import api as registry_api
from shared.settings import TargetConfig

router = APIRouter(prefix="/api/deployments", tags=["deployments"])
targets_router = APIRouter(prefix="/api/targets", tags=["targets"])


def configured_targets(request: Request) -> list[TargetConfig]:
    return request.app.state.targets


def known_target(request: Request, name: str) -> TargetConfig:
    for t in configured_targets(request):
        if t.name == name:
            return t
    raise NotFound(f"no target {name} (configured: {', '.join(t.name for t in configured_targets(request)) or 'none'})")


@router.get("", response_model=Page[DeploymentPublic], dependencies=READ, responses=READ_ERRORS)
def list_deployments(r: RedisDep, page: PageDep, target: Annotated[str | None, Query()] = None) -> dict:
    """Deployment history, newest first as the deployer's projection orders it."""
    items = deployer.list_deployments(r, target=target)
    return paginate(items, *page)


@router.get("/{deployment_id}", response_model=DeploymentPublic, dependencies=READ, responses={**READ_ERRORS, **NOT_FOUND})
def get_deployment(deployment_id: str, r: RedisDep) -> dict:
    return found(deployer.get_deployment(r, deployment_id), f"no deployment {deployment_id}")


@router.post("", response_model=DeploymentAccepted, status_code=202, dependencies=WRITE, responses=WRITE_ERRORS)
def deploy(body: DeploymentCreate, request: Request, r: RedisDep) -> dict:
    """Request a deployment of a version to a target (the deployer pushes, verifies, then swaps)."""
    known_target(request, body.target)
    found(registry_api.get_version(r, body.version_id), f"no version {body.version_id}")
    dep_id = deployer.request_deployment(r, body.version_id, body.target, reason=body.reason)
    return {"deployment_id": dep_id, "target": body.target}


@targets_router.get("", response_model=list[TargetPublic], dependencies=READ, responses=READ_ERRORS)
def list_targets(request: Request, r: RedisDep) -> list[dict[str, Any]]:
    """Configured targets (tokens never shown) with the adapter each one serves."""
    current = deployer.current(r)
    return [{"name": t.name, "url": t.url, "kind": t.kind, "current": current.get(t.name)}
            for t in configured_targets(request)]


@targets_router.get("/{target}/history", response_model=Page[DeploymentPublic], dependencies=READ, responses={**READ_ERRORS, **NOT_FOUND})
def target_history(target: str, request: Request, r: RedisDep, page: PageDep) -> dict:
    known_target(request, target)
    return paginate(deployer.list_deployments(r, target=target), *page)


@targets_router.post("/{target}/rollback", response_model=DeploymentAccepted, status_code=202,
                     dependencies=WRITE, responses=WRITE_ERRORS)
def rollback(target: str, body: RollbackCreate, request: Request, r: RedisDep) -> dict:
    """Roll the target back to an earlier deployment (the previous verified one by default)."""
    known_target(request, target)
    if body.to_deployment_id is not None and deployer.get_deployment(r, body.to_deployment_id) is None:
        raise NotFound(f"no deployment {body.to_deployment_id}")
    result = deployer.rollback(r, target, to_deployment_id=body.to_deployment_id)
    dep_id = result if isinstance(result, str) else None
    return {"deployment_id": dep_id, "target": target, "result": result if not isinstance(result, str) else None}
