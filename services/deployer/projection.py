"""The deployments read model: every deployment, the history per target and what each target serves.

Keys (namespace ``ty:view:<ns>:deployments:``):
  ``deployments``          hash deployment_id -> JSON record (status, version, target, reason, timings)
  ``target:<name>``        list of deployment ids on that target, oldest first
  ``current``              hash target -> JSON {deployment_id, version_id, adapter_name, serving_name}
"""

from __future__ import annotations

import json
from typing import Any

import redis

from services.deployer.domain import SERVING_NAME, DeploymentStatus
from shared import streams
from shared.events import Event
from shared.projection import LIVE, View

NAME = "deployments"

_STATUS = {
    "deployment.requested": DeploymentStatus.REQUESTED,
    "deployment.pushed": DeploymentStatus.PUSHED,
    "deployment.verified": DeploymentStatus.VERIFIED,
    "deployment.failed": DeploymentStatus.FAILED,
    "deployment.rolled_back": DeploymentStatus.ROLLED_BACK,
}
_FINAL = {DeploymentStatus.VERIFIED, DeploymentStatus.FAILED, DeploymentStatus.ROLLED_BACK}


class DeploymentsProjection:
    name = NAME
    streams = (streams.DEPLOYMENTS,)

    def apply(self, view: View, event: Event) -> None:
        status = _STATUS.get(event.type)
        if status is None:
            return
        p = event.payload
        dep_id = p["deployment_id"]
        raw = view.hget("deployments", dep_id)
        rec: dict[str, Any] = json.loads(raw) if raw else {}
        at = event.occurred_at.isoformat()
        if status == DeploymentStatus.REQUESTED:
            if rec:
                return  # a repeated request changes nothing
            rec = {"deployment_id": dep_id, "version_id": p["version_id"], "target": p["target"],
                   "reason": p.get("reason", "manual"), "requested_at": at, "job_id": event.job_id,
                   "adapter_name": None, "error": None, "checked": None, "matched": None, "latency_ms": None,
                   "restored_version_id": None}
            view.pipe.rpush(view.key("target", p["target"]), dep_id)
        elif not rec:
            rec = {"deployment_id": dep_id, "version_id": p["version_id"], "target": p["target"],
                   "reason": None, "requested_at": None, "job_id": event.job_id}
            view.pipe.rpush(view.key("target", p["target"]), dep_id)
        if rec.get("status") in _FINAL and status not in _FINAL:
            return  # out-of-order: an outcome is never overwritten by an earlier step
        rec["status"] = status.value
        rec["updated_at"] = at
        if event.job_id and not rec.get("job_id"):
            rec["job_id"] = event.job_id
        if "adapter_name" in p:
            rec["adapter_name"] = p["adapter_name"]
        if status == DeploymentStatus.VERIFIED:
            rec.update(checked=p.get("checked"), matched=p.get("matched"), latency_ms=p.get("latency_ms"),
                       finished_at=at)
            current = {"deployment_id": dep_id, "version_id": p["version_id"],
                       "adapter_name": p["adapter_name"], "serving_name": SERVING_NAME}
            view.pipe.hset(view.key("current"), p["target"], json.dumps(current, sort_keys=True))
        elif status in (DeploymentStatus.FAILED, DeploymentStatus.ROLLED_BACK):
            rec.update(error=p.get("reason"), finished_at=at, restored_version_id=p.get("restored_version_id"))
        view.pipe.hset(view.key("deployments"), dep_id, json.dumps(rec, sort_keys=True))


def _view(r: redis.Redis, ns: str = LIVE) -> View:
    return View(r, NAME, ns)


def get_deployment(r: redis.Redis, deployment_id: str, ns: str = LIVE) -> dict[str, Any] | None:
    raw = _view(r, ns).hget("deployments", deployment_id)
    return json.loads(raw) if raw else None


def list_deployments(r: redis.Redis, target: str | None = None, ns: str = LIVE) -> list[dict[str, Any]]:
    """Deployments newest first, for one target or all."""
    view = _view(r, ns)
    if target is not None:
        ids = [i.decode() for i in r.lrange(view.key("target", target), 0, -1)]
        raws = r.hmget(view.key("deployments"), ids) if ids else []
        return [json.loads(x) for x in reversed(raws) if x]
    recs = [json.loads(v) for v in r.hvals(view.key("deployments"))]
    return sorted(recs, key=lambda d: d.get("requested_at") or d.get("updated_at") or "", reverse=True)


def current(r: redis.Redis, ns: str = LIVE) -> dict[str, dict[str, Any]]:
    """What each target serves: {target: {deployment_id, version_id, adapter_name, serving_name}}."""
    raw = r.hgetall(_view(r, ns).key("current"))
    return {k.decode(): json.loads(v) for k, v in raw.items()}
