"""Training under API load: tokens/s of a LoRA job while concurrent API clients and 50 SSE subscribers hammer
the gateway, against the same job with an idle gateway, measured in the same session.

    .venv/bin/python -m bench.bench_load [--repeats 3] [--steps 300] [--clients 8] [--subscribers 50]

Real redis-server, real SeaweedFS S3, the real trainer worker process and the real API under uvicorn, all on
127.0.0.1. Unloaded and loaded runs alternate (U, L, U, L, ...) on one warm worker; each run's figure is the
median ``tokens_per_s`` of its ``metrics.logged`` events. Key ``load_training_ratio`` = loaded / unloaded.

CPU placement (both runs alike): the trainer worker gets the first CPU to itself and everything else (API,
clients, Redis, S3) runs on the others, as on the user's box where training runs on the GPU and the gateway
on the host CPU. What is measured is then whether API traffic slows training through what they share
(Redis round trips of the callback, events, the job view), not whether two CPU-bound programs on a 2-core
machine share its cores. ``--no-pin`` runs everything on every CPU.
``LoadGenerator`` is also used by ``tests/drills/test_load.py``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

READ_PATHS = ("/api/jobs", "/api/jobs/{job}", "/api/jobs/{job}/metrics", "/api/queue", "/api/versions",
              "/api/deployments", "/api/evolution", "/health")


@dataclass
class LoadStats:
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    # subscriber -> ids of the events received (envelope ids: stream entry ids repeat across streams)
    sse_events: dict[int, list[str]] = field(default_factory=dict)
    sse_errors: list[str] = field(default_factory=list)


class LoadGenerator:
    """``clients`` threads cycling through read endpoints and ``subscribers`` SSE streams on the job's feed."""

    def __init__(self, base_url: str, job_id: str, *, clients: int = 8, subscribers: int = 50,
                 requests_per_client: int | None = None, token: str | None = None, think_s: float = 0.05,
                 since: str | None = None) -> None:
        self.base_url = base_url
        self.job_id = job_id
        self.clients = clients
        self.subscribers = subscribers
        self.requests_per_client = requests_per_client
        self.think_s = think_s  # pause between one client's requests (a UI polls; it does not spin)
        self.since = since  # SSE: replay from this entry id first (like Last-Event-ID)
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.stats = LoadStats()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._connected = threading.Semaphore(0)

    def start(self, connect_timeout: float = 60) -> None:
        for i in range(self.subscribers):
            self._spawn(self._subscriber, i)
        for _ in range(self.subscribers):
            if not self._connected.acquire(timeout=connect_timeout):
                raise RuntimeError("SSE subscribers did not connect in time")
        for i in range(self.clients):
            self._spawn(self._client, i)

    def _spawn(self, target: Any, i: int) -> None:
        t = threading.Thread(target=target, args=(i,), daemon=True, name=f"load-{target.__name__}-{i}")
        t.start()
        self._threads.append(t)

    def clients_done(self) -> bool:
        return all(not t.is_alive() for t in self._threads if "_client" in t.name)

    def stop(self, timeout: float = 30) -> LoadStats:
        self._stop.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.1, deadline - time.monotonic()))
        return self.stats

    def _client(self, i: int) -> None:
        paths = [p.format(job=self.job_id) for p in READ_PATHS]
        n = 0
        with httpx.Client(base_url=self.base_url, headers=self.headers, timeout=30) as c:
            while not self._stop.is_set():
                if self.requests_per_client is not None and n >= self.requests_per_client:
                    return
                path = paths[(i + n) % len(paths)]
                t0 = time.perf_counter()
                try:
                    res = c.get(path)
                    ok = res.status_code == 200
                    err = None if ok else f"GET {path}: {res.status_code} {res.text[:200]}"
                except httpx.HTTPError as exc:
                    err = f"GET {path}: {type(exc).__name__}: {exc}"
                with self._lock:
                    self.stats.requests += 1
                    self.stats.latencies.append(time.perf_counter() - t0)
                    if err:
                        self.stats.errors.append(err)
                n += 1
                self._stop.wait(self.think_s)

    def _subscriber(self, i: int) -> None:
        got: list[str] = []
        with self._lock:
            self.stats.sse_events[i] = got
        url = f"{self.base_url}/api/events/stream"
        try:
            with httpx.Client(headers=self.headers, timeout=httpx.Timeout(30, read=60)) as c, \
                    c.stream("GET", url, params={"job_id": self.job_id, **({"since": self.since} if self.since else {})}) as res:
                if res.status_code != 200:
                    raise RuntimeError(f"SSE {res.status_code}")
                self._connected.release()
                for line in res.iter_lines():
                    if self._stop.is_set():
                        return
                    if line.startswith("data:"):
                        got.append(json.loads(line[5:])["id"])
        except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
            if not self._stop.is_set():
                with self._lock:
                    self.stats.sse_errors.append(f"subscriber {i}: {type(exc).__name__}: {exc}")
                self._connected.release()


