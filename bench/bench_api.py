"""API benchmarks: Evolution page first render, and live-feed fan-out latency.

    .venv/bin/python -m bench.bench_api [--examples 1000 --snapshots 200 --subscribers 50]

``evolution_page_render``: seconds from navigation until the Evolution page of a job with 1,000 tracked
examples x 200 snapshots has drawn its curves, example table and cartography, in headless Chromium (fresh
browser context each run); baseline: the same page for a job of 10 examples x 5 snapshots.
``sse_fanout_p95``: ms from a metric's XADD (its stream entry timestamp) to its arrival at each of 50
concurrent SSE subscribers of an API server running as its own process; baseline: one bare redis-py
``XREAD BLOCK`` reader of the same stream.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import redis

from bench.common import record
from services.api.main import create_app
from services.stack.servers import RedisServer, S3Server, free_port
from shared.bus import publish
from shared.events import Event, MetricsLogged
from shared.settings import ApiSettings
from shared.storage import ensure_bucket, s3_client
from tests.support.browser import launch_chromium
from tests.support.evolution import seed_evolution
from tests.support.servers import serve_app

S3_KEY, S3_SECRET = "bench", "bench-secret-api"


def p95(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]


# --- Evolution page ----------------------------------------------------------------------------------------
def render_times(url: str, repeats: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    out = []
    with sync_playwright() as p:
        browser = launch_chromium(p)
        for _ in range(repeats):
            ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = ctx.new_page()
            t0 = time.perf_counter()
            page.goto(url)
            page.wait_for_function(
                "document.body.dataset.ready === '1' && document.querySelector(\"canvas[data-chart='cartography']\")"
                " && document.querySelectorAll('[data-testid=examples] tbody tr').length > 0", timeout=60_000)
            out.append(time.perf_counter() - t0)
            ctx.close()
        browser.close()
    return out


def bench_evolution(settings: ApiSettings, n_examples: int, n_snaps: int, repeats: int) -> None:
    app = create_app(settings, targets=[])
    r = redis.Redis.from_url(settings.redis_url)
    t0 = time.perf_counter()
    steps = list(range(0, 10 * n_snaps, 10))
    for i in range(0, len(steps), 20):  # in batches, so memory stays flat
        seed_evolution(r, app.state.registry, "job-big", n_examples=n_examples, steps=steps[i:i + 20])
    seed_evolution(r, app.state.registry, "job-small", n_examples=10, steps=list(range(0, 50, 10)))
    print(f"seeded {n_examples} x {n_snaps} snapshots in {time.perf_counter() - t0:.1f} s")
    with serve_app(app) as server:
        big = render_times(f"{server.url}/#/evolution/job-big", repeats)
        small = render_times(f"{server.url}/#/evolution/job-small", repeats)
    value, base = statistics.median(big), statistics.median(small)
    record("evolution_page_render", value=value, unit="s", baseline=base, ratio=value / base, runs=big,
           target="<= 1 s first render, 1,000 examples x 200 snapshots, headless Chromium",
           baseline_name="same page, 10 examples x 5 snapshots", met=value <= 1.0,
           command="python -m bench.bench_api",
           notes=f"{n_examples} examples x {n_snaps} snapshots; fresh browser context per run; "
                 "ends when curves, the example table and the cartography scatter are drawn")


# --- SSE fan-out -------------------------------------------------------------------------------------------
async def subscriber(url: str, latencies: list[float], ready: asyncio.Event, counter: list[int], n: int,
                     n_events: int) -> None:
    got = 0
    async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=60)) as c, \
            c.stream("GET", url, params={"types": "metrics.logged"}) as res:
        async for line in res.aiter_lines():
            if line.startswith("retry:"):
                counter[0] += 1
                if counter[0] == n:
                    ready.set()
            elif line.startswith("id:"):
                ms = int(line[3:].strip().split("-")[0])
                latencies.append(time.time() * 1000 - ms)
                got += 1
                if got >= n_events:
                    return


async def fanout_run(url: str, redis_url: str, n_subs: int, n_events: int) -> list[float]:
    latencies: list[float] = []
    ready = asyncio.Event()
    counter = [0]
    tasks = [asyncio.create_task(subscriber(f"{url}/api/events/stream", latencies, ready, counter, n_subs,
                                               n_events))
             for _ in range(n_subs)]
    await asyncio.wait_for(ready.wait(), 30)
    await asyncio.sleep(0.5)
    r = redis.Redis.from_url(redis_url)
    for i in range(n_events):
        publish(r, Event.create("metrics.logged", MetricsLogged(step=i + 1, loss=1.0), job_id="bench"))
        await asyncio.sleep(0.1)
    await asyncio.wait_for(asyncio.gather(*tasks), 30)
    return latencies


def bare_xread(redis_url: str, n_events: int) -> list[float]:
    r = redis.Redis.from_url(redis_url)
    stream = "ty:stream:metrics"
    last = r.xrevrange(stream, count=1)
    pos = last[0][0] if last else "0-0"
    out: list[float] = []

    def reader() -> None:
        nonlocal pos
        c = redis.Redis.from_url(redis_url)
        while len(out) < n_events:
            for _, entries in c.xread({stream: pos}, block=1000) or []:
                for eid, _f in entries:
                    pos = eid
                    out.append(time.time() * 1000 - int(eid.decode().split("-")[0]))

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.3)
    for i in range(n_events):
        publish(r, Event.create("metrics.logged", MetricsLogged(step=i + 1, loss=1.0), job_id="bare"))
        time.sleep(0.1)
    t.join(30)
    return out


def bench_fanout(settings_env: dict[str, str], redis_url: str, n_subs: int, n_events: int, repeats: int) -> None:
    port = free_port()
    env = {**os.environ, **settings_env, "TRAINYARD_PORT": str(port), "TRAINYARD_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([sys.executable, "-m", "services.api.main"], env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        runs, all_lat = [], []
        for _ in range(repeats):
            lat = asyncio.run(fanout_run(url, redis_url, n_subs, n_events))
            runs.append(p95(lat))
            all_lat += lat
        base_runs = [p95(bare_xread(redis_url, n_events)) for _ in range(repeats)]
    finally:
        proc.terminate()
        proc.wait(10)
    value, base = statistics.median(runs), statistics.median(base_runs)
    record("sse_fanout_p95", value=value, unit="ms", baseline=base, ratio=value / max(base, 1e-3), runs=runs,
           target="<= 200 ms p95 from XADD to each of 50 SSE subscribers", met=value <= 200,
           baseline_name="one bare redis-py XREAD BLOCK reader", command="python -m bench.bench_api",
           notes=f"{n_subs} subscribers x {n_events} metrics per run, API server in its own process; "
                 f"max over all runs {max(all_lat):.1f} ms; latency from the stream entry's timestamp (ms)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=1000)
    ap.add_argument("--snapshots", type=int, default=200)
    ap.add_argument("--subscribers", type=int, default=50)
    ap.add_argument("--events", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--only", choices=["evolution", "sse"], default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-api-"))
    rs = RedisServer(tmp / "redis", appendonly=False).start()
    s3 = S3Server(tmp / "s3", S3_KEY, S3_SECRET).start() if args.only != "sse" else None
    env = {"TRAINYARD_DEV": "1", "TRAINYARD_REDIS_URL": rs.url, "TRAINYARD_S3_ENDPOINT": s3.endpoint if s3 else "127.0.0.1:9",
           "TRAINYARD_S3_ACCESS_KEY": S3_KEY, "TRAINYARD_S3_SECRET_KEY": S3_SECRET, "TRAINYARD_BUCKET": "bench-api",
           "TRAINYARD_STATE_DIR": str(tmp / "state")}
    try:
        if args.only != "sse":
            settings = ApiSettings(dev=True, redis_url=rs.url, s3_endpoint=s3.endpoint, s3_access_key=S3_KEY,
                                   s3_secret_key=S3_SECRET, bucket="bench-api", state_dir=tmp / "state")
            ensure_bucket(s3_client(settings), settings.bucket)
            bench_evolution(settings, args.examples, args.snapshots, args.repeats)
        if args.only != "evolution":
            bench_fanout(env, rs.url, args.subscribers, args.events, args.repeats)
    finally:
        rs.stop()
        if s3:
            s3.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
