"""Benchmark ``playground_first_token``: time to the first streamed token through the gateway's playground.

    python -m bench.bench_playground [--repeats 5]

Real redis-server, SeaweedFS S3 server, inference server (tiny Qwen3, CPU) and API gateway on 127.0.0.1; the
``openai`` client streams a chat completion from ``/api/playground/box/v1`` with the user's token. Each repeat
stores a new adapter version in the registry and asks for it: cold, the gateway uploads it to the target,
loads it and streams (the value: the median, in seconds, from the request to the first token with text).
Baseline, in the same run: the same version asked again once it is loaded (warm).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import record

CMD = "python -m bench.bench_playground"
TARGET_S = 2.0
TOKEN = "bench-playground"
ASK = [{"role": "user", "content": "What is two plus two?"}]


def first_token(client, model: str) -> float:  # noqa: ANN001
    """Seconds from the request to the first streamed chunk with text (the stream is then read to its end)."""
    t0, first = time.perf_counter(), None
    for chunk in client.chat.completions.create(model=model, messages=ASK, max_tokens=8, stream=True):
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - t0
    if first is None:
        raise RuntimeError(f"{model} streamed no text")
    return first


def loaded(box_url: str, token: str) -> set[str]:
    """The model names the inference target serves now."""
    import httpx

    res = httpx.get(f"{box_url}/v1/models", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    return {m["id"] for m in res.raise_for_status().json()["data"]}


def measure(url: str, box, registry, base: Path, tmp: Path, repeats: int) -> tuple[list[float], list[float]]:  # noqa: ANN001
    from openai import OpenAI

    from services.api.playground import adapter_name
    from tests.support.deploy import Adapter, store_version
    from tests.support.inference import TOKEN as INFERENCE_TOKEN
    from tests.support.lora import make_lora_adapter

    client = OpenAI(base_url=f"{url}/api/playground/box/v1", api_key=TOKEN, max_retries=0, timeout=120)
    first_token(client, "base")  # the base model's first request (warm-up, not counted)
    cold, warm = [], []
    for i in range(repeats):
        adapter = make_lora_adapter(base, tmp / f"adapter-{i}", seed=i + 1, scale=2.0)
        version = store_version(registry, base, Adapter(adapter, []), job_id=f"bench-play-{i}", step=10,
                                snapshot=False)
        assert adapter_name(version) not in loaded(box.url, INFERENCE_TOKEN), "the version is loaded already"
        cold.append(first_token(client, version))
        assert adapter_name(version) in loaded(box.url, INFERENCE_TOKEN), "the playground did not load it"
        warm.append(first_token(client, version))
    return cold, warm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5, help="versions asked for cold, then warm")
    args = ap.parse_args()

    from services.api.main import create_app
    from services.stack.servers import RedisServer, S3Server
    from shared.modeling import build_tiny_model
    from shared.settings import ApiSettings, TargetConfig
    from shared.storage import ensure_bucket, s3_client
    from tests.support.inference import TOKEN as INFERENCE_TOKEN
    from tests.support.inference import run_server
    from tests.support.servers import serve_app

    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        redis_srv = RedisServer(tmp / "redis").start()
        s3_srv = S3Server(tmp / "s3", "bench", "bench-secret-" + uuid.uuid4().hex[:6]).start()
        try:
            base = build_tiny_model(tmp / "model")
            settings = ApiSettings(dev=True, redis_url=redis_srv.url, s3_endpoint=s3_srv.endpoint,
                                   s3_access_key=s3_srv.access_key, s3_secret_key=s3_srv.secret_key,
                                   bucket="bench-playground", state_dir=tmp / "state", api_token=TOKEN,
                                   uploads_dir=tmp / "up")
            ensure_bucket(s3_client(settings), settings.bucket)
            with run_server(base, tmp / "adapters") as box:
                app = create_app(settings, targets=[TargetConfig(name="box", url=box.url, token=INFERENCE_TOKEN)])
                with serve_app(app) as gateway:
                    cold, warm = measure(gateway.url, box, app.state.registry, base, tmp, args.repeats)
        finally:
            s3_srv.kill()
            redis_srv.stop()
    value, base_s = statistics.median(cold), statistics.median(warm)
    record("playground_first_token", value=value, unit="s", baseline=base_s, ratio=value / base_s,
           target=f"< {TARGET_S:g} s (cold)", runs=cold, command=CMD, met=value < TARGET_S,
           baseline_name="the same version once loaded (warm), median s",
           notes=f"tiny Qwen3 on CPU, {args.repeats} new adapter versions each asked cold (gateway uploads, loads, "
                 f"streams) then warm; cold max {max(cold):.2f} s, warm max {max(warm):.3f} s; first token = first "
                 "streamed chunk with text, through the openai client.")


if __name__ == "__main__":
    main()
