"""The ``best`` alias follows what the evaluator measures: the held-out loss of its snapshots where the job has
held-out examples, else the tracked training examples' loss; a job spec's ``best_metric`` overrides it.
Real registry loops on real Redis and S3; checkpoints and snapshots arrive as events, as in production."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from services.registry.backup import best_status
from services.registry.context import Registry
from services.registry.projection import get_aliases, list_versions
from shared import storage, streams
from shared.bus import publish
from shared.events import CheckpointSaved, Event, FileEntry, SnapshotCaptured
from shared.settings import RegistrySettings
from tests.support.registry import dropped_after, running, wait_for, write_checkpoint


@pytest.fixture
def reg(settings_kwargs: dict, r: redis.Redis, bucket: str) -> Iterator[Registry]:
    settings = RegistrySettings(**settings_kwargs, replica_bucket=f"{bucket}-replica")
    assert settings.best_metric == "auto"  # the default
    with dropped_after(Registry.open(settings, r)) as reg:
        yield reg


def _checkpoints(reg: Registry, tmp_path: Path, job_id: str, spec: dict[str, Any] | None = None) -> list[str]:
    """Steps 10, 20, 30 of one job, with a train loss from the trainer that keeps falling (not what best uses)."""
    for step, loss in ((10, 2.0), (20, 1.0), (30, 0.5)):
        root = tmp_path / f"{job_id}-{step}"
        files = write_checkpoint(root, step, job_id=job_id, seed=step)
        publish(reg.r, Event.create("checkpoint.saved", CheckpointSaved(
            step=step, checkpoint_dir=str(root), files=[FileEntry(**f) for f in files], base_model="tiny-qwen3",
            dataset_sha256="0" * 64, spec={"max_steps": 30, **(spec or {})}, metrics={"loss": loss},
            final=step == 30, tracked_key=storage.tracked_key(job_id)), job_id=job_id))
    wait_for(lambda: len(list_versions(reg.r, job_id=job_id)) == 3, what="three versions")
    return [v["version_id"] for v in list_versions(reg.r, job_id=job_id)]


def _snapshot(reg: Registry, job_id: str, vid: str, step: int, train: dict, heldout: dict | None) -> None:
    aggregates = {"train": {"n": 4, **train}, "heldout": {"n": 2, **heldout} if heldout else {"n": 0, "loss": None}}
    publish(reg.r, Event.create("snapshot.captured", SnapshotCaptured(
        version_id=vid, step=step, key=storage.snapshot_key(job_id, step), aggregates=aggregates), job_id=job_id))


def _best_is(reg: Registry, vid: str) -> None:
    wait_for(lambda: get_aliases(reg.r).get("best") == vid, what=f"best -> {vid}")


def test_best_follows_the_heldout_loss_where_there_is_a_heldout_set(reg: Registry, tmp_path: Path) -> None:
    with running(reg):
        v10, v20, v30 = _checkpoints(reg, tmp_path, "job-h")
        assert "best" not in get_aliases(reg.r)  # the trainer's own train loss does not move it
        _snapshot(reg, "job-h", v10, 10, {"loss": 1.2}, {"loss": 2.0})
        _best_is(reg, v10)
        _snapshot(reg, "job-h", v20, 20, {"loss": 0.8}, {"loss": 1.0})
        _best_is(reg, v20)
        _snapshot(reg, "job-h", v30, 30, {"loss": 0.1}, {"loss": 1.5})  # overfits: train better, held-out worse
        wait_for(lambda: _all_handled(reg), what="the last snapshot handled")
    assert get_aliases(reg.r)["best"] == v20
    status = best_status(reg)
    assert (status["version_id"], status["metric"], status["value"]) == (v20, "heldout.loss", 1.0)
    assert "held-out loss" in status["rule"]


def test_best_follows_the_train_loss_without_heldout(reg: Registry, tmp_path: Path) -> None:
    with running(reg):
        v10, v20, v30 = _checkpoints(reg, tmp_path, "job-t")
        _snapshot(reg, "job-t", v10, 10, {"loss": 1.2}, None)
        _snapshot(reg, "job-t", v20, 20, {"loss": 0.4}, None)
        _snapshot(reg, "job-t", v30, 30, {"loss": 0.9}, None)
        _best_is(reg, v20)
    assert best_status(reg)["metric"] == "train.loss"


def test_job_spec_best_metric_overrides(reg: Registry, tmp_path: Path) -> None:
    with running(reg):
        v10, v20, v30 = _checkpoints(reg, tmp_path, "job-f", spec={"best_metric": "heldout.f1"})
        _snapshot(reg, "job-f", v10, 10, {"loss": 1.2}, {"loss": 1.0, "f1": 0.2})
        _snapshot(reg, "job-f", v20, 20, {"loss": 0.4}, {"loss": 0.5, "f1": 0.3})
        _snapshot(reg, "job-f", v30, 30, {"loss": 0.9}, {"loss": 0.9, "f1": 0.7})  # higher f1 is better
        _best_is(reg, v30)
    assert best_status(reg)["metric"] == "heldout.f1"


def _all_handled(reg: Registry) -> bool:
    """The registry's group has taken and acked every snapshot event."""
    last = reg.r.xrevrange(streams.EVOLUTION, count=1)[0][0]
    group = next(g for g in reg.r.xinfo_groups(streams.EVOLUTION) if g["name"] in (b"registry", "registry"))
    return group["last-delivered-id"] == last and group["pending"] == 0
