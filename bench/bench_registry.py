"""Registry benchmarks: ``python -m bench.bench_registry``.

* ``checkpoint_to_version``: p50 seconds from publishing ``checkpoint.saved`` (demo-sized LoRA adapter of
  the tiny Qwen3) to ``version.stored``, with the registry service running; baseline = bare minio
  ``fput_object`` of the same files.
* ``upload_throughput``: our verified ``put_blob`` vs a bare ``fput_object`` of the same file, alternating,
  in the same run (size: BENCH_UPLOAD_MB, default 1024).
* ``dedup_reupload``: bytes uploaded when the same base model is stored a second time.
* ``full_checkpoint_to_version``: seconds from ``checkpoint.saved`` to ``version.stored`` for a full
  Qwen3-0.6B-shape checkpoint (bf16 safetensors, ~1.2 GB), the registry running as its own process
  (``python -m services.registry.main``) whose peak RSS (VmHWM) is recorded; baseline = bare ``fput_object``
  of the same files, in the same run. By default the weights file has the exact tensor names, shapes and size
  of Qwen3-0.6B filled with random bytes (written in seconds, little memory); ``--real-model`` builds the
  real random-init model with ``trainyard demo-model --shape qwen3-0.6b`` instead (~8 GB RAM, minutes).

Starts its own redis-server and SeaweedFS in a temporary directory. ``--only KEY`` runs one benchmark.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from bench.common import record
from services.registry.context import Registry
from services.stack.servers import RedisServer, S3Server
from shared import storage, streams
from shared.bus import publish
from shared.events import parse_event
from shared.modeling import build_tiny_model
from shared.settings import RegistrySettings
from tests.support.lora import make_lora_adapter
from tests.support.registry import checkpoint_event, running, wait_for, write_safetensors

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


def qwen3_checkpoint(out: Path, real: bool) -> Path:
    """A full-fine-tune checkpoint directory of Qwen3-0.6B's shape (bf16 safetensors)."""
    if real:
        cli = Path(sys.executable).with_name("trainyard")
        subprocess.run([str(cli), "demo-model", str(out), "--shape", "qwen3-0.6b"], check=True)
    else:
        import torch
        from transformers import Qwen3ForCausalLM

        from shared.realshape import qwen3_config

        config = qwen3_config()
        with torch.device("meta"):
            model = Qwen3ForCausalLM(config)
        tensors = {name: ("BF16", list(t.shape)) for name, t in model.state_dict().items()
                   if not (config.tie_word_embeddings and name == "lm_head.weight")}
        out.mkdir(parents=True, exist_ok=True)
        write_safetensors(out / "model.safetensors", tensors)
        config.save_pretrained(out)
    (out / "trainyard_job.json").write_text('{"job_id": "bench-full", "method": "full"}')
    return out


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_full_checkpoint(settings: RegistrySettings, reg: Registry, work: Path, real: bool, runs: int = 2) -> None:
    ckpt = qwen3_checkpoint(work / "full-ckpt", real)
    files = [{"path": p.relative_to(ckpt).as_posix(), "sha256": storage.sha256_file(p), "size": p.stat().st_size}
             for p in storage.list_files(ckpt)]
    size = sum(f["size"] for f in files)
    env = {**os.environ, **{f"TRAINYARD_{k.upper()}": str(v) for k, v in settings.model_dump().items()
                            if v is not None and k in ("redis_url", "s3_endpoint", "s3_access_key", "s3_secret_key",
                                                       "bucket", "replica_bucket", "state_dir")}}
    ours, bare, rss = [], [], []
    for i in range(runs):
        t0 = time.perf_counter()
        for f in files:
            reg.primary.s3.fput_object(reg.primary.bucket, f"bare/full/{f['path']}", str(ckpt / f["path"]))
        bare.append(time.perf_counter() - t0)
        for f in files:
            reg.primary.delete_key(f"bare/full/{f['path']}")
        seconds, peak, version_id = _one_full_run(reg, env, ckpt, files, i)
        ours.append(seconds)
        rss.append(peak)
        reg.primary.delete_key(storage.manifest_key(version_id))  # so the next run stores it again
        for f in files:
            reg.primary.delete_key(storage.blob_key(f["sha256"]))
    value, base = statistics.median(ours), statistics.median(bare)
    what = "real random-init Qwen3-0.6B (demo-model)" if real else "Qwen3-0.6B tensor layout, random bf16 bytes"
    record("full_checkpoint_to_version", value=value, unit="s (median)", baseline=base, ratio=value / base,
           target="ratio <= 1.5, upload peak RSS <= 512 MB", runs=ours, command=f"{CMD} --only full_checkpoint_to_version",
           baseline_name="bare fput_object of the same files, same run",
           met=value / base <= 1.5 and max(rss) <= 512,
           notes=f"{what}: {len(files)} files, {size / 1e9:.2f} GB; registry process peak RSS (VmHWM) "
                 f"{max(rss):.0f} MB (runs: {', '.join(f'{x:.0f}' for x in rss)}); 64 MiB parts, 3 in flight, "
                 "resumable multipart with sha256 + per-part MD5 + ETag verification")


