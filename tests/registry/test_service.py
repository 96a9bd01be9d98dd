"""The registry service end to end on real Redis + S3: checkpoint.saved -> one verified version."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from services.registry.context import Registry
from services.registry.projection import get_aliases, get_version, list_versions
from shared import streams
from shared.bus import publish, read_all
from shared.settings import RegistrySettings
from tests.support.registry import dropped_after, running, save_checkpoint, wait_for


@pytest.fixture
def reg(settings_kwargs: dict, r: redis.Redis, bucket: str) -> Iterator[Registry]:
    """The folder's ``reg``, with ``best`` following the checkpoints' eval_loss (the default follows snapshots)."""
    settings = RegistrySettings(**settings_kwargs, best_metric="eval_loss", replica_bucket=f"{bucket}-replica")
    with dropped_after(Registry.open(settings, r)) as reg:
        yield reg


def stored_events(r: redis.Redis) -> list:
    return [e for _, e in read_all(r, streams.REGISTRY) if e.type == "version.stored"]


def test_checkpoint_becomes_one_verified_version_even_when_redelivered(reg: Registry, tmp_path: Path) -> None:
    with running(reg):
        event = save_checkpoint(reg, tmp_path / "ckpt-10", 10, metrics={"eval_loss": 1.5})
        wait_for(lambda: len(stored_events(reg.r)) == 1, what="version.stored")
        stored = stored_events(reg.r)[0]
        vid = stored.payload["version_id"]
        assert stored.payload["checkpoint_event_id"] == event.id and stored.causation_id == event.id
        assert stored.payload["kind"] == "adapter" and stored.payload["step"] == 10
        assert stored.payload["bytes_uploaded"] == sum(f["size"] for f in stored.payload["files"])
        publish(reg.r, event)  # the same event delivered again (a producer retry)
        reg.r.xadd(streams.CHECKPOINTS, {"type": event.type, "event": event.to_json()})
        # the view follows, with lineage, latest and best
        view = wait_for(lambda: get_version(reg.r, vid), what="view")
        wait_for(lambda: get_aliases(reg.r).get("best") == vid, what="best alias")
    assert len(stored_events(reg.r)) == 1
    assert len(list_versions(reg.r)) == 1
    assert reg.primary.list_version_ids() == [vid]
    assert get_aliases(reg.r) == {"best": vid, "latest": vid}
    assert view["lineage"]["job_id"] == "job-1" and view["lineage"]["metrics"] == {"eval_loss": 1.5}
    out = reg.primary.materialize(vid, tmp_path / "restored")
    for f in (tmp_path / "ckpt-10").iterdir():
        assert (out / f.name).read_bytes() == f.read_bytes()


def test_versions_chain_lineage_latest_and_best(reg: Registry, tmp_path: Path) -> None:
    with running(reg):
        save_checkpoint(reg, tmp_path / "c10", 10, metrics={"eval_loss": 2.0})
        save_checkpoint(reg, tmp_path / "c20", 20, metrics={"eval_loss": 1.0})
        save_checkpoint(reg, tmp_path / "c30", 30, metrics={"eval_loss": 1.4})
        wait_for(lambda: len(list_versions(reg.r)) == 3, what="three versions")
        wait_for(lambda: all(v["replicas"] for v in list_versions(reg.r)), what="replicated")
    v10, v20, v30 = list_versions(reg.r)
    assert [v["step"] for v in (v10, v20, v30)] == [10, 20, 30]
    assert v20["lineage"]["parent_version_id"] == v10["version_id"]
    assert v30["lineage"]["parent_version_id"] == v20["version_id"]
    assert get_aliases(reg.r) == {"best": v20["version_id"], "latest": v30["version_id"]}
    assert v20["protected"] and v30["protected"] and not v10["protected"]
    for v in (v10, v20, v30):
        assert reg.replica.has_manifest(v["version_id"])
        for f in v["files"]:
            assert reg.replica.hash_blob(f["sha256"]) == f["sha256"]


def test_missing_checkpoint_dir_is_retried_then_dead_lettered_with_reason(reg: Registry, tmp_path: Path) -> None:
    import shutil

    event = save_checkpoint(reg, tmp_path / "gone", 5)
    shutil.rmtree(tmp_path / "gone")
    with running(reg):  # the bus retries 5 times, 0.5 s apart, then dead-letters with the error
        dead = wait_for(lambda: [e for _, e in read_all(reg.r, streams.DEAD_LETTER)], timeout=30, what="dead letter")
    assert "is missing" in dead[0].payload["error"] and event.id in dead[0].payload["fields"]["event"]
    assert stored_events(reg.r) == []
    assert reg.primary.list_version_ids() == []