# -- the benchmark -------------------------------------------------------------------------------------------
def cpu_split(pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """(trainer CPUs, everyone else's CPUs) when pinning is asked for and there are 2+ CPUs; else (None, None)."""
    import os

    cpus = sorted(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2:
        return None, None
    return {cpus[0]}, set(cpus[1:])


@contextmanager
def environment(root: Path, pin: bool = True) -> Iterator[dict[str, Any]]:
    """Redis, S3, the tiny model, a trainer worker process and the API server, all on loopback."""
    import os
    import subprocess
    import sys

    import redis

    from bench.demojob import servers
    from services.api.main import create_app
    from shared.modeling import build_tiny_model
    from shared.settings import ApiSettings, TrainerSettings, as_env
    from shared.storage import ensure_bucket, s3_client
    from tests.support.servers import serve_app

    trainer_cpus, other_cpus = cpu_split(pin)
    if other_cpus:  # before any server or thread starts, so all of them inherit it
        os.sched_setaffinity(0, other_cpus)
    with servers(root, "bench-load") as common:
        trainer = TrainerSettings(**common, checkpoints_dir=root / "ckpt", inbox_dir=root / "inbox",
                                  control_dir=root / "control")
        s3 = s3_client(trainer)
        ensure_bucket(s3, trainer.bucket)
        model = build_tiny_model(root / "model")
        env = {**os.environ, **as_env(trainer), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false"}
        worker = None
        try:
            with open(root / "worker.log", "ab") as log:
                worker = subprocess.Popen(
                    [sys.executable, "-m", "services.trainer.main"], env=env, stdout=log, stderr=subprocess.STDOUT,
                    cwd=Path(__file__).resolve().parent.parent,
                    preexec_fn=(lambda: os.sched_setaffinity(0, trainer_cpus)) if trainer_cpus else None)
            api_settings = ApiSettings(**common, api_token="bench-token", uploads_dir=root / "uploads")
            with serve_app(create_app(api_settings, targets=[])) as server:
                yield {"r": redis.Redis.from_url(common["redis_url"]), "s3": s3, "trainer": trainer, "model": model,
                       "api": server.url, "worker": worker, "cpus": (trainer_cpus, other_cpus)}
        finally:
            if worker is not None:
                worker.kill()
                worker.wait(10)


def train_once(env: dict[str, Any], steps: int, load: dict[str, int] | None) -> tuple[float, LoadStats | None]:
    """Submit one job, optionally under load; returns (median tokens/s, load stats)."""
    from services.trainer.submit import submit_job
    from shared import streams
    from shared.bus import read_all
    from shared.modeling import demo_dataset_path

    r = env["r"]
    spec = {"base_model": str(env["model"]), "lr": 3e-3, "max_steps": steps, "checkpoint_every": steps,
            "log_every": 2, "batch_size": 8, "grad_accum": 1, "warmup_steps": 0, "max_seq_len": 64,
            "tracked": {"count": 5}, "device": "cpu", "seed": 0}
    job_id = submit_job(env["trainer"], r, env["s3"], demo_dataset_path(), spec=spec, source="cli")
    gen = None
    started = None  # loaded runs count only the metrics logged once every client and subscriber is running
    if load:
        from services.trainer.projection import get_job

        while get_job(r, job_id) is None:  # the jobs view is built by the worker process
            time.sleep(0.05)
        gen = LoadGenerator(env["api"], job_id, **load)
        gen.start()
        started = time.time()
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        done = [e for _, e in read_all(r, streams.JOBS) if e.job_id == job_id
                and e.type in ("job.completed", "job.failed", "job.paused")]
        if done:
            if done[0].type != "job.completed":
                raise RuntimeError(f"job ended {done[0].type}: {done[0].payload}")
            break
        if env["worker"].poll() is not None:
            raise RuntimeError("the trainer worker exited")
        time.sleep(0.2)
    stats = gen.stop() if gen else None
    windows = [e for _, e in read_all(r, streams.METRICS) if e.job_id == job_id and e.payload.get("tokens_per_s")]
    if started is not None:
        windows = [e for e in windows if e.occurred_at.timestamp() >= started]
        if len(windows) < 5:
            raise RuntimeError(f"only {len(windows)} logging windows under load: give the job more --steps")
    tps = [e.payload["tokens_per_s"] for e in windows]
    return statistics.median(tps[1:] or tps), stats


def main() -> None:
    from bench.common import noise, record

    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--subscribers", type=int, default=50)
    ap.add_argument("--no-pin", dest="pin", action="store_false", help="no CPU placement (see the module doc)")
    args = ap.parse_args()
    load = {"clients": args.clients, "subscribers": args.subscribers}
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp, environment(Path(tmp), args.pin) as env:
        trainer_cpus, other_cpus = env["cpus"]
        train_once(env, 6, None)  # warm-up: model files in the page cache, worker imports done
        unloaded, loaded, requests, errors, sse = [], [], 0, 0, []
        for _ in range(args.repeats):
            unloaded.append(train_once(env, args.steps, None)[0])
            tps, stats = train_once(env, args.steps, load)
            assert stats is not None
            loaded.append(tps)
            requests += stats.requests
            errors += len(stats.errors) + len(stats.sse_errors)
            sse.append(min(len(v) for v in stats.sse_events.values()))
    base, value = statistics.median(unloaded), statistics.median(loaded)
    ratio = value / base
    loaded_ok = requests > 0 and min(sse) > 0  # the load really ran while the job trained
    print(f"unloaded tokens/s: {noise(unloaded)}; loaded: {noise(loaded)}; {requests} API requests, "
          f"{errors} errors, fewest SSE events per subscriber per run: {sse}")
    record("load_training_ratio", value=value, unit="tokens/s", baseline=base, ratio=ratio,
           target=">= 0.95 (loaded / unloaded tokens/s)", runs=loaded, baseline_name="same job, idle API",
           command="python -m bench.bench_load" + ("" if args.pin else " --no-pin"), met=ratio >= 0.95 and errors == 0 and loaded_ok,
           notes=json.dumps({"unloaded_runs": [round(x, 1) for x in unloaded], "clients": args.clients,
                             "sse_subscribers": args.subscribers, "api_requests": requests, "errors": errors,
                             "min_sse_events": sse,
                             "cpus": {"trainer": sorted(trainer_cpus), "api_clients_redis_s3": sorted(other_cpus)}
                             if trainer_cpus and other_cpus else "unpinned"}))


if __name__ == "__main__":
    main()
