"""The deployer's reactions to events, all in one place.

* ``deployment.requested`` -> run the deployment (``Deployer.execute``).
* ``job.queued`` -> remember the job's deploy policy and target from its spec.
* ``version.stored`` (adapter) / ``job.completed`` / ``snapshot.captured`` -> gather the facts a policy needs;
  once a job completed and its final version has a snapshot, ``on-complete`` requests a deployment and
  ``on-improvement`` does so only if the chosen metric beats the version in production on that target.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from services.deployer import policy
from services.deployer.commands import request_deployment
from services.deployer.deploy import Deployer
from services.deployer.domain import DeployPolicy
from services.deployer.state import DeployerState
from services.registry.api import NotFoundError
from shared import storage
from shared.bus import Handler, receives
from shared.events import DeploymentRequested, Event, JobCompleted, JobQueued, SnapshotCaptured, VersionStored

log = logging.getLogger(__name__)


@dataclass
class DeployerHandlers:
    deployer: Deployer

    @property
    def state(self) -> DeployerState:
        return self.deployer.state

    def mapping(self) -> dict[str, Handler]:
        return {
            "deployment.requested": self.on_deployment_requested,
            "job.queued": self.on_job_queued,
            "job.completed": self.on_job_completed,
            "version.stored": self.on_version_stored,
            "snapshot.captured": self.on_snapshot_captured,
        }

    # -- handlers -----------------------------------------------------------------------------------
    @receives(DeploymentRequested)
    def on_deployment_requested(self, event: Event, p: DeploymentRequested) -> None:
        self.deployer.execute(event)

    @receives(JobQueued)
    def on_job_queued(self, event: Event, p: JobQueued) -> None:
        if not event.job_id:
            return
        spec = p.spec
        self.state.update_job(event.job_id, policy=policy.parse_policy(spec).value,
                              target=spec.get("deploy_target"), metric=spec.get("deploy_metric"))

    @receives(JobCompleted)
    def on_job_completed(self, event: Event, p: JobCompleted) -> None:
        if not event.job_id:
            return
        self.state.update_job(event.job_id, completed=True, completed_step=p.step)
        self._maybe_deploy(event.job_id, event)

    @receives(VersionStored)
    def on_version_stored(self, event: Event, p: VersionStored) -> None:
        if p.kind != "adapter":
            return
        job_id = event.job_id or self._lineage(p.version_id).get("job_id")
        if not job_id:
            return
        job = self.state.job(job_id)
        versions = {**job.get("versions", {}), str(p.step or 0): p.version_id}
        fields: dict[str, Any] = {"versions": versions}
        if p.final:
            fields["final_version"] = p.version_id
        self.state.update_job(job_id, **fields)
        self._maybe_deploy(job_id, event)

    @receives(SnapshotCaptured)
    def on_snapshot_captured(self, event: Event, p: SnapshotCaptured) -> None:
        version_id = p.version_id
        if not version_id:
            return  # the step-0 baseline of the base model
        self.state.add_snapshot(version_id)
        job_id = event.job_id or self._lineage(version_id).get("job_id")
        if job_id:
            self._maybe_deploy(job_id, event)

    # -- policy -------------------------------------------------------------------------------------
    def _lineage(self, version_id: str) -> dict[str, Any]:
        try:
            return self.deployer.registry.manifest(version_id).get("lineage") or {}
        except NotFoundError:
            return {}

    def _final_version(self, job: dict[str, Any]) -> str | None:
        if job.get("final_version"):
            return job["final_version"]
        versions = job.get("versions") or {}
        step = job.get("completed_step")
        if step is not None and str(step) in versions:
            return versions[str(step)]
        return None

    def _maybe_deploy(self, job_id: str, cause: Event) -> None:
        job = self.state.job(job_id)
        final = self._final_version(job)
        if final is None or not job.get("completed") or job.get("triggered"):
            return
        lineage = self._lineage(final)
        spec = lineage.get("spec") or {}
        mode = DeployPolicy(job["policy"]) if job.get("policy") else policy.parse_policy(spec)
        if mode == DeployPolicy.MANUAL or not self.state.snapshot_captured(final):
            return
        targets = [t.name for t in self.deployer.settings.targets]
        target = job.get("target") or spec.get("deploy_target") or (targets[0] if targets else None)
        if target is None:
            log.warning("job %s wants %s deployment but no target is configured", job_id, mode.value)
            self.state.update_job(job_id, triggered="no target configured")
            return
        if mode == DeployPolicy.ON_IMPROVEMENT:
            chosen = job.get("metric") or spec.get("deploy_metric")
            metrics = (chosen,) if chosen else policy.DEFAULT_METRICS
            metric = next((m for m in metrics if self._metric(final, m) is not None), metrics[0])
            decision = policy.improvement(metric, self._metric(final, metric), self._production_metric(target, metric))
            log.info("job %s on-improvement: %s", job_id, decision.reason)
            if not decision.deploy:
                self.state.update_job(job_id, triggered=f"skipped: {decision.reason}")
                return
        dep_id = f"auto-{job_id}-{final[:16]}"
        request_deployment(self.deployer.r, final, target, reason=mode.value, deployment_id=dep_id, job_id=job_id)
        self.state.update_job(job_id, triggered=dep_id)

    def _metric(self, version_id: str, metric: str) -> float | None:
        lineage = self._lineage(version_id)
        aggregates: dict[str, Any] = {}
        if lineage.get("job_id") and lineage.get("step") is not None:
            snap = self.deployer.registry.get_json(storage.snapshot_key(lineage["job_id"], int(lineage["step"])))
            aggregates = (snap or {}).get("aggregates") or {}
        return policy.metric_value(metric, lineage.get("metrics") or {}, aggregates)

    def _production_metric(self, target: str, metric: str) -> float | None:
        serving = self.state.serving(target)
        return self._metric(serving.version_id, metric) if serving else None
