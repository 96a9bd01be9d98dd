"""The deployments read model: every deployment, the history per target and what each target serves.

Keys (namespace ``ty:view:<ns>:deployments:``):
  ``deployments``          hash deployment_id -> JSON record (status, version, target, reason, timings)
  ``target:<name>``        list of deployment ids on that target, oldest first
  ``current``              hash target -> JSON {deployment_id, version_id, adapter_name, serving_name}
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import redis

from services.deployer.domain import SERVING_NAME, DeploymentStatus
from shared import events as ev
from shared import streams
from shared.events import Event
from shared.projection import LIVE, View

NAME = "deployments"

_FINAL = {DeploymentStatus.VERIFIED, DeploymentStatus.FAILED, DeploymentStatus.ROLLED_BACK}
Record = dict[str, Any]


def _new_record(view: View, event: Event, p: Any, requested: bool) -> Record:
    rec: Record = {"deployment_id": p.deployment_id, "version_id": p.version_id, "target": p.target,
                   "reason": p.reason if requested else None,
                   "requested_at": event.occurred_at.isoformat() if requested else None, "job_id": event.job_id}
    if requested:
        rec.update(adapter_name=None, error=None, checked=None, matched=None, latency_ms=None,
                   restored_version_id=None)
    view.pipe.rpush(view.key("target", p.target), p.deployment_id)
    return rec


def _nothing_more(view: View, event: Event, p: Any, rec: Record) -> None:
    """deployment.requested, deployment.pushed: the status (and adapter name) is all that changes."""


def _verified(view: View, event: Event, p: ev.DeploymentVerified, rec: Record) -> None:
    rec.update(checked=p.checked, matched=p.matched, latency_ms=p.latency_ms, finished_at=event.occurred_at.isoformat())
    current = {"deployment_id": p.deployment_id, "version_id": p.version_id, "adapter_name": p.adapter_name,
               "serving_name": SERVING_NAME}
    view.pipe.hset(view.key("current"), p.target, json.dumps(current, sort_keys=True))


def _ended(view: View, event: Event, p: ev.DeploymentFailed | ev.DeploymentRolledBack, rec: Record) -> None:
    rec.update(error=p.reason, finished_at=event.occurred_at.isoformat(),
               restored_version_id=getattr(p, "restored_version_id", None))


# event type -> (the status it records, what else it changes), each given the parsed payload
STEPS: dict[str, tuple[DeploymentStatus, Callable[[View, Event, Any, Record], None]]] = {
    "deployment.requested": (DeploymentStatus.REQUESTED, _nothing_more),
    "deployment.pushed": (DeploymentStatus.PUSHED, _nothing_more),
    "deployment.verified": (DeploymentStatus.VERIFIED, _verified),
    "deployment.failed": (DeploymentStatus.FAILED, _ended),
    "deployment.rolled_back": (DeploymentStatus.ROLLED_BACK, _ended),
}


class DeploymentsProjection:
    name = NAME
    streams = (streams.DEPLOYMENTS,)

    def apply(self, view: View, event: Event) -> None:
        step = STEPS.get(event.type)
        if step is None:
            return
        status, change = step
        p = event.typed()
        raw = view.hget("deployments", p.deployment_id)  # type: ignore[attr-defined]
        rec: Record = json.loads(raw) if raw else {}
        requested = status == DeploymentStatus.REQUESTED
        if requested and rec:
            return  # a repeated request changes nothing
        if not rec:
            rec = _new_record(view, event, p, requested)
        if rec.get("status") in _FINAL and status not in _FINAL:
            return  # out-of-order: an outcome is never overwritten by an earlier step
        rec["status"] = status.value
        rec["updated_at"] = event.occurred_at.isoformat()
        if event.job_id and not rec.get("job_id"):
            rec["job_id"] = event.job_id
        if "adapter_name" in event.payload:
            rec["adapter_name"] = event.payload["adapter_name"]
        change(view, event, p, rec)
        view.pipe.hset(view.key("deployments"), rec["deployment_id"], json.dumps(rec, sort_keys=True))


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
