"""Deploy + verify of the demo adapter on loopback: request -> verified, p50 over repeated deployments.

Run: .venv/bin/python -m bench.bench_deploy [--repeats 5]

Real redis-server, SeaweedFS S3 server and inference server (tiny Qwen3, CPU) on 127.0.0.1. Each repeat
deploys one of two demo versions alternately (so every run is a real hot swap) through the deployer's
consumer: materialise from the registry, chunked upload, commit, load, verify every tracked example against
the snapshot, swap the serving name, move the alias. Baseline, measured in the same run: the bare HTTP work
of one deployment without the deployer (create upload, PUT the files, commit, load, the same completions).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from bench.common import record
from services.deployer.commands import request_deployment
from services.deployer.main import build
from services.deployer.projection import get_deployment
from services.registry.client import RegistryClient
from services.stack.servers import RedisServer, S3Server
from shared import storage
from shared.modeling import build_tiny_model, render
from shared.settings import DeployerSettings, TargetConfig
from tests.support.deploy import InferenceServer, demo_examples, make_adapter, store_version

TARGET_S = 5.0


def _bare(server: InferenceServer, adapter: Path, prompts: list[str], n: int) -> float:
    headers = {"Authorization": f"Bearer {server.token}"}
    files = [{"path": p.name, "sha256": storage.sha256_file(p), "size": p.stat().st_size}
             for p in sorted(adapter.iterdir()) if p.is_file()]
    t0 = time.perf_counter()
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
        upload_id = http.post("/v1/adapter_uploads", json={"files": files}).json()["upload_id"]
        for f in files:
            http.put(f"/v1/adapter_uploads/{upload_id}/files/{f['path']}", params={"offset": 0},
                     content=(adapter / f["path"]).read_bytes()).raise_for_status()
        lora_path = http.post(f"/v1/adapter_uploads/{upload_id}/commit").json()["lora_path"]
        http.post("/v1/load_lora_adapter", json={"lora_name": f"bare-{n}", "lora_path": lora_path}).raise_for_status()
        for prompt in prompts:
            http.post("/v1/completions", json={"model": f"bare-{n}", "prompt": prompt, "max_tokens": 8,
                                               "temperature": 0}).raise_for_status()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        redis_srv = RedisServer(tmp / "redis").start()
        s3_srv = S3Server(tmp / "s3", "bench", "bench-secret-" + uuid.uuid4().hex[:6]).start()
        base = build_tiny_model(tmp / "model")
        inference = InferenceServer(base, tmp / "served").start()
        try:
            settings = DeployerSettings(
                dev=True, redis_url=redis_srv.url, s3_endpoint=s3_srv.endpoint, s3_access_key=s3_srv.access_key,
                s3_secret_key=s3_srv.secret_key, bucket="bench-deploy", state_dir=tmp / "state",
                targets=[TargetConfig(name="box", url=inference.url, token=inference.token)])
            import redis

            r = redis.Redis.from_url(redis_srv.url)
            consumer, runner, _ = build(settings, r, consumer="bench")
            consumer.ensure_groups()
            registry = RegistryClient(storage.s3_client(settings), settings.bucket)
            adapters = [make_adapter(base, tmp / f"a{seed}", seed) for seed in (2, 3)]
            versions = [store_version(registry, base, a, job_id=f"bench{i}", step=10) for i, a in enumerate(adapters)]
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(base)
            prompts = [render(tok, ex["messages"]).prompt for ex in demo_examples()]

            runs, bare_runs = [], []
            for i in range(args.repeats):
                t0 = time.perf_counter()
                dep = request_deployment(r, versions[i % 2], "box")
                while True:
                    consumer.run_once(block_ms=20)
                    runner.catch_up()
                    rec = get_deployment(r, dep)
                    if rec and rec["status"] in ("verified", "failed", "rolled_back"):
                        break
                runs.append(time.perf_counter() - t0)
                if rec["status"] != "verified":
                    raise SystemExit(f"deployment {dep} ended {rec['status']}: {rec.get('error')}")
                bare_runs.append(_bare(inference, adapters[i % 2].path, prompts, i))
        finally:
            inference.stop()
            s3_srv.kill()
            redis_srv.stop()
    p50, bare = statistics.median(runs), statistics.median(bare_runs)
    record("deploy_verify_p50", value=p50, unit="s", baseline=bare, ratio=p50 / bare,
           target=f"<= {TARGET_S:g} s", runs=runs, baseline_name="bare HTTP upload+commit+load+completions",
           command="python -m bench.bench_deploy", met=p50 <= TARGET_S,
           notes=f"tiny Qwen3 on CPU, {len(prompts)} tracked examples verified, {args.repeats} deployments "
                 "alternating two versions (each a hot swap)")


if __name__ == "__main__":
    main()
