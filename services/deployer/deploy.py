"""Running one deployment: preflight, push, load, verify, swap, alias; or restore and report why not.

Nothing on the target changes before the preflight has passed. Any failure before the new adapter is loaded
publishes ``deployment.failed``; any failure after it publishes ``deployment.rolled_back`` once the target
serves the previous adapter again under ``SERVING_NAME`` (which it did throughout: verification uses the
version's own adapter name, and the swap is a single in-place load).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from services.deployer import push, verify
from services.deployer.domain import SERVING_NAME, Plan, Transfer, adapter_name_for
from services.deployer.exceptions import (
    DeployerError,
    PreflightError,
    TargetError,
    UnknownTargetError,
    VerificationError,
)
from services.deployer.state import DeployerState, Serving
from services.deployer.target import TargetClient
from services.registry import api as registry_api
from services.registry.api import IntegrityError, NotFoundError, RegistryClient
from shared import storage
from shared.bus import publish
from shared.events import (
    DeploymentFailed,
    DeploymentPushed,
    DeploymentRequested,
    DeploymentRolledBack,
    DeploymentVerified,
    Event,
)
from shared.settings import DeployerSettings

log = logging.getLogger(__name__)


@dataclass
class Deployer:
    r: redis.Redis
    registry: RegistryClient
    settings: DeployerSettings
    transfer: Transfer = Transfer.UPLOAD  # for trainyard targets; vllm targets always use SHARED
    max_latency_ms: float | None = None  # median verification latency bound; None = request timeout
    _clients: dict[str, TargetClient] = field(default_factory=dict, repr=False)
    _tokenizers: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def state(self) -> DeployerState:
        return DeployerState(self.r)

    def client(self, target: str) -> TargetClient:
        if target not in self._clients:
            config = next((t for t in self.settings.targets if t.name == target), None)
            if config is None:
                known = ", ".join(t.name for t in self.settings.targets) or "none configured"
                raise UnknownTargetError(f"unknown target {target!r} (known: {known}; see TRAINYARD_TARGETS)")
            self._clients[target] = TargetClient(config, timeout_s=self.settings.request_timeout_s)
        return self._clients[target]

    def close(self) -> None:
        for c in self._clients.values():
            c.close()

    # -- the deployment -----------------------------------------------------------------------------
    def execute(self, event: Event) -> str:
        """Run the deployment requested by ``event``; returns the outcome event type."""
        req = DeploymentRequested.model_validate(event.payload)
        if self.state.is_done(req.deployment_id):
            log.info("deployment %s already ran; ignoring the repeat", req.deployment_id)
            return "skipped"
        loaded = swapped = False
        plan: Plan | None = None
        try:
            client = self.client(req.target)
            src = self._materialize(req.version_id)
            plan = self._prepare(req, src)
            client.health()
            lora_path = self._push(client, plan, src)
            loaded = True  # from here the target may hold the new adapter: a failure means restoring
            client.load_adapter(plan.adapter_name, lora_path)
            publish(self.r, Event.create("deployment.pushed", DeploymentPushed(
                deployment_id=req.deployment_id, version_id=req.version_id, target=req.target,
                adapter_name=plan.adapter_name), cause=event, job_id=plan.job_id))
            result = self._verify(client, plan)
            swapped = True
            self._swap(client, plan, lora_path)
        except Exception as exc:  # noqa: BLE001 - every failure becomes an outcome event, never a stuck request
            outcome = self._fail(event, req, plan, exc, loaded=loaded, swapped=swapped)
            self.state.mark_done(req.deployment_id)
            return outcome
        self._settle(client, req, plan, lora_path)
        # the registry's own alias write: S3 document first, then alias.moved (idempotent on redelivery)
        registry_api.move_alias(registry_api.Registry.attach(self.settings, self.r, self.registry), "production",
                                req.version_id, target=req.target, moved_by="deployer", cause=event)
        publish(self.r, Event.create("deployment.verified", DeploymentVerified(
            deployment_id=req.deployment_id, version_id=req.version_id, target=req.target,
            adapter_name=plan.adapter_name, checked=result.checked, matched=result.matched,
            latency_ms=result.latency_ms), cause=event, job_id=plan.job_id))
        self.state.mark_done(req.deployment_id)
        log.info("deployment %s verified: %s serves %s", req.deployment_id, req.target, req.version_id)
        return "deployment.verified"

    # -- steps --------------------------------------------------------------------------------------
    def _materialize(self, version_id: str) -> Path:
        dest = Path(self.settings.state_dir) / "deployer" / "versions" / storage.safe_relpath(version_id)
        try:
            return self.registry.materialize(version_id, dest).resolve()
        except (NotFoundError, IntegrityError) as exc:
            raise PreflightError(f"cannot fetch version {version_id} from the registry: {exc}") from exc

    def _prepare(self, req: DeploymentRequested, src: Path) -> Plan:
        manifest = self.registry.manifest(req.version_id)
        if manifest.get("kind") != "adapter":
            raise PreflightError(f"version {req.version_id} is a {manifest.get('kind')!r}, not an adapter")
        lineage = manifest.get("lineage") or {}
        job_id, step = lineage.get("job_id"), lineage.get("step")
        if not job_id or step is None:
            raise PreflightError(f"version {req.version_id} has no job_id/step in its lineage to verify against")
        snapshot = self.registry.get_json(storage.snapshot_key(job_id, int(step)))
        if snapshot is None:
            raise PreflightError(f"no evaluator snapshot {storage.snapshot_key(job_id, int(step))} for version "
                                 f"{req.version_id} yet (wait for snapshot.captured)")
        if snapshot.get("version_id") not in (None, req.version_id):
            raise PreflightError(f"snapshot of {job_id} step {step} belongs to version {snapshot['version_id']}")
        tracked = self.registry.get_json(storage.tracked_key(job_id))
        if tracked is None:
            raise PreflightError(f"no tracked examples document {storage.tracked_key(job_id)}")
        tokenizer = self._tokenizer(src, lineage)
        cases = verify.build_cases(snapshot, tracked, tokenizer, self.settings.verify_examples)
        return Plan(deployment_id=req.deployment_id, version_id=req.version_id, target=req.target,
                    adapter_name=adapter_name_for(req.version_id, lineage), files=manifest["files"], cases=cases,
                    max_tokens=int(snapshot.get("max_new_tokens", 48)), eos=tokenizer.eos_token, job_id=job_id)

    def _tokenizer(self, src: Path, lineage: dict[str, Any]) -> Any:
        from transformers import AutoTokenizer

        candidates = [src] if (src / "tokenizer_config.json").exists() else []
        if lineage.get("base_model"):
            candidates.append(lineage["base_model"])
        errors = []
        for path in candidates:
            key = str(path)
            if key not in self._tokenizers:
                try:
                    self._tokenizers[key] = AutoTokenizer.from_pretrained(key)
                except (OSError, ValueError) as exc:
                    errors.append(f"{key}: {exc}")
                    continue
            return self._tokenizers[key]
        raise PreflightError(f"no tokenizer for the version (adapter dir or base model): {'; '.join(errors)}")

    def _push(self, client: TargetClient, plan: Plan, src: Path) -> str:
        if client.config.kind == "vllm":
            return str(src)  # the vLLM box reads the same directory through a shared volume
        if self.transfer == Transfer.FETCH:
            urls = {f["path"]: self.registry.presigned_blob_url(f["sha256"]) for f in plan.files}
            return push.fetch(client, plan.files, urls)
        return push.upload(client, self.state, plan.version_id, src, plan.files)

    def _verify(self, client: TargetClient, plan: Plan) -> verify.VerifyResult:
        result = verify.run_checks(client, plan.adapter_name, plan.cases, plan.max_tokens, plan.eos)
        if not result.passed(self.settings.verify_threshold):
            raise VerificationError(result.describe(self.settings.verify_threshold))
        limit = self.max_latency_ms or self.settings.request_timeout_s * 1000
        if result.latency_ms is not None and result.latency_ms > limit:
            raise VerificationError(f"median completion latency {result.latency_ms:.0f} ms exceeds {limit:.0f} ms")
        return result

    def _swap(self, client: TargetClient, plan: Plan, lora_path: str) -> None:
        """Hot-swap the serving name to the new adapter and check it answers like the verified one."""
        client.load_adapter(SERVING_NAME, lora_path)
        client.health()
        first = plan.cases[0]
        got = verify.normalise(client.complete(SERVING_NAME, first.prompt, first.max_tokens or plan.max_tokens).text, plan.eos)
        if got != first.expected:
            raise VerificationError(f"after the swap {SERVING_NAME!r} answered {got[:80]!r}, "
                                    f"expected {first.expected[:80]!r}")

    def _settle(self, client: TargetClient, req: DeploymentRequested, plan: Plan, lora_path: str) -> None:
        """Record what serves now; keep the previous version resident, unload the one before it."""
        previous = self.state.serving(req.target)
        keep = previous.adapter_name if previous and previous.adapter_name != plan.adapter_name else None
        if keep is None and previous is not None:
            keep = previous.previous_adapter
        self.state.set_serving(req.target, Serving(req.deployment_id, req.version_id, plan.adapter_name, lora_path,
                                                   previous_adapter=keep))
        stale = previous.previous_adapter if previous else None
        if stale and stale not in (plan.adapter_name, keep):
            try:
                client.unload_adapter(stale)
            except DeployerError as exc:  # the deployment is verified; a leftover adapter only costs memory
                log.warning("could not unload old adapter %s from %s: %s", stale, req.target, exc)

    # -- failure ------------------------------------------------------------------------------------
    def _fail(self, event: Event, req: DeploymentRequested, plan: Plan | None, exc: Exception,
              *, loaded: bool, swapped: bool) -> str:
        reason = str(exc) if isinstance(exc, DeployerError) else f"{type(exc).__name__}: {exc}"
        job_id = plan.job_id if plan else None
        previous = self.state.serving(req.target)
        changed_target = loaded and not (isinstance(exc, TargetError) and not swapped)
        if plan is not None and loaded:
            reason += self._restore(req.target, plan, previous, swapped)
        if not changed_target:
            log.warning("deployment %s failed: %s", req.deployment_id, reason)
            publish(self.r, Event.create("deployment.failed", DeploymentFailed(
                deployment_id=req.deployment_id, version_id=req.version_id, target=req.target, reason=reason),
                cause=event, job_id=job_id))
            return "deployment.failed"
        log.warning("deployment %s rolled back: %s", req.deployment_id, reason)
        publish(self.r, Event.create("deployment.rolled_back", DeploymentRolledBack(
            deployment_id=req.deployment_id, version_id=req.version_id, target=req.target, reason=reason,
            restored_version_id=previous.version_id if previous else None), cause=event, job_id=job_id))
        return "deployment.rolled_back"

    def _restore(self, target: str, plan: Plan, previous: Serving | None, swapped: bool) -> str:
        """Put the target back as it was; returns a note for the reason if that did not fully work."""
        client = self.client(target)
        notes = []
        try:
            if swapped:
                if previous is not None:
                    client.load_adapter(SERVING_NAME, previous.lora_path)
                else:
                    client.unload_adapter(SERVING_NAME)
            if previous is None or previous.adapter_name != plan.adapter_name:
                client.unload_adapter(plan.adapter_name)
        except DeployerError as exc:
            notes.append(f"restoring the previous adapter failed too: {exc}")
            log.error("deployment %s: %s", plan.deployment_id, notes[-1])
        return "; " + "; ".join(notes) if notes else ""
