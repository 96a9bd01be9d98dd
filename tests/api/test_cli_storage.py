"""``trainyard storage plan|apply`` as the user runs them (subprocesses of the console script) against a real
gateway on real Redis + S3: the plan names every version with its reasons and sizes, apply removes exactly the
planned ones (each a trash + purge event), and an unfinished job keeps everything."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from services.registry.projection import VersionsProjection, list_versions
from shared import streams
from shared.events import Event, JobQueued
from shared.projection import ProjectionRunner
from tests.api.test_cli_registry import as_json, running_gateway, trainyard
from tests.support.registry import running, save_checkpoint, wait_for


def _queued(r: redis.Redis, job_id: str) -> None:
    from services.trainer.projection import JobsProjection
    from shared.bus import publish

    spec = {"name": job_id, "base_model": "tiny"}
    publish(r, Event.create("job.queued", JobQueued(spec=spec, dataset={"name": job_id, "sha256": "0" * 64, "path": "x.jsonl", "format": "chat", "n_examples": 1},
                                                    priority="default", source="test"), job_id=job_id))
    ProjectionRunner(r, JobsProjection()).catch_up()


@pytest.fixture
def gateway(settings_kwargs: dict, r: redis.Redis, bucket: str, tmp_path: Path) -> Iterator[dict]:
    with running_gateway(settings_kwargs, r, bucket, tmp_path, bucket_budget_gb=0.0, keep_last=1) as gw:
        yield gw


def test_plan_then_apply_over_budget(gateway: dict, tmp_path: Path) -> None:
    env, reg = gateway["env"], gateway["reg"]
    with running(reg):
        for job in ("done", "live"):
            for step in (10, 20, 30):
                save_checkpoint(reg, tmp_path / job / f"checkpoint-{step}", step, job_id=job,
                                metrics={"loss": 1.0 + step / 100})
        wait_for(lambda: len(list_versions(reg.r)) == 6 and all(v["replicas"] for v in list_versions(reg.r)),
                 what="six replicated versions")
    _queued(reg.r, "live")  # an unfinished job: everything of it stays
    done = {v["step"]: v["version_id"] for v in list_versions(reg.r, job_id="done")}

    plan = as_json(trainyard(env, "storage", "plan", "--json"))
    gone = {d["version_id"] for d in plan["decisions"] if d["remove"]}
    assert gone == {done[20]} and plan["over_budget"]  # 10 is the job's best loss, 30 its latest
    why = {d["version_id"]: d["reasons"] for d in plan["decisions"]}
    assert "the job's best loss" in why[done[10]] and "the job's latest" in why[done[30]]
    assert all("its job is running" in why[v["version_id"]] for v in list_versions(reg.r, job_id="live"))
    human = trainyard(env, "storage", "plan", "--all")
    assert human.returncode == 0 and "remove" in human.stdout and done[20] in human.stdout, human.stderr

    res = as_json(trainyard(env, "storage", "apply", "--json"))
    assert res["removed"] == [done[20]] and res["bytes_freed"] > 0 and res["refused"] == {}
    assert not reg.primary.has_manifest(done[20]) and reg.replica.has_manifest(done[20])
    types = [json.loads(f[b"event"])["type"] for _, f in reg.r.xrange(streams.REGISTRY)]
    assert types.count("version.trashed") == 1 and types.count("version.purged") == 1
    ProjectionRunner(reg.r, VersionsProjection()).catch_up()
    assert as_json(trainyard(env, "storage", "plan", "--json"))["decisions"] and \
        not any(d["remove"] for d in as_json(trainyard(env, "storage", "plan", "--json"))["decisions"])
