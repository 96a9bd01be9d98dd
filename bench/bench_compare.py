"""Benchmark ``compare_query_p95``: ``GET /api/evolution/compare``'s read function on two long runs.

    python -m bench.bench_compare [--examples 1000] [--steps 200] [--repeats 3]

Two jobs of 1,000 tracked examples x 200 snapshots each (the synthetic snapshot documents of
``bench.bench_evaluator``, a different seed per job so their states differ) are loaded through the real
evolution projection into a real redis-server; the value is the p95 of ``readmodel.compare(r, [A, B])`` over
100 calls (worst of ``--repeats``). Baseline, in the same run: what a client does without it, two full
``export`` calls (every example's history) matched by id in Python.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from bench.bench_evaluator import _Docs, _p95, _synthetic_doc
from bench.common import record

CMD = "python -m bench.bench_compare"
TARGET_MS = 100.0


def load(r, docs: _Docs, job: str, n_examples: int, n_steps: int, seed: int) -> None:
    from services.evaluator.readmodel import EvolutionProjection
    from shared import bus
    from shared.events import Event, SnapshotCaptured
    from shared.projection import ProjectionRunner

    rng = random.Random(seed)
    runner = ProjectionRunner(r, EvolutionProjection(docs))  # type: ignore[arg-type]
    for s in range(n_steps):
        step = s * 10
        doc = _synthetic_doc(job, step, n_examples, rng)
        key = f"evolution/{job}/step_{step:06d}.json"
        docs.docs[key] = doc
        bus.publish(r, Event.create("snapshot.captured", SnapshotCaptured(version_id=doc["version_id"], step=step,
                                                                          key=key), job_id=job))
        runner.catch_up()
        docs.docs.pop(key)  # the projection has read it; keep memory flat


def baseline(r, jobs: list[str]) -> int:
    from services.evaluator import api as readmodel

    exports = [json.loads(readmodel.export(r, j)) for j in jobs]
    by_id = [{e["id"]: e for e in ex["examples"]} for ex in exports]
    return sum(1 for i in by_id[0] if all(i in other for other in by_id[1:]))


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", type=int, default=1000, help="tracked examples per job")
    ap.add_argument("--steps", type=int, default=200, help="snapshots per job")
    ap.add_argument("--repeats", type=int, default=3, help="rounds of 100 compare calls")
    args = ap.parse_args()

    import redis

    from services.evaluator import api as readmodel
    from services.stack.servers import RedisServer

    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp) / "redis").start()
        try:
            r = redis.Redis.from_url(server.url)
            docs, jobs = _Docs(), ["job-bench-a", "job-bench-b"]
            t0 = time.perf_counter()
            for seed, job in enumerate(jobs):
                load(r, docs, job, args.examples, args.steps, seed)
            load_s = time.perf_counter() - t0
            res = readmodel.compare(r, jobs)
            assert res["count"] == args.examples, res["count"]
            p95s = [_p95(timed(lambda: readmodel.compare(r, jobs), 100)) for _ in range(args.repeats)]
            base = _p95(timed(lambda: baseline(r, jobs), 10))
        finally:
            server.stop()
    worst = max(p95s)
    record("compare_query_p95", value=worst, unit="ms", baseline=base, ratio=base / worst,
           target=f"<= {TARGET_MS:.0f} ms", runs=p95s, command=CMD,
           baseline_name="two full exports matched by id in Python (p95 ms)", met=worst <= TARGET_MS,
           notes=f"2 jobs x {args.examples} tracked examples x {args.steps} snapshots, loaded through the evolution "
                 f"projection into a real redis-server in {load_s:.0f}s; {res['changed']} examples changed state; "
                 f"median p95 {statistics.median(p95s):.1f} ms.")


if __name__ == "__main__":
    main()
