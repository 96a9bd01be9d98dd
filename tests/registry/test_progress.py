"""``version.upload_progress``: throttled events while a version's files upload, before its ``version.stored``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from services.registry.context import Registry
from services.registry.progress import UploadReporter
from shared import streams
from shared.bus import read_all
from shared.settings import RegistrySettings
from tests.support.registry import dropped_after, running, save_checkpoint, wait_for

MiB = 1024 * 1024


@pytest.fixture
def chatty(settings_kwargs: dict, r: redis.Redis, bucket: str) -> Iterator[Registry]:
    """A registry with 5 MiB parts that reports every part (no throttle)."""
    settings = RegistrySettings(**settings_kwargs, replica_bucket=f"{bucket}-replica", multipart_threshold_mb=5,
                                upload_progress_s=0)
    with dropped_after(Registry.open(settings, r)) as reg:
        yield reg


def registry_events(r: redis.Redis) -> list:
    return [e for _, e in read_all(r, streams.REGISTRY)]


def test_progress_events_precede_version_stored(chatty: Registry, tmp_path: Path) -> None:
    r = chatty.r
    with running(chatty):
        event = save_checkpoint(chatty, tmp_path / "ckpt", 10, weights_bytes=18 * MiB)
        wait_for(lambda: any(e.type == "version.stored" for e in registry_events(r)), timeout=120)
    types = [e.type for e in registry_events(r)]
    progress = [e for e in registry_events(r) if e.type == "version.upload_progress"]
    stored = next(e for e in registry_events(r) if e.type == "version.stored")
    assert len(progress) >= 4 and types.index("version.stored") > types.index("version.upload_progress")
    done = [e.payload["bytes_done"] for e in progress]
    assert done == sorted(done) and done[-1] == progress[-1].payload["bytes_total"] == stored.payload["size"]
    assert {e.payload["version_id"] for e in progress} == {stored.payload["version_id"]}
    assert {e.payload["checkpoint_event_id"] for e in progress} == {event.id}
    assert all(e.job_id == "job-1" and e.causation_id == event.id for e in progress)


def test_a_fast_upload_publishes_no_progress(reg: Registry, tmp_path: Path) -> None:
    with running(reg):
        save_checkpoint(reg, tmp_path / "ckpt", 10)
        wait_for(lambda: any(e.type == "version.stored" for e in registry_events(reg.r)), timeout=60)
    assert not [e for e in registry_events(reg.r) if e.type == "version.upload_progress"]


def test_reporter_throttles(reg: Registry) -> None:
    now = [0.0]
    rep = UploadReporter(reg, "ad-x", 100, every_s=1.0, clock=lambda: now[0])
    for t, n in ((0.3, 10), (0.9, 10), (1.2, 10), (1.5, 10), (2.3, 10), (2.4, 50)):
        now[0] = t
        rep("w.safetensors", n)
    sent = [e.payload["bytes_done"] for e in registry_events(reg.r) if e.type == "version.upload_progress"]
    assert sent == [30, 50, 100]  # after 1 s, then 1 s later, then the last one at 100 %
