"""Drill 3 of issue 18: kill -9 the registry mid-upload of a 1 GB version, then restart it.

The registry runs as the real service process (``python -m services.registry.main``) on the test's Redis and
S3. A checkpoint directory with a 1 GB safetensors file is announced by ``checkpoint.saved``; once its upload
is under way (``version.upload_progress`` shows bytes moving) the process is killed with SIGKILL. Then:
no manifest, no version and no blob exist (only the open multipart upload with its parts); a restarted
registry reclaims the redelivered ``checkpoint.saved``, keeps the parts already stored (verified against the
file) and sends only the rest; the manifest appears only after the blob is complete; the version's blob
hashes to its sha256.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from services.registry.context import Registry
from services.registry.upload import list_parts
from shared import storage, streams
from shared.bus import publish, read_all
from shared.settings import RegistrySettings
from tests.support.registry import checkpoint_event, wait_for, write_safetensors

ROOT = Path(__file__).resolve().parents[2]
GB = 1024**3
PART_MB = 16


def start_registry(env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "services.registry.main"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)


def registry_events(r: redis.Redis, type_: str) -> list:
    return [e for _, e in read_all(r, streams.REGISTRY) if e.type == type_]


def open_parts(reg: Registry, key: str) -> dict:
    uploads = reg.primary.s3._list_multipart_uploads(reg.primary.bucket, prefix=key).uploads  # noqa: SLF001
    assert len(uploads) == 1, uploads
    return list_parts(reg.primary.s3, reg.primary.bucket, key, uploads[0].upload_id)


def intact_parts(path: Path, parts: dict) -> list:
    """The stored parts whose bytes match the file's (a part cut off by the kill would not)."""
    size = PART_MB * 2**20
    good = []
    with open(path, "rb") as f:
        for number in sorted(parts):
            f.seek((number - 1) * size)
            if hashlib.md5(f.read(size), usedforsecurity=False).hexdigest() == parts[number].etag.strip('"'):
                good.append(parts[number])
    return good


def abort_open_uploads(reg: Registry) -> None:
    """Leave no incomplete upload behind (it would keep the test's bucket from being removed)."""
    for client in (reg.primary, reg.replica):
        try:
            for u in client.s3._list_multipart_uploads(client.bucket).uploads:  # noqa: SLF001
                client.s3._abort_multipart_upload(client.bucket, u.object_name, u.upload_id)  # noqa: SLF001
        except Exception:  # noqa: BLE001 - best-effort cleanup
            pass


@pytest.mark.slow
def test_kill_9_mid_upload_resumes_and_never_shows_a_partial_version(
        settings_kwargs: dict, r: redis.Redis, bucket: str, tmp_path: Path) -> None:
    settings = RegistrySettings(**settings_kwargs, replica_bucket=f"{bucket}-replica",
                                multipart_threshold_mb=PART_MB, upload_progress_s=0.2)
    reg = Registry.open(settings, r)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINYARD_")}
    env.update({f"TRAINYARD_{k.upper()}": str(v) for k, v in settings_kwargs.items()})
    env.update(TRAINYARD_DEV="1", TRAINYARD_REPLICA_BUCKET=f"{bucket}-replica",
               TRAINYARD_MULTIPART_THRESHOLD_MB=str(PART_MB), TRAINYARD_UPLOAD_PROGRESS_S="0.2")

    ckpt = tmp_path / "checkpoint-500"
    ckpt.mkdir()
    write_safetensors(ckpt / "model.safetensors", {"model.embed_tokens.weight": ("BF16", [GB // 2048, 1024])})
    (ckpt / "config.json").write_text('{"model_type": "qwen3"}')
    (ckpt / "trainyard_job.json").write_text('{"job_id": "full-job", "step": 500}')
    files = [{"path": p.name, "sha256": storage.sha256_file(p), "size": p.stat().st_size}
             for p in storage.list_files(ckpt)]
    weights = next(f for f in files if f["path"] == "model.safetensors")
    assert weights["size"] > GB
    key = storage.blob_key(weights["sha256"])
    event = checkpoint_event("full-job", ckpt, 500, files)
    log = tmp_path / "registry.log"
    proc = start_registry(env, log)
    try:
        publish(r, event)
        # mid-upload: at least a quarter of the bytes are on the server, and no version exists yet
        wait_for(lambda: any(e.payload["bytes_done"] >= weights["size"] // 4
                             for e in registry_events(r, "version.upload_progress")),
                 timeout=300, every=0.02, what="a quarter of the upload")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        progress = registry_events(r, "version.upload_progress")
        version_id = progress[-1].payload["version_id"]
        assert progress[-1].payload["checkpoint_event_id"] == event.id
        assert progress[-1].payload["bytes_total"] == sum(f["size"] for f in files)
        assert not reg.primary.has_manifest(version_id) and not registry_events(r, "version.stored")
        assert not reg.primary.has_blob(weights["sha256"]), "a partial blob is visible"
        kept_bytes = sum(p.size for p in intact_parts(ckpt / "model.safetensors", open_parts(reg, key)))
        assert kept_bytes >= weights["size"] // 4 - PART_MB * 2**20 * 3, kept_bytes

        proc = start_registry(env, log)
        deadline = time.monotonic() + 600
        while not registry_events(r, "version.stored"):
            # the manifest (the version) never exists before its blob is complete
            if reg.primary.has_manifest(version_id):
                assert reg.primary.has_blob(weights["sha256"], weights["size"]), "manifest before its blob"
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "no version.stored after the restart"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        abort_open_uploads(reg)

    (stored,) = registry_events(r, "version.stored")
    assert stored.payload["version_id"] == version_id and stored.payload["checkpoint_event_id"] == event.id
    small = sum(f["size"] for f in files if f["path"] == "trainyard_job.json")  # after the weights, in path order
    # the parts found on the server were kept, not sent again (a part in flight at the kill may have landed
    # after the listing above: it is kept too)
    sent = stored.payload["bytes_uploaded"]
    assert sent <= weights["size"] - kept_bytes + small, (sent, kept_bytes)
    assert sent >= weights["size"] - kept_bytes - 3 * PART_MB * 2**20, (sent, kept_bytes)  # 3 parts in flight
    assert "resumed upload" in log.read_text()
    assert reg.primary.hash_blob(weights["sha256"]) == weights["sha256"]
    manifest = reg.primary.manifest(version_id)
    assert {f["path"]: f["sha256"] for f in manifest["files"]} == {f["path"]: f["sha256"] for f in files}
    assert not reg.primary.s3._list_multipart_uploads(reg.primary.bucket, prefix=key).uploads  # noqa: SLF001
