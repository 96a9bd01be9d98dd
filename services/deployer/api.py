"""The deployer's public face: the deployments projection and its reads, the commands that request a
deployment or a rollback (both publish ``deployment.requested``), and the deployer's exceptions.

Everything else in ``services.deployer`` is private to it (enforced by import-linter, ``make lint``).
"""

from __future__ import annotations

from services.deployer.commands import request_deployment, rollback
from services.deployer.exceptions import (
    DeployerError,
    DeploymentNotFoundError,
    InvalidRequestError,
    PreflightError,
    TargetError,
    UnknownTargetError,
    VerificationError,
)
from services.deployer.projection import DeploymentsProjection, current, get_deployment, list_deployments
from services.deployer.push import upload as upload_adapter
from services.deployer.state import DeployerState
from services.deployer.target import TargetClient

__all__ = [
    "DeployerError", "DeployerState", "DeploymentNotFoundError", "DeploymentsProjection", "InvalidRequestError",
    "PreflightError", "TargetClient", "TargetError", "UnknownTargetError", "VerificationError", "current",
    "get_deployment", "list_deployments", "request_deployment", "rollback", "upload_adapter",
]
