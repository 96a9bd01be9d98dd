"""Per-job deploy policies through the deployer's handlers (real Redis and S3; no deployment is executed)."""

from __future__ import annotations

import pytest
import redis

from services.deployer.handlers import DeployerHandlers
from services.deployer.main import build
from services.deployer.state import DeployerState, Serving
from services.registry.client import RegistryClient
from shared import storage, streams
from shared.bus import read_all
from shared.events import (
    DatasetRef,
    Event,
    JobCompleted,
    JobQueued,
    SnapshotCaptured,
    VersionStored,
)
from shared.settings import DeployerSettings, TargetConfig

TARGETS = [TargetConfig(name="box", url="http://127.0.0.1:9", token="t"),
           TargetConfig(name="spare", url="http://127.0.0.1:9", token="t")]


@pytest.fixture
def handlers(r: redis.Redis, settings_kwargs: dict) -> DeployerHandlers:
    _, _, deployer = build(DeployerSettings(**settings_kwargs, targets=TARGETS), r, consumer="t")
    return DeployerHandlers(deployer)


def _store(registry: RegistryClient, job_id: str, step: int, eval_loss: float | None, spec: dict) -> str:
    version_id = f"{job_id}-v{step}"
    metrics = {} if eval_loss is None else {"eval_loss": eval_loss}
    registry.put_json(storage.manifest_key(version_id), {
        "version_id": version_id, "kind": "adapter", "files": [],
        "lineage": {"job_id": job_id, "step": step, "spec": spec, "metrics": metrics, "base_model": "/x"}})
    return version_id


def _run_job(h: DeployerHandlers, job_id: str, spec: dict, eval_loss: float | None,
             snapshot_first: bool = False) -> tuple[str, list[str]]:
    """Feed a job's life to the handlers; returns (final version, requested deployments after each event)."""
    ds = DatasetRef(name="d", path="/d", sha256="0" * 64, format="chat", n_examples=3)
    final = _store(h.deployer.registry, job_id, 20, eval_loss, spec)
    mid = _store(h.deployer.registry, job_id, 10, None, spec)
    events = [Event.create("job.queued", JobQueued(spec=spec, dataset=ds), job_id=job_id)]
    for vid, step, is_final in ((mid, 10, False), (final, 20, True)):
        events.append(Event.create("version.stored", VersionStored(
            version_id=vid, kind="adapter", manifest_key=storage.manifest_key(vid), files=[], step=step,
            final=is_final), job_id=job_id))
    snap = Event.create("snapshot.captured", SnapshotCaptured(version_id=final, step=20, key="k"), job_id=job_id)
    done = Event.create("job.completed", JobCompleted(step=20), job_id=job_id)
    events += [snap, done] if snapshot_first else [done, snap]
    seen = []
    for event in events:
        h.mapping()[event.type](event)
        seen.append(len(_requests(h.deployer.r)))
    return final, seen


def _requests(r: redis.Redis) -> list[dict]:
    return [e.payload for _, e in read_all(r, streams.DEPLOYMENTS) if e.type == "deployment.requested"]


def test_on_complete_waits_for_the_final_snapshot(handlers: DeployerHandlers, r: redis.Redis) -> None:
    final, seen = _run_job(handlers, "j1", {"deploy_policy": "on-complete", "deploy_target": "spare"}, 0.5)
    assert seen == [0, 0, 0, 0, 1]  # only after job.completed AND the final version's snapshot
    [req] = _requests(r)
    assert (req["version_id"], req["target"], req["reason"]) == (final, "spare", "on-complete")
    handlers.on_snapshot_captured(Event.create(  # a redelivery or a second snapshot does not deploy again
        "snapshot.captured", SnapshotCaptured(version_id=final, step=20, key="k"), job_id="j1"))
    assert len(_requests(r)) == 1


def test_on_complete_in_the_other_order_and_default_target(handlers: DeployerHandlers, r: redis.Redis) -> None:
    final, seen = _run_job(handlers, "j2", {"deploy_policy": "on-complete"}, 0.5, snapshot_first=True)
    assert seen[-1] == 1 and _requests(r)[0]["target"] == "box"


def test_manual_never_deploys(handlers: DeployerHandlers, r: redis.Redis) -> None:
    _run_job(handlers, "j3", {"deploy_policy": "manual"}, 0.1)
    _run_job(handlers, "j4", {}, 0.1)
    assert _requests(r) == []


def test_on_improvement_compares_with_production(handlers: DeployerHandlers, r: redis.Redis) -> None:
    spec = {"deploy_policy": "on-improvement", "deploy_target": "box"}
    prod = _store(handlers.deployer.registry, "prod", 5, 1.0, {})
    DeployerState(r).set_serving("box", Serving("dep-0", prod, "prod-s5", "/adapters/prod"))
    _run_job(handlers, "worse", spec, 1.2)
    assert _requests(r) == []
    assert DeployerState(r).job("worse")["triggered"].startswith("skipped: eval_loss 1.2 does not beat")
    final, _ = _run_job(handlers, "better", spec, 0.8)
    assert [q["version_id"] for q in _requests(r)] == [final]
    _run_job(handlers, "nometric", spec, None)
    assert len(_requests(r)) == 1
    assert "has no 'eval_loss'" in DeployerState(r).job("nometric")["triggered"]


def test_on_improvement_falls_back_to_the_evaluator_heldout_loss(handlers: DeployerHandlers, r: redis.Redis) -> None:
    spec = {"deploy_policy": "on-improvement", "deploy_target": "box"}
    registry = handlers.deployer.registry
    prod = _store(registry, "prod", 5, None, {})
    registry.put_json(storage.snapshot_key("prod", 5), {"aggregates": {"heldout": {"loss": 2.0}}})
    DeployerState(r).set_serving("box", Serving("dep-0", prod, "prod-s5", "/adapters/prod"))
    registry.put_json(storage.snapshot_key("new", 20), {"aggregates": {"heldout": {"loss": 1.5}}})
    final, _ = _run_job(handlers, "new", spec, None)
    assert [q["version_id"] for q in _requests(r)] == [final]
    assert DeployerState(r).job("new")["triggered"].startswith("auto-new-")

