"""How often the evaluator's remote backend agrees with its local engine.

Run here (our inference server, started in this process on the tiny Qwen3 with a LoRA):
    .venv/bin/python -m bench.bench_evalremote
Against a real vLLM on the GPU box (serving the base with ``--enable-lora``; the adapter directory must be
readable by the vLLM process; the local engine runs on ``--device``):
    vllm serve Qwen/Qwen3-0.6B --enable-lora --max-lora-rank 16 --dtype bfloat16 --port 8001 &
    .venv/bin/python -m bench.bench_evalremote --url http://127.0.0.1:8001 --base-model Qwen/Qwen3-0.6B --device cuda
(``--adapter DIR`` evaluates that LoRA instead of a random one; ``--base-model`` may be any local model
directory, e.g. one written by ``trainyard demo-model DIR --shape qwen3-0.6b``, served by vLLM from that path.)

``snapshot_remote_agreement``: the fraction of tracked examples whose greedy prediction from the remote backend
equals the local engine's (which equals the naive per-example loop), on 100 examples; the notes give the
largest loss difference. On our own server both run the same transformers code in float32, so they agree; a
vLLM (its own kernels, bf16 on a GPU) is expected to differ on near ties: with ``--url`` the figure goes under
``snapshot_remote_agreement_vllm``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from bench.bench_evalpeer import random_lora
from bench.bench_evaluator import demo_examples
from bench.common import record
from services.evaluator.engine import Engine, Item
from services.evaluator.models import ModelCache
from services.evaluator.remote import Remote, RemoteEngine
from shared.modeling import build_tiny_model, render

CMD = "python -m bench.bench_evalremote"
MAX_NEW = 48


def compare(remote: Remote, name: str, base: str, adapter: Path, device: str, label: str, command: str,
            key: str = "snapshot_remote_agreement") -> None:
    with ModelCache(device).adapted(base, adapter) as (model, tok):
        items = [Item(r.prompt, r.target) for r in (render(tok, e["messages"]) for e in demo_examples(100))]
        t0 = time.perf_counter()
        local_scored, local_gens = Engine(model, tok, max_new_tokens=MAX_NEW, batch_size=64).evaluate(items)
        local_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        scored, gens = RemoteEngine(remote, name, tok, max_new_tokens=MAX_NEW, batch_size=64).evaluate(items)
        remote_s = time.perf_counter() - t0
    same = sum(a.text == b.text for a, b in zip(gens, local_gens, strict=True))
    diffs = [abs(a.loss - b.loss) for a, b in zip(scored, local_scored, strict=True)]
    rate = same / len(items)
    record(key, value=rate, unit="fraction", baseline=None, ratio=None,
           target="documented (1.0 against our own server)", runs=[rate], command=command, met=None,
           notes=f"{label}; {len(items)} tracked examples, greedy, max_new_tokens {MAX_NEW}: {same} predictions equal "
                 f"the local engine's; loss difference max {max(diffs):.2e}, mean {sum(diffs) / len(diffs):.2e}; "
                 f"local engine {local_s:.1f}s, remote backend {remote_s:.1f}s (wall).")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", help="an OpenAI-compatible server with prompt_logprobs (vLLM); default: our own")
    ap.add_argument("--token", default="")
    ap.add_argument("--base-model", help="the model the server serves (with --url)")
    ap.add_argument("--adapter", help="a LoRA directory readable by the server (with --url; default: a random one)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(1)
    if args.url:
        # no --adapter: a random LoRA r16 on all linear layers of the base, written where the server can read it
        adapter = Path(args.adapter or random_lora(Path(args.base_model), Path(tempfile.mkdtemp()) / "v-bench"))
        remote = Remote(args.url, args.token or None)
        remote.load_adapter("bench-adapter", str(adapter.resolve()))
        compare(remote, "bench-adapter", args.base_model, adapter, args.device,
                f"against the server at {args.url} ({args.base_model}), local engine on {args.device}",
                f"{CMD} --url {args.url} --base-model {args.base_model} --device {args.device}",
                key="snapshot_remote_agreement_vllm")
        return
    from services.inference.app import create_app
    from shared.settings import InferenceSettings
    from tests.support.servers import serve_app, wait_ready

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base = build_tiny_model(work / "tiny")
        adapters = work / "adapters"
        adapter = random_lora(base, adapters / "v-bench")
        settings = InferenceSettings(dev=True, base_model=str(base), token="bench", adapters_dir=adapters,
                                     device="cpu", threads=1)
        with serve_app(create_app(settings)) as server:
            wait_ready(server.url, 60, server.thread.is_alive)
            remote = Remote(server.url, "bench")
            remote.load_adapter("v-bench", str(adapter))
            compare(remote, "v-bench", str(base), adapter, "cpu",
                    "against Trainyard's inference server (transformers, float32, CPU) on the tiny Qwen3 + a LoRA "
                    "r16 all-linear", CMD)


if __name__ == "__main__":
    main()