def _one_full_run(reg: Registry, env: dict[str, str], ckpt: Path, files: list[dict], i: int) -> tuple[float, float, str]:
    """Start the registry process, publish checkpoint.saved, wait for version.stored; (seconds, peak MB, id)."""
    from services.registry.replica import GROUP as REPLICA_GROUP

    # the replica copy is not part of this figure: its group starts past everything before this run
    if reg.r.exists(streams.REGISTRY):
        reg.r.xgroup_destroy(streams.REGISTRY, REPLICA_GROUP)
    reg.r.xgroup_create(streams.REGISTRY, REPLICA_GROUP, id="$", mkstream=True)
    proc = subprocess.Popen([sys.executable, "-m", "services.registry.main"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        time.sleep(3.0)  # started and idle: its start-up is not part of the figure
        event = checkpoint_event("bench-full", ckpt, 1000 + i, files, base_model="qwen3-0.6b")
        since = reg.r.xinfo_stream(streams.REGISTRY)["last-generated-id"] if reg.r.exists(streams.REGISTRY) else "-"
        t0 = time.perf_counter()
        publish(reg.r, event)
        sid = wait_for(lambda: _stored_for(reg.r, event.id, since), timeout=600, every=0.005)
        seconds = time.perf_counter() - t0
        peak = peak_rss_mb(proc.pid)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    stored = parse_event(reg.r.xrange(streams.REGISTRY, min=sid, max=sid)[0][1][b"event"])
    return seconds, peak, stored.payload["version_id"]


BENCHES = ("dedup_reupload", "checkpoint_to_version", "upload_throughput", "full_checkpoint_to_version")


def main() -> None:
    ap = argparse.ArgumentParser(prog=CMD, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--upload-mb", type=int, default=int(os.environ.get("BENCH_UPLOAD_MB", "1024")),
                    help="size of the upload_throughput file in MB (default: BENCH_UPLOAD_MB or 1024)")
    ap.add_argument("--only", choices=BENCHES, action="append", help="run only this benchmark (repeatable)")
    ap.add_argument("--real-model", action="store_true",
                    help="full_checkpoint_to_version: build the real random-init Qwen3-0.6B (~8 GB RAM)")
    args = ap.parse_args()
    size_mb, only = args.upload_mb, set(args.only or BENCHES)
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
            if only & {"dedup_reupload", "checkpoint_to_version"}:
                base = build_tiny_model(work / "base")
                if "dedup_reupload" in only:
                    bench_dedup(reg, base)
                if "checkpoint_to_version" in only:
                    bench_checkpoint_to_version(reg, base, work)
            if "upload_throughput" in only:
                bench_upload(reg, work, size_mb)
            if "full_checkpoint_to_version" in only:
                bench_full_checkpoint(settings, reg, work, args.real_model)
        finally:
            s3.kill()
            rs.stop()


if __name__ == "__main__":
    main()
