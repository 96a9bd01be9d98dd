"""Inference server under load: batching throughput and hot swap (failed requests, p99 ratio).

Run: .venv/bin/python -m bench.bench_inference [--repeats 3] [--seconds 4]

The server (tiny Qwen3, CPU) runs as ``python -m services.inference.main`` in a subprocess on 127.0.0.1;
closed-loop clients are threads here (greedy, ``max_tokens`` 16).

* ``inference_batching``: completions/s of 8 concurrent clients on the default server (``max_batch`` 8,
  equal-length prompts, so batches are exact) / completions/s of one client sending sequential single
  requests to an unbatched server (``max_batch`` 1), measured back to back in every repeat. Also recorded:
  ``inference_batching_mixed`` (8 prompts of different lengths, ``batch_padding`` on).
* ``hot_swap_failed_requests`` / ``hot_swap_p99``: 8 closed-loop clients on adapter ``live``; each run
  alternates 10 steady segments with 10 segments that start with a replacement of ``live`` (two adapters
  in turn); every non-200 or transport error counts as failed; ratio = p99 of requests overlapping a swap
  segment / p99 of the steady segments.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bench.common import record
from services.stack.servers import free_port
from shared.modeling import build_tiny_model
from tests.support.servers import wait_ready

TOKEN = "bench-token"
N_TOKENS = 16
SAME_LEN = ["The quick brown fox"] * 8
MIXED = ["hello world", "The quick brown fox", "What is the capital of France? Answer:", "a",
         "tell me a story about a dog", "system user assistant", "The lazy dog sleeps", "hi there friend"]
CMD = "python -m bench.bench_inference"


@contextmanager
def server(base: Path, adapters: Path, **env: str) -> Iterator[str]:
    port = free_port()
    environ = {**os.environ, "TRAINYARD_DEV": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
               "TRAINYARD_INFERENCE_BASE_MODEL": str(base), "TRAINYARD_INFERENCE_TOKEN": TOKEN,
               "TRAINYARD_INFERENCE_ADAPTERS_DIR": str(adapters), "TRAINYARD_INFERENCE_PORT": str(port),
               "TRAINYARD_INFERENCE_DEVICE": "cpu", "TRAINYARD_INFERENCE_THREADS": "1",
               **{f"TRAINYARD_INFERENCE_{k.upper()}": v for k, v in env.items()}}
    proc = subprocess.Popen([sys.executable, "-m", "services.inference.main"], env=environ,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, 120, lambda: proc.poll() is None, every=0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def _client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)


class Load:
    """Closed-loop clients: each sends its next request as soon as the previous one answered."""

    def __init__(self, url: str, prompts: list[str], model: str = "base") -> None:
        self.url, self.prompts, self.model = url, prompts, model
        self.stop = threading.Event()
        self.samples: list[tuple[float, float, bool]] = []  # (start, latency, ok)
        self.threads = [threading.Thread(target=self._loop, args=(p,)) for p in prompts]

    def _loop(self, prompt: str) -> None:
        body = {"model": self.model, "prompt": prompt, "max_tokens": N_TOKENS, "temperature": 0}
        with _client(self.url) as http:
            while not self.stop.is_set():
                t0 = time.perf_counter()
                try:
                    ok = http.post("/v1/completions", json=body).status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.samples.append((t0, time.perf_counter() - t0, ok))

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(120)

    def window(self, t0: float, t1: float) -> list[tuple[float, float, bool]]:
        return [s for s in self.samples if t0 <= s[0] and s[0] + s[1] <= t1]


def p99(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100, method="inclusive")[98] if len(latencies) > 1 else latencies[0]


def throughput(url: str, prompts: list[str], seconds: float) -> float:
    with Load(url, prompts) as load:
        time.sleep(0.3)  # warm up
        t0 = time.perf_counter()
        time.sleep(seconds)
        t1 = time.perf_counter()
    done = [s for s in load.samples if t0 <= s[0] + s[1] <= t1 and s[2]]
    return len(done) / (t1 - t0)


def bench_batching(base: Path, tmp: Path, repeats: int, seconds: float) -> None:
    """The three servers run side by side (idle ones cost nothing); each repeat measures all three back to
    back, so background load on the machine hits baseline and candidates alike."""
    seq, batched, mixed, ratios, mixed_ratios = [], [], [], [], []
    with (server(base, tmp / "a1", max_batch="1") as unbatched, server(base, tmp / "a2") as default,
          server(base, tmp / "a3", batch_padding="true") as padded):
        for _ in range(repeats):
            seq.append(throughput(unbatched, SAME_LEN[:1], seconds))
            batched.append(throughput(default, SAME_LEN, seconds))
            mixed.append(throughput(padded, MIXED, seconds))
            ratios.append(batched[-1] / seq[-1])
            mixed_ratios.append(mixed[-1] / seq[-1])
    base_rps = statistics.median(seq)
    for key, runs, rs, what in (("inference_batching", batched, ratios, "equal-length prompts, exact batching"),
                                ("inference_batching_mixed", mixed, mixed_ratios,
                                 "8 different prompts, batch_padding on")):
        ratio = statistics.median(rs)
        record(key, value=statistics.median(runs), unit="completions/s", baseline=base_rps, ratio=ratio,
               target=">= 3x sequential single requests", runs=rs, command=CMD, met=ratio >= 3,
               baseline_name="1 client, sequential single requests, unbatched server (max_batch 1)",
               notes=f"runs are per-repeat ratios (baseline measured right before); 8 closed-loop clients, {what}, "
                     f"max_tokens {N_TOKENS}, greedy; completions/s " + ", ".join(f"{x:.3g}" for x in runs)
                     + "; baseline " + ", ".join(f"{x:.3g}" for x in seq))


def bench_hot_swap(base: Path, tmp: Path, adapters: dict[str, Path], repeats: int, seconds: float) -> None:
    """Each run alternates 10 steady segments and 10 swap segments (a replacement of ``live`` at the start of
    the segment), so steady and swap latencies come from the same minutes of machine time."""
    ratios, failed_runs, steady_p99s, swap_p99s = [], [], [], []
    seg = seconds / 10
    with server(base, tmp / "swap") as url, _client(url) as admin:
        paths = {}
        for name, src in adapters.items():
            dest = tmp / "swap" / name
            dest.mkdir(parents=True, exist_ok=True)
            for f in src.iterdir():
                (dest / f.name).write_bytes(f.read_bytes())
            paths[name] = str(dest)
        admin.post("/v1/load_lora_adapter", json={"lora_name": "live", "lora_path": paths["one"]}).raise_for_status()
        for _ in range(repeats):
            steady: list[float] = []
            during: list[float] = []
            with Load(url, SAME_LEN, model="live") as load:
                time.sleep(0.5)
                for i in range(10):
                    s0 = time.perf_counter()
                    time.sleep(seg)
                    s1 = time.perf_counter()
                    name = "two" if i % 2 == 0 else "one"
                    admin.post("/v1/load_lora_adapter", json={"lora_name": "live", "lora_path": paths[name]}
                               ).raise_for_status()
                    time.sleep(max(0.0, seg - (time.perf_counter() - s1)))
                    s2 = time.perf_counter()
                    steady += [s[1] for s in load.window(s0, s1)]
                    # every request that overlapped the swap segment, including those in flight at the swap
                    during += [s[1] for s in load.samples if s[0] < s2 and s[0] + s[1] > s1]
            failed_runs.append(sum(1 for s in load.samples if not s[2]))
            steady_p99s.append(p99(steady))
            swap_p99s.append(p99(during))
            ratios.append(swap_p99s[-1] / steady_p99s[-1])
    total_failed = sum(failed_runs)
    record("hot_swap_failed_requests", value=total_failed, unit="failed requests", baseline=None, ratio=None,
           target="0 failed requests (8 closed-loop clients, 10 swaps per run)", runs=[float(x) for x in failed_runs],
           command=CMD, met=total_failed == 0, notes=f"{repeats} runs of 10 swaps each")
    ratio = statistics.median(ratios)
    record("hot_swap_p99", value=statistics.median(swap_p99s) * 1000, unit="ms p99 during swaps",
           baseline=statistics.median(steady_p99s) * 1000, ratio=ratio, target="<= 2x steady p99", runs=ratios,
           command=CMD, baseline_name="steady-state p99, same clients, interleaved segments", met=ratio <= 2,
           notes="runs are the per-run ratios; 8 closed-loop clients, max_tokens 16; per run 10 steady and 10 "
                 "swap segments alternate; swap latencies = every request overlapping a swap segment")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    from tests.support.lora import make_lora_adapter  # the same adapters the tests use

    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        base = build_tiny_model(tmp / "base")
        adapters = {"one": make_lora_adapter(base, tmp / "one", seed=1),
                    "two": make_lora_adapter(base, tmp / "two", seed=2)}
        bench_batching(base, tmp, args.repeats, args.seconds)
        bench_hot_swap(base, tmp, adapters, args.repeats, args.seconds)


if __name__ == "__main__":
    main()
