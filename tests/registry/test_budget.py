"""Drill 1, our user's day, on real Redis + S3: a long job is running, the bucket is over budget, and someone
runs every deletion Trainyard offers. No version is left without a verified copy, and the running job keeps
everything the budget may not touch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from services.registry import commands
from services.registry.budget import storage_apply, storage_plan
from services.registry.context import Registry
from services.registry.exceptions import NotFoundError, ProtectedError, PurgeRefusedError
from services.registry.projection import VersionsProjection, list_versions
from services.registry.replica import replica_has
from shared import storage
from shared.projection import ProjectionRunner
from shared.settings import RegistrySettings
from tests.support.registry import dropped_after, running, save_checkpoint, wait_for


@pytest.fixture
def reg(settings_kwargs: dict, r: redis.Redis, bucket: str) -> Iterator[Registry]:
    settings = RegistrySettings(**settings_kwargs, replica_bucket=f"{bucket}-replica", bucket_budget_gb=0.0,
                                keep_last=2)
    with dropped_after(Registry.open(settings, r)) as reg:
        yield reg


def _catch_up(reg: Registry) -> None:
    ProjectionRunner(reg.r, VersionsProjection()).catch_up()


def _versions_of(reg: Registry, job: str) -> list[dict]:
    return list_versions(reg.r, job_id=job)


def test_every_deletion_at_once_never_takes_the_only_copy(reg: Registry, tmp_path: Path) -> None:
    dirs: dict[str, Path] = {}
    with running(reg):
        for job, steps in (("old", range(10, 70, 10)), ("long", range(100, 900, 100))):
            for step in steps:
                dirs[f"{job}-{step}"] = tmp_path / job / f"checkpoint-{step}"
                save_checkpoint(reg, dirs[f"{job}-{step}"], step, job_id=job, metrics={"loss": 5.0 - step / 1000})
        wait_for(lambda: len(list_versions(reg.r)) == 14 and all(v["replicas"] for v in list_versions(reg.r)),
                 what="14 replicated versions")
    stored = {v["version_id"]: reg.primary.manifest(v["version_id"]) for v in list_versions(reg.r)}
    old = [v["version_id"] for v in _versions_of(reg, "old")]
    long_ = [v["version_id"] for v in _versions_of(reg, "long")]
    # the replica silently lost one old version, and one of the running job's versions too
    lost = {old[1], long_[2]}
    for vid in lost:
        reg.replica.delete_key(storage.manifest_key(vid))

    # 1. the budget: over it (budget 0), the plan thins only the finished job's intermediates
    plan = storage_plan(reg, running_jobs={"long"})
    assert plan.over_budget and {d.version_id for d in plan.removals} == {old[0], old[1], old[2], old[3]}
    report = storage_apply(reg, running_jobs={"long"})
    assert sorted(report.removed) == sorted([old[0], old[2], old[3]])
    assert "no verified copy in the replica" in report.refused[old[1]]
    _catch_up(reg)
    assert old[1] in {v["version_id"] for v in list_versions(reg.r)}  # restored from the trash, still active

    # 2. gc over every local checkpoint folder, applied
    items = commands.gc(reg, sorted(dirs.values()), dry_run=False)
    freed = {Path(i.path).name for i in items if i.removed}
    assert dirs["old-20"].exists() and dirs["long-300"].exists()  # their versions lack a replica copy
    assert {"checkpoint-20", "checkpoint-300"}.isdisjoint(freed) and len(freed) == 14 - 2 - 3

    # 3. alias moves, then trash + purge --force of every version, by hand
    commands.move_alias(reg, "latest", old[-1])
    commands.move_alias(reg, "best", old[-1])
    for vid in stored:
        try:
            commands.trash(reg, vid)
            commands.purge(reg, vid, override=vid)
        except (ProtectedError, PurgeRefusedError, NotFoundError):  # refused, or already purged by the budget
            pass

    # nothing is lost: every version is in the primary or hash-verified in the replica,
    # and the versions without a replica copy never left the primary
    for vid, manifest in stored.items():
        assert reg.primary.has_manifest(vid) or replica_has(reg, manifest, deep=True), vid
    for vid in lost:
        assert reg.primary.has_manifest(vid) and all(reg.primary.has_blob(f["sha256"]) for f in stored[vid]["files"])
