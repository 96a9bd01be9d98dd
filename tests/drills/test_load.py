"""Load: 8 concurrent API clients and 50 SSE subscribers on the real gateway while the real trainer worker
trains a job. Bounded in count and time; asserts correctness only (no errors, every subscriber gets the
job's events without duplicates, training completes). Speed is measured by ``bench/bench_load.py``.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from bench.bench_load import LoadGenerator
from services.api.main import create_app
from services.trainer.projection import get_job
from services.trainer.submit import submit_job
from shared import streams
from shared.modeling import demo_dataset_path
from shared.settings import ApiSettings
from shared.storage import s3_client
from tests.support.servers import serve_app
from tests.support.trainer import events, make_settings, start_worker, stop_worker, tiny_spec, wait_for

CLIENTS, REQUESTS_EACH, SUBSCRIBERS = 8, 40, 50


@pytest.mark.slow
def test_api_clients_and_50_sse_subscribers_during_training(settings_kwargs: dict, tmp_path: Path,
                                                             r: redis.Redis, tiny_model: Path) -> None:
    trainer = make_settings(settings_kwargs, tmp_path)
    api = ApiSettings(**settings_kwargs, api_token="load-token", uploads_dir=tmp_path / "uploads")
    s3 = s3_client(trainer)
    spec = tiny_spec(tiny_model, max_steps=30, checkpoint_every=15, log_every=1, batch_size=4)
    job_id = submit_job(trainer, r, s3, demo_dataset_path(), spec=spec)
    with serve_app(create_app(api, targets=[])) as server:
        proc = start_worker(trainer, tmp_path / "worker.log")
        gen = LoadGenerator(server.url, job_id, clients=CLIENTS, subscribers=SUBSCRIBERS,
                            requests_per_client=REQUESTS_EACH, think_s=0.02, since="0-0")
        try:
            deadline = time.monotonic() + 120
            while get_job(r, job_id) is None and time.monotonic() < deadline:  # the worker builds the jobs view
                time.sleep(0.05)
            gen.start()
            wait_for(r, streams.JOBS, lambda e: e.job_id == job_id and e.type == "job.completed", timeout=300,
                     proc=proc)
            deadline = time.monotonic() + 120
            while not gen.clients_done() and time.monotonic() < deadline:
                time.sleep(0.2)
            assert gen.clients_done(), "API clients did not finish their requests in time"
            time.sleep(2.0)  # let the feed deliver the last events
        finally:
            stats = gen.stop()
            stop_worker(proc)
    assert stats.errors == [], stats.errors[:5]
    assert stats.sse_errors == [], stats.sse_errors[:5]
    assert stats.requests == CLIENTS * REQUESTS_EACH
    n_metrics = len(events(r, streams.METRICS, job_id))
    assert n_metrics >= 30
    for i, ids in stats.sse_events.items():
        assert len(ids) == len(set(ids)), f"subscriber {i}: duplicated events"
        assert len(ids) >= n_metrics, f"subscriber {i} got {len(ids)} events, {n_metrics} metrics were logged"
