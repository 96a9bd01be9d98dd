"""Registry benchmarks: ``python -m bench.bench_registry``.

* ``checkpoint_to_version``: p50 seconds from publishing ``checkpoint.saved`` (demo-sized LoRA adapter of
  the tiny Qwen3) to ``version.stored``, with the registry service running; baseline = bare minio
  ``fput_object`` of the same files.
* ``upload_throughput``: our verified ``put_blob`` vs a bare ``fput_object`` of the same file, alternating,
  in the same run (size: BENCH_UPLOAD_MB, default 1024).
* ``dedup_reupload``: bytes uploaded when the same base model is stored a second time.

Starts its own redis-server and SeaweedFS in a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import redis

from bench.common import record
from services.registry.context import Registry
from services.stack.servers import RedisServer, S3Server
from shared import storage, streams
from shared.bus import publish
from shared.modeling import build_tiny_model
from shared.settings import RegistrySettings
from tests.support.lora import make_lora_adapter
from tests.support.registry import checkpoint_event, running, wait_for

CMD = "python -m bench.bench_registry"
ACCESS, SECRET = "bench", "bench-secret-key"


def _stored_for(r: redis.Redis, event_id: str, since: str) -> str | None:
    for _eid, fields in r.xrange(streams.REGISTRY, min=since, max="+"):
        if b'"version.stored"' in fields[b"event"] and event_id.encode() in fields[b"event"]:
            return _eid.decode()
    return None


def bench_checkpoint_to_version(reg: Registry, base: Path, work: Path, runs: int = 12) -> None:
    times, bare = [], []
    with running(reg, name="bench"):
        for i in range(runs):
            d = make_lora_adapter(base, work / f"ckpt-{i}", seed=i)
            files = [{"path": p.name, "sha256": storage.sha256_file(p), "size": p.stat().st_size}
                     for p in sorted(d.iterdir())]
            event = checkpoint_event("bench-job", d, (i + 1) * 10, files, base_model=str(base))
            t0 = time.perf_counter()
            publish(reg.r, event)
            wait_for(lambda ev=event: _stored_for(reg.r, ev.id, "-"), timeout=60, every=0.002)
            times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            for f in files:
                reg.primary.s3.fput_object(reg.primary.bucket, f"bare/{i}/{f['path']}", str(d / f["path"]))
            bare.append(time.perf_counter() - t0)
    p50, b50 = statistics.median(times), statistics.median(bare)
    size = sum(f["size"] for f in files)
    record("checkpoint_to_version", value=p50, unit="s (p50)", baseline=b50, ratio=p50 / b50,
           target="p50 <= 1 s", runs=times, command=CMD, baseline_name="bare fput_object of the same files",
           met=p50 <= 1.0, notes=f"tiny Qwen3 LoRA adapter ({len(files)} files, {size} bytes); includes upload, "
                                 "ETag verification, manifest, latest alias and the event")


def bench_upload(reg: Registry, work: Path, size_mb: int, runs: int = 3) -> None:
    big = work / "big.bin"
    with open(big, "wb") as f:
        for _ in range(size_mb):
            f.write(os.urandom(1024 * 1024))
    digest = storage.sha256_file(big)
    ours, bare = [], []
    for i in range(runs):
        t0 = time.perf_counter()
        reg.primary.s3.fput_object(reg.primary.bucket, f"bare/big-{i}", str(big))
        bare.append(time.perf_counter() - t0)
        reg.primary.delete_key(f"bare/big-{i}")
        t0 = time.perf_counter()
        _, _, sent = reg.primary.put_blob(big, digest)  # digest known, as in checkpoint.saved
        ours.append(time.perf_counter() - t0)
        assert sent == big.stat().st_size
        reg.primary.delete_key(storage.blob_key(digest))
    mb = big.stat().st_size / 1e6
    ours_tp, bare_tp = mb / statistics.median(ours), mb / statistics.median(bare)
    record("upload_throughput", value=ours_tp, unit="MB/s", baseline=bare_tp, ratio=ours_tp / bare_tp,
           target=">= 0.8x bare fput_object", runs=[mb / t for t in ours], command=CMD,
           baseline_name="bare minio fput_object, same file, same run", met=ours_tp / bare_tp >= 0.8,
           notes=f"{size_mb} MiB random file, loopback SeaweedFS; ours = retried put with sha256+ETag "
                 "verification (64 MiB parts) vs fput_object defaults")
    big.unlink()


def bench_dedup(reg: Registry, base: Path) -> None:
    from services.registry import commands

    first = commands.import_dir(reg, base, name="bench-base")
    runs = []
    for _ in range(3):
        again = commands.import_dir(reg, base, name="bench-base")
        runs.append(float(again["bytes_uploaded"]))
    record("dedup_reupload", value=max(runs), unit="bytes", baseline=float(first["bytes_uploaded"]), ratio=None,
           target="0 bytes the second time", runs=runs, command=CMD,
           baseline_name="bytes uploaded the first time", met=max(runs) == 0)


def main() -> None:
    ap = argparse.ArgumentParser(prog=CMD, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--upload-mb", type=int, default=int(os.environ.get("BENCH_UPLOAD_MB", "1024")),
                    help="size of the upload_throughput file in MB (default: BENCH_UPLOAD_MB or 1024)")
    size_mb = ap.parse_args().upload_mb
    os.environ.setdefault("TRAINYARD_DEV", "1")
    with tempfile.TemporaryDirectory(prefix="bench-registry-") as tmp:
        work = Path(tmp)
        rs = RedisServer(work / "redis").start()
        s3 = S3Server(work / "s3", ACCESS, SECRET).start()
        try:
            settings = RegistrySettings(dev=True, redis_url=rs.url, s3_endpoint=s3.endpoint, s3_access_key=ACCESS,
                                        s3_secret_key=SECRET, bucket="bench", replica_bucket="bench-replica",
                                        state_dir=work / "state")
            reg = Registry.open(settings, redis.Redis.from_url(rs.url))
            base = build_tiny_model(work / "base")
            bench_dedup(reg, base)
            bench_checkpoint_to_version(reg, base, work)
            bench_upload(reg, work, size_mb)
        finally:
            s3.kill()
            rs.stop()


if __name__ == "__main__":
    main()
