"""Real-shape benchmarks: ``python -m bench.bench_realshape [--only overhead,snapshot,offbox,rss] [--device cuda
--dtype bfloat16]`` (``make gpu-check`` runs them on the GPU box).

Models are built here with ``trainyard demo-model`` (``shared.realshape``), random init, the real Qwen tokenizer:
``full`` is the exact Qwen3-0.6B architecture (596M parameters, vocab 151,936), ``narrow`` the same width and
vocabulary with 2 layers. Each figure's notes name the shape it used. Built models are cached under
``$TRAINYARD_BENCH_CACHE`` (default: the system temp dir) so that reruns skip the build.

* ``realshape_trainer_overhead`` (full): our Trainer (callback: control check, heartbeat, metrics events) against
  a bare HF Trainer + peft, same model, data and hyperparameters, a few steps; tokens/s ratio, best of repeats.
* ``realshape_snapshot_speedup`` (full): the batched engine (``Engine.evaluate``: loss + greedy generation from
  one prefill) against the naive per-example ``generate`` loop on 32 tracked examples; identical predictions.
* ``offbox_training_ratio`` + ``evaluator_lag_p95`` (narrow): the demo job trained on CPU 0 while the
  evaluator service (its own process, ``taskset -c 1``: "the other box") snapshots every checkpoint, against
  the same job with no evaluator; and the p95 seconds from ``checkpoint.saved`` to ``snapshot.captured``.
* ``realshape_eval_peak_rss`` (full): the evaluator engine's peak RSS (a fresh process) while it scores and
  decodes 64 tracked examples of 1,024 tokens, against its memory budget plus the model's own size.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import machine, record

CMD = "python -m bench.bench_realshape"


def model_dir(shape: str) -> Path:
    """A cached random-init model of ``shape`` built by the CLI a user runs."""
    cache = Path(os.environ.get("TRAINYARD_BENCH_CACHE", tempfile.gettempdir())) / f"trainyard-{shape}"
    if not (cache / "config.json").is_file():
        cli = Path(sys.executable).with_name("trainyard")
        subprocess.run([str(cli), "demo-model", str(cache), "--shape", shape], check=True)
    return cache


def _where(device: str, dtype: str | None) -> str:
    return f"{device} {dtype or ('bfloat16' if device.startswith('cuda') else 'float32')}; {machine()}"


# -- trainer overhead -----------------------------------------------------------------------------------
def bench_overhead(device: str, dtype: str | None, repeats: int, steps: int, work: Path) -> None:
    import redis

    from bench.bench_trainer import run
    from services.stack.servers import RedisServer
    from services.trainer.spec import JobSpec

    base = model_dir("qwen3-0.6b")
    server = RedisServer(work / "redis").start()
    try:
        r = redis.Redis.from_url(server.url)
        spec = JobSpec(base_model=str(base), lr=1e-4, max_steps=steps, checkpoint_every=10_000, log_every=1,
                       batch_size=2, grad_accum=1, warmup_steps=0, device=device, max_seq_len=256,
                       **({"dtype": dtype} if dtype and "dtype" in JobSpec.model_fields else {}))
        bare, ours = [], []
        for i in range(repeats):
            for name in (("bare", "ours") if i % 2 == 0 else ("ours", "bare")):
                tps, _ = run(spec, work / f"{name}{i}", None if name == "bare" else r, False)
                (bare if name == "bare" else ours).append(tps)
    finally:
        server.stop()
    b, o = max(bare), max(ours)
    record("realshape_trainer_overhead", value=o, unit="tokens/s", baseline=b, ratio=o / b, target=">= 0.95x bare",
           runs=ours, command=CMD + " --only overhead", baseline_name="bare HF Trainer + peft", met=o / b >= 0.95,
           notes=f"shape: full Qwen3-0.6B (596M, vocab 151,936), LoRA r16 all linear, {steps} steps x batch 2 x "
                 f"<=256 tokens, best of {repeats}; {_where(device, dtype)}; bare runs {[round(x, 1) for x in bare]}")


# -- snapshot speedup -----------------------------------------------------------------------------------
def bench_snapshot(device: str, dtype: str | None, repeats: int, n: int = 32, max_new: int = 16) -> None:
    from bench.bench_evaluator import demo_examples
    from services.evaluator.engine import Engine, Item, naive_generate
    from services.evaluator.snapshot import parse_tracked
    from shared.modeling import load_base, render

    model, tok = load_base(str(model_dir("qwen3-0.6b")), device=device, dtype=dtype)
    tracked = parse_tracked({"examples": demo_examples(n)}, "bench")
    rendered = [render(tok, ex.messages) for ex in tracked]
    prompts, items = [x.prompt for x in rendered], [Item(x.prompt, x.target) for x in rendered]
    naive_runs, batched_runs, identical = [], [], True
    for _ in range(repeats):
        t0 = time.perf_counter()
        naive = naive_generate(model, tok, prompts, max_new)
        naive_runs.append(time.perf_counter() - t0)
        engine = Engine(model, tok, max_new_tokens=max_new, batch_size=64)
        t0 = time.perf_counter()
        _, got = engine.evaluate(items)
        batched_runs.append(time.perf_counter() - t0)
        identical &= [g.text for g in got] == naive
    ratio = statistics.median(naive_runs) / statistics.median(batched_runs)
    record("realshape_snapshot_speedup", value=ratio, unit="x", baseline=statistics.median(naive_runs), ratio=ratio,
           target=">= 10x with identical predictions", command=CMD + " --only snapshot",
           runs=[a / b for a, b in zip(naive_runs, batched_runs, strict=True)], met=ratio >= 10 and identical,
           baseline_name="naive per-example generate loop (s)",
           notes=f"shape: full Qwen3-0.6B (random init, real tokenizer and template), {n} tracked examples, "
                 f"max_new_tokens {max_new}, batch 64; {_where(device, dtype)}; identical predictions: {identical}; "
                 f"near-tie rows decoded again: {engine.stats.reruns}")


# -- off-box evaluator ----------------------------------------------------------------------------------
def _lags(r: Any, job_id: str) -> list[float]:
    from shared import streams
    from shared.bus import read_all

    saved = {e.payload["step"]: e.occurred_at for _, e in read_all(r, streams.CHECKPOINTS) if e.job_id == job_id}
    captured = {e.payload["step"]: e.occurred_at for _, e in read_all(r, streams.EVOLUTION)
                if e.job_id == job_id and e.type == "snapshot.captured"}
    return [(captured[s] - saved[s]).total_seconds() for s in sorted(saved) if s in captured]


def bench_offbox(device: str, repeats: int, steps: int, work: Path) -> None:
    import redis

    from bench import demojob
    from shared.runtime import poll
    from shared.settings import EvaluatorSettings, as_env

    base = model_dir("qwen3-0.6b-narrow")
    cpus = sorted(os.sched_getaffinity(0))
    train_cpus, eval_cpus = set(cpus[: max(1, len(cpus) // 2)]), cpus[max(1, len(cpus) // 2):] or cpus[-1:]
    os.sched_setaffinity(0, train_cpus)  # this process trains; the evaluator gets the other CPUs
    overrides = {"tracked": {"count": 16, "seed": 0}, "batch_size": 4, "max_seq_len": 96,
                 "checkpoint_every": max(1, steps // 4)}
    alone, with_eval, lags = [], [], []
    for rep in range(repeats):
        with demojob.servers(work / f"alone{rep}") as common:
            alone.append(demojob.train(common, base, work / f"alone{rep}", steps, device, overrides).train_s)
        with demojob.servers(work / f"eval{rep}") as common:
            env = {**os.environ, **as_env(EvaluatorSettings(**common, device=device, max_new_tokens=16)),
                   "OMP_NUM_THREADS": str(len(eval_cpus))}
            log = open(work / f"evaluator{rep}.log", "ab")  # noqa: SIM115 - the child owns it
            proc = subprocess.Popen(["taskset", "-c", ",".join(map(str, eval_cpus)), sys.executable, "-m",
                                     "services.evaluator.main"], env=env, stdout=log, stderr=subprocess.STDOUT)
            try:
                job = demojob.train(common, base, work / f"eval{rep}", steps, device, overrides)
                with_eval.append(job.train_s)
                r = redis.Redis.from_url(common["redis_url"])
                poll("snapshots of every checkpoint", lambda job=job, r=r: len(_lags(r, job.job_id)) >= len(
                    job.versions) or None, timeout=900, every=0.5)
                lags += _lags(r, job.job_id)
            finally:
                proc.terminate()
                proc.wait(30)
    ratio = min(alone) / min(with_eval)  # tokens/s with / without = wall time without / with (same job)
    lag_p95 = statistics.quantiles(lags, n=20)[18] if len(lags) >= 2 else max(lags)
    interval_s = min(with_eval) / 4
    note = (f"shape: narrow Qwen3 (width 1024, 2 layers, vocab 151,936), demo job {steps} steps, checkpoint every "
            f"{overrides['checkpoint_every']}, 16 tracked examples; trainer on CPU {sorted(train_cpus)}, evaluator "
            f"service on CPU {eval_cpus} (taskset); best of {repeats}; {_where(device, None)}")
    record("offbox_training_ratio", value=ratio, unit="x", baseline=min(alone), ratio=ratio, target=">= 0.95",
           runs=[a / b for a, b in zip(alone, with_eval, strict=True)], command=CMD + " --only offbox",
           baseline_name="training wall time (s) with no evaluator", met=ratio >= 0.95,
           notes=f"{note}; training s alone {[round(x, 1) for x in alone]}, with evaluator "
                 f"{[round(x, 1) for x in with_eval]}")
    record("evaluator_lag_p95", value=lag_p95, unit="s", baseline=interval_s, ratio=lag_p95 / interval_s,
           target="< the checkpoint interval", runs=lags, command=CMD + " --only offbox",
           baseline_name="checkpoint interval (s)", met=lag_p95 < interval_s,
           notes=f"{note}; checkpoint.saved -> snapshot.captured per checkpoint")


# -- evaluator peak memory -------------------------------------------------------------------------------
def bench_rss(device: str, dtype: str | None, n: int, tokens: int, budget_mb: int) -> None:
    base = model_dir("qwen3-0.6b")
    child = subprocess.run([sys.executable, "-m", "bench.realshape_rss", str(base), device, dtype or "",
                            str(n), str(tokens), str(budget_mb)], capture_output=True, text=True, check=True)
    out = json.loads(child.stdout.strip().splitlines()[-1])
    limit = out["budget_bytes"] + out["model_bytes"]
    ratio = out["peak_bytes"] / limit
    record("realshape_eval_peak_rss", value=out["peak_bytes"] / 2**20, unit="MiB", baseline=limit / 2**20,
           ratio=ratio, target="<= 1.0 of budget + model size", runs=[out["peak_bytes"] / 2**20],
           command=CMD + " --only rss", baseline_name="memory budget + model size (MiB)", met=ratio <= 1.0,
           notes=f"shape: full Qwen3-0.6B; {n} tracked examples of {tokens} tokens (prompt + target), budget "
                 f"{budget_mb} MiB, model {out['model_bytes'] / 2**20:.0f} MiB, process before loading "
                 f"{out['start_bytes'] / 2**20:.0f} MiB (counted in the peak), rows per batch {out['rows']}, "
                 f"{out['seconds']:.0f}s; {_where(device, dtype)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="overhead,snapshot,offbox,rss")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default=None, help="bfloat16 on the GPU box (default: bf16 on cuda, fp32 on cpu)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3, help="training steps of the overhead run")
    ap.add_argument("--offbox-steps", type=int, default=16)
    ap.add_argument("--rss-examples", type=int, default=64)
    ap.add_argument("--rss-tokens", type=int, default=1024)
    ap.add_argument("--budget-mb", type=int, default=2048)
    args = ap.parse_args()
    only = set(args.only.split(","))
    work = Path(tempfile.mkdtemp(prefix="bench-realshape-"))
    if "overhead" in only:
        bench_overhead(args.device, args.dtype, args.repeats, args.steps, work)
    if "snapshot" in only:
        bench_snapshot(args.device, args.dtype, args.repeats)
    if "offbox" in only:
        bench_offbox(args.device, args.repeats, args.offbox_steps, work)
    if "rss" in only:
        bench_rss(args.device, args.dtype, args.rss_examples, args.rss_tokens, args.budget_mb)


if __name__ == "__main__":
    main()
