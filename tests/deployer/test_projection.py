"""Deployments projection and commands on a real Redis: history, current, rollback choice, rebuild."""

from __future__ import annotations

import pytest
import redis

from services.deployer.commands import request_deployment, rollback
from services.deployer.exceptions import DeploymentNotFoundError, InvalidRequestError
from services.deployer.projection import DeploymentsProjection, current, get_deployment, list_deployments
from shared.bus import publish
from shared.events import DeploymentFailed, DeploymentPushed, DeploymentRolledBack, DeploymentVerified, Event
from shared.projection import ProjectionRunner, rebuild


def _verify(r: redis.Redis, dep: str, version: str, target: str = "box") -> None:
    publish(r, Event.create("deployment.pushed", DeploymentPushed(
        deployment_id=dep, version_id=version, target=target, adapter_name=f"a-{version}")))
    publish(r, Event.create("deployment.verified", DeploymentVerified(
        deployment_id=dep, version_id=version, target=target, adapter_name=f"a-{version}", checked=3, matched=3,
        latency_ms=12.5)))


def test_history_current_and_outcomes(r: redis.Redis) -> None:
    d1 = request_deployment(r, "v1", "box")
    _verify(r, d1, "v1")
    d2 = request_deployment(r, "v2", "box", reason="on-complete")
    publish(r, Event.create("deployment.rolled_back", DeploymentRolledBack(
        deployment_id=d2, version_id="v2", target="box", reason="1/3 predictions matched",
        restored_version_id="v1")))
    d3 = request_deployment(r, "v3", "other")
    publish(r, Event.create("deployment.failed", DeploymentFailed(
        deployment_id=d3, version_id="v3", target="other", reason="target other is unreachable")))
    runner = ProjectionRunner(r, DeploymentsProjection())
    assert runner.catch_up() == 7

    assert [d["deployment_id"] for d in list_deployments(r, "box")] == [d2, d1]
    assert get_deployment(r, d1)["status"] == "verified" and get_deployment(r, d1)["matched"] == 3
    rolled = get_deployment(r, d2)
    assert rolled["status"] == "rolled_back" and rolled["restored_version_id"] == "v1"
    assert rolled["reason"] == "on-complete" and "1/3" in rolled["error"]
    assert get_deployment(r, d3)["status"] == "failed"
    assert current(r) == {"box": {"deployment_id": d1, "version_id": "v1", "adapter_name": "a-v1",
                                  "serving_name": "production"}}
    assert get_deployment(r, "nope") is None
    assert len(list_deployments(r)) == 3

    [report] = rebuild(r, [DeploymentsProjection()])
    assert report.equal and report.keys == 4, report.differing  # deployments, current, 2 target lists


def test_rollback_picks_the_previous_verified_version(r: redis.Redis) -> None:
    runner = ProjectionRunner(r, DeploymentsProjection())
    with pytest.raises(DeploymentNotFoundError):
        rollback(r, "box")
    d1 = request_deployment(r, "v1", "box")
    _verify(r, d1, "v1")
    d2 = request_deployment(r, "v2", "box")
    publish(r, Event.create("deployment.failed", DeploymentFailed(
        deployment_id=d2, version_id="v2", target="box", reason="x")))
    d3 = request_deployment(r, "v3", "box")
    _verify(r, d3, "v3")
    runner.catch_up()

    new = rollback(r, "box")
    runner.catch_up()
    rec = get_deployment(r, new)
    assert rec["version_id"] == "v1" and rec["reason"] == f"rollback to {d1}" and rec["status"] == "requested"

    explicit = rollback(r, "box", to_deployment_id=d3)
    runner.catch_up()
    assert get_deployment(r, explicit)["version_id"] == "v3"
    with pytest.raises(InvalidRequestError, match="never verified"):
        rollback(r, "box", to_deployment_id=d2)
    with pytest.raises(DeploymentNotFoundError, match="no deployment"):
        rollback(r, "elsewhere", to_deployment_id=d1)


def test_repeated_request_and_late_step_change_nothing(r: redis.Redis) -> None:
    dep = request_deployment(r, "v1", "box", deployment_id="dep-fixed")
    _verify(r, dep, "v1")
    request_deployment(r, "v1", "box", deployment_id="dep-fixed")  # a policy that published twice
    publish(r, Event.create("deployment.pushed", DeploymentPushed(
        deployment_id=dep, version_id="v1", target="box", adapter_name="a-v1")))  # late, out of order
    ProjectionRunner(r, DeploymentsProjection()).catch_up()
    assert [d["deployment_id"] for d in list_deployments(r, "box")] == ["dep-fixed"]
    assert get_deployment(r, dep)["status"] == "verified"
    with pytest.raises(InvalidRequestError):
        request_deployment(r, "", "box")
