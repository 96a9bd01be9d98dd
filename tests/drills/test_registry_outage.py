"""Drill: the S3 server goes away for 30 s while a checkpoint is being stored. The upload is retried with
backoff and completes afterwards; the trainer's side (publishing checkpoints) is never blocked."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from services.registry.context import Registry
from services.registry.projection import list_versions
from services.stack.servers import S3Server
from shared import streams
from shared.bus import read_all
from shared.settings import RegistrySettings
from tests.support.registry import running, save_checkpoint, wait_for

ACCESS, SECRET = "drill", "drill-secret-key"


@pytest.mark.slow
def test_s3_outage_during_upload_is_retried_and_completes(redis_url: str, r: redis.Redis, tmp_path: Path) -> None:
    server = S3Server(tmp_path / "s3", ACCESS, SECRET).start()
    try:
        settings = RegistrySettings(dev=True, redis_url=redis_url, s3_endpoint=server.endpoint, s3_access_key=ACCESS,
                                    s3_secret_key=SECRET, bucket="drill", replica_bucket="drill-replica",
                                    state_dir=tmp_path / "state", multipart_threshold_mb=5)
        reg = Registry.open(settings, r)
        with running(reg):
            # ~24 MB of weights: a multipart upload in 5 MiB parts
            first = save_checkpoint(reg, tmp_path / "ckpt-10", 10, weights_bytes=24 * 1024 * 1024)
            wait_for(lambda: r.xpending(streams.CHECKPOINTS, streams.GROUP_REGISTRY)["pending"] >= 1,
                     every=0.01, what="the registry picked the checkpoint up")
            server.kill()
            down_at = time.monotonic()
            # the trainer keeps going: publishing its next checkpoint does not wait for S3
            t0 = time.monotonic()
            second = save_checkpoint(reg, tmp_path / "ckpt-20", 20)
            assert time.monotonic() - t0 < 2.0
            assert not [e for _, e in read_all(r, streams.REGISTRY) if e.type == "version.stored"]
            time.sleep(max(0.0, 30 - (time.monotonic() - down_at)))
            server.start()
            wait_for(lambda: len(list_versions(r)) == 2, timeout=120, what="both versions after the outage")
        stored = [e for _, e in read_all(r, streams.REGISTRY) if e.type == "version.stored"]
        assert [e.payload["checkpoint_event_id"] for e in stored] == [first.id, second.id]
        assert not list(read_all(r, streams.DEAD_LETTER))
        out = reg.primary.materialize(stored[0].payload["version_id"], tmp_path / "restored")
        assert (out / "adapter_model.safetensors").read_bytes() == (
            tmp_path / "ckpt-10" / "adapter_model.safetensors").read_bytes()
    finally:
        server.kill()
