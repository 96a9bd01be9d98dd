"""What the API and CLI call: request a deployment, roll a target back to an earlier deployment.

Both only publish ``deployment.requested``; the deployer service does the work and reports the outcome
(read it with ``services.deployer.projection.get_deployment``).
"""

from __future__ import annotations

import redis

from services.deployer.domain import DeploymentStatus
from services.deployer.exceptions import DeploymentNotFoundError, InvalidRequestError
from services.deployer.projection import current, get_deployment, list_deployments
from shared.bus import publish
from shared.events import DeploymentRequested, Event, new_id


def request_deployment(r: redis.Redis, version_id: str, target: str, reason: str = "manual",
                       *, deployment_id: str | None = None, job_id: str | None = None) -> str:
    """Ask the deployer to deploy ``version_id`` to ``target``; returns the deployment id."""
    if not version_id or not target:
        raise InvalidRequestError("a deployment needs a version id and a target name")
    dep_id = deployment_id or f"dep-{new_id()[:16]}"
    payload = DeploymentRequested(deployment_id=dep_id, version_id=version_id, target=target, reason=reason)
    publish(r, Event.create("deployment.requested", payload, job_id=job_id))
    return dep_id


def rollback(r: redis.Redis, target: str, to_deployment_id: str | None = None) -> str:
    """Redeploy the version of an earlier verified deployment on ``target`` (verified again on the way).

    Without ``to_deployment_id``: the newest verified deployment before the current one whose version differs
    from what the target serves now. Returns the new deployment id.
    """
    if to_deployment_id is not None:
        chosen = get_deployment(r, to_deployment_id)
        if chosen is None or chosen["target"] != target:
            raise DeploymentNotFoundError(f"no deployment {to_deployment_id!r} on target {target!r}")
        if chosen.get("status") != DeploymentStatus.VERIFIED.value:
            raise InvalidRequestError(
                f"deployment {to_deployment_id} was never verified ({chosen.get('status')}); pick a verified one")
    else:
        serving = current(r).get(target)
        if serving is None:
            raise DeploymentNotFoundError(f"target {target!r} has no verified deployment to roll back from")
        history = list_deployments(r, target)  # newest first
        ids = [d["deployment_id"] for d in history]
        older = history[ids.index(serving["deployment_id"]) + 1:] if serving["deployment_id"] in ids else []
        chosen = next((d for d in older if d.get("status") == DeploymentStatus.VERIFIED.value
                       and d["version_id"] != serving["version_id"]), None)
        if chosen is None:
            raise DeploymentNotFoundError(f"target {target!r} has no earlier verified deployment to roll back to")
    return request_deployment(r, chosen["version_id"], target, reason=f"rollback to {chosen['deployment_id']}",
                              job_id=chosen.get("job_id"))
