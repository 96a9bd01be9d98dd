"""Registry commands on real Redis + S3: aliases, protection, trash/restore/purge, and the drills."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from services.registry import commands
from services.registry.context import Registry
from services.registry.exceptions import ProtectedError, PurgeRefusedError, TrashedError
from services.registry.projection import get_aliases, get_version, list_versions
from shared import storage
from shared.settings import RegistrySettings
from tests.support.registry import dropped_after, running, save_checkpoint, wait_for


@pytest.fixture
def reg(settings_kwargs: dict, r: redis.Redis, bucket: str) -> Iterator[Registry]:
    """The folder's ``reg`` with a trash retention of 7 days; ``best`` follows the checkpoints' eval_loss here."""
    settings = RegistrySettings(**settings_kwargs, best_metric="eval_loss", replica_bucket=f"{bucket}-replica",
                                trash_retention_days=7)
    with dropped_after(Registry.open(settings, r)) as reg:
        yield reg


@pytest.fixture
def three(reg: Registry, tmp_path: Path) -> list[str]:
    """Three stored, replicated checkpoint versions of one job (steps 10, 20, 30)."""
    with running(reg):
        for step, loss in ((10, 2.0), (20, 1.0), (30, 1.5)):
            save_checkpoint(reg, tmp_path / f"ckpt-{step}", step, metrics={"eval_loss": loss})
        wait_for(lambda: len(list_versions(reg.r)) == 3 and all(v["replicas"] for v in list_versions(reg.r)),
                 what="three replicated versions")
    return [v["version_id"] for v in list_versions(reg.r)]


def _weights(reg: Registry, vid: str) -> str:
    return next(f["sha256"] for f in reg.primary.manifest(vid)["files"] if f["path"].endswith(".safetensors"))


def _catch_up(reg: Registry) -> None:
    from services.registry.projection import VersionsProjection
    from shared.projection import ProjectionRunner

    ProjectionRunner(reg.r, VersionsProjection()).catch_up()


def test_protected_versions_refuse_deletion_and_unprotected_go_to_trash_and_back(
        reg: Registry, three: list[str]) -> None:
    v10, v20, v30 = three  # best -> v20, latest -> v30
    commands.move_alias(reg, "production", v10, target="local")
    commands.protect(reg, v20, reason="paper results")
    for vid, why in ((v10, "deployed to local"), (v20, "paper results"), (v30, "'latest'")):
        with pytest.raises(ProtectedError, match="refusing to delete") as exc:
            commands.trash(reg, vid)
        assert why in str(exc.value)
    commands.move_alias(reg, "production:local", v30)  # v10 no longer deployed
    commands.trash(reg, v10)
    _catch_up(reg)
    assert [v["version_id"] for v in list_versions(reg.r)] == [v20, v30]
    assert get_version(reg.r, v10)["status"] == "trashed"
    with pytest.raises(TrashedError):
        commands.move_alias(reg, "mine", v10)
    commands.restore(reg, v10)
    commands.move_alias(reg, "mine", v10)
    _catch_up(reg)
    assert get_aliases(reg.r)["mine"] == v10 and get_aliases(reg.r)["production:local"] == v30
    assert get_version(reg.r, v10)["protected"] and get_version(reg.r, v20)["protected_by"] == [
        "pinned: paper results", "alias best"]


def test_purge_refuses_recent_or_unreplicated_and_needs_exact_override(reg: Registry, three: list[str]) -> None:
    v10 = three[0]
    with pytest.raises(PurgeRefusedError, match="not in the trash"):
        commands.purge(reg, v10)
    commands.trash(reg, v10)
    with pytest.raises(PurgeRefusedError, match="retention is 7 days"):
        commands.purge(reg, v10)
    # age the trash entry past the retention, then lose the replica copy of one blob
    state = reg.primary.get_state(v10)
    reg.primary.put_state(v10, {**state, "trashed_at": (datetime.now(UTC) - timedelta(days=8)).isoformat()})
    blob = _weights(reg, v10)
    reg.replica.delete_key(storage.blob_key(blob))
    with pytest.raises(PurgeRefusedError, match="no verified copy in the replica") as exc:
        commands.purge(reg, v10)
    assert "retention" not in str(exc.value)
    with pytest.raises(PurgeRefusedError, match="does not name"):
        commands.purge(reg, v10, override=three[1])
    # the override skips the retention period, never the replica check: this is the only verified copy
    with pytest.raises(PurgeRefusedError, match="only copy; no override skips this check"):
        commands.purge(reg, v10, override=v10)
    assert v10 in reg.primary.list_version_ids() and reg.primary.has_blob(blob)
    commands.replicate_pending(reg)
    result = commands.purge(reg, v10, override=v10)
    assert result.override and result.blobs_deleted >= 1
    assert v10 not in reg.primary.list_version_ids()
    _catch_up(reg)
    assert get_version(reg.r, v10) is None and len(list_versions(reg.r, include_trashed=True)) == 2


def test_force_skips_retention_only_when_replicated(reg: Registry, three: list[str]) -> None:
    v10 = three[0]
    reg.replica.delete_key(storage.manifest_key(v10))  # the replica lost its copy: the primary holds the only one
    commands.trash(reg, v10)
    with pytest.raises(PurgeRefusedError, match="no verified copy in the replica"):
        commands.purge(reg, v10, override=v10)  # trashed just now, and no replica copy
    commands.replicate_pending(reg)
    result = commands.purge(reg, v10, override=v10)  # replicated: the override skips the 7-day retention
    assert result.override and v10 not in reg.primary.list_version_ids() and reg.replica.has_manifest(v10)


def test_purge_after_retention_with_verified_replica(reg: Registry, three: list[str]) -> None:
    v10 = three[0]
    commands.trash(reg, v10)
    state = reg.primary.get_state(v10)
    reg.primary.put_state(v10, {**state, "trashed_at": (datetime.now(UTC) - timedelta(days=8)).isoformat()})
    result = commands.purge(reg, v10)
    assert not result.override and result.bytes_freed > 0
    assert reg.replica.has_manifest(v10)  # the replica keeps its copy


def test_verify_finds_deleted_and_corrupt_blobs_and_repair_restores_them(reg: Registry, three: list[str],
                                                                      tmp_path: Path) -> None:
    import io

    v10, v20, _ = three
    gone, bad = _weights(reg, v10), _weights(reg, v20)  # unique per checkpoint (the config blob is shared)
    reg.primary.delete_key(storage.blob_key(gone))
    reg.primary.s3.put_object(reg.primary.bucket, storage.blob_key(bad), io.BytesIO(b"bit rot"), 7)
    report = commands.verify(reg)
    assert report.missing == [f"blob:{gone}"] and report.corrupt == [f"blob:{bad}"]
    assert report.affected_versions == sorted([v10, v20]) and not report.repaired
    repaired = commands.verify(reg, repair=True)
    assert sorted(repaired.repaired) == sorted([f"blob:{gone}", f"blob:{bad}"]) and not repaired.unrepaired
    clean = commands.verify(reg)
    assert not clean.missing and not clean.corrupt and clean.checked_blobs == repaired.checked_blobs
    reg.primary.materialize(v10, tmp_path / "v10")  # verifies every sha256
    _catch_up(reg)
    from services.registry.projection import last_verify_failure

    assert last_verify_failure(reg.r)["repaired"] == repaired.repaired


def test_flushall_then_rebuild_from_s3_gives_same_versions_aliases_lineage(reg: Registry, three: list[str]) -> None:
    v10, v20, v30 = three
    commands.move_alias(reg, "production:local", v20)
    commands.move_alias(reg, "mine", v30)
    commands.protect(reg, v30, reason="keep")
    commands.trash(reg, v10)  # must come back trashed, with its original trash time
    _catch_up(reg)
    before_versions, before_aliases = list_versions(reg.r, include_trashed=True), get_aliases(reg.r)
    reg.r.flushall()
    assert list_versions(reg.r) == [] and get_aliases(reg.r) == {}
    report = commands.rebuild_from_s3(reg)
    assert report.versions == 3 and report.aliases == 4
    assert list_versions(reg.r, include_trashed=True) == before_versions
    assert get_aliases(reg.r) == before_aliases
    assert commands.rebuild_from_s3(reg).republished == 0  # idempotent on a healthy view
    assert get_version(reg.r, v10)["status"] == "trashed" and get_version(reg.r, v30)["pinned"]
    assert get_version(reg.r, v20)["lineage"]["parent_version_id"] == v10
