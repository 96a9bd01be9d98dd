"""Walking skeleton: submit -> RQ worker -> LoRA training -> events, checkpoints, tracked doc, projection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
from rq import SimpleWorker

from services.registry.client import RegistryClient
from services.trainer import projection, queueing
from services.trainer.projection import JobsProjection
from services.trainer.submit import submit_job
from shared import streams
from shared.bus import read_all
from shared.modeling import demo_dataset_path
from shared.projection import ProjectionRunner
from shared.settings import TrainerSettings
from shared.storage import s3_client, sha256_file


@pytest.fixture
def settings(settings_kwargs: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TrainerSettings:
    kw = {**settings_kwargs, "checkpoints_dir": tmp_path / "ckpt", "inbox_dir": tmp_path / "inbox",
          "control_dir": tmp_path / "control"}
    for k, v in kw.items():
        monkeypatch.setenv(f"TRAINYARD_{k.upper()}", str(v))
    return TrainerSettings(**kw)


def tiny_spec(tiny_model: Path, **kw: object) -> dict:
    return {"base_model": str(tiny_model), "lr": 3e-3, "max_steps": 6, "checkpoint_every": 3, "log_every": 1,
            "batch_size": 4, "grad_accum": 1, "warmup_steps": 0, "tracked": {"count": 5}, "device": "cpu",
            "max_seq_len": 64, **kw}


def types(r: redis.Redis, stream: str, job_id: str | None = None) -> list[str]:
    return [e.type for _, e in read_all(r, stream) if job_id is None or e.job_id == job_id]


def test_submit_train_complete(settings: TrainerSettings, r: redis.Redis, tiny_model: Path) -> None:
    s3 = s3_client(settings)
    job_id = submit_job(settings, r, s3, demo_dataset_path(), spec=tiny_spec(tiny_model), source="cli")
    assert [j for _, j in queueing.order(r)] == [job_id]
    assert types(r, streams.REGISTRY) == ["dataset.stored"]
    worker = SimpleWorker(list(queueing.QUEUES), connection=r)
    worker.work(burst=True)

    jobs = types(r, streams.JOBS, job_id)
    assert jobs == ["job.queued", "job.started", "job.completed"]
    metrics = [e for _, e in read_all(r, streams.METRICS)]
    assert [m.payload["step"] for m in metrics] == [1, 2, 3, 4, 5, 6]
    assert all(m.payload["loss"] > 0 for m in metrics)
    ckpts = [e for _, e in read_all(r, streams.CHECKPOINTS)]
    assert [(c.payload["step"], c.payload["final"]) for c in ckpts] == [(3, False), (6, True)]
    for c in ckpts:
        root = Path(c.payload["checkpoint_dir"])
        files = {f["path"]: f for f in c.payload["files"]}
        assert "adapter_model.safetensors" in files and "trainyard_job.json" in files
        assert not any(p.endswith(".bin") and "adapter" in p for p in files)
        for rel, f in files.items():
            assert sha256_file(root / rel) == f["sha256"]
        saved = json.loads((root / "trainyard_job.json").read_text())
        assert saved["spec"]["lr"] == 3e-3 and saved["spec"]["dataset_sha256"] == c.payload["dataset_sha256"]
        assert c.payload["tracked_key"] == f"tracked/{job_id}.json"
    tracked = RegistryClient(s3, settings.bucket).get_json(f"tracked/{job_id}.json")
    assert tracked["job_id"] == job_id and len(tracked["examples"]) == 5
    assert tracked["examples"][0]["messages"][-1]["role"] == "assistant"

    runner = ProjectionRunner(r, JobsProjection())
    runner.catch_up()
    job = projection.get_job(r, job_id)
    assert job is not None and job["state"] == "completed" and job["step"] == 6
    assert job["checkpoints"] == [3, 6] and job["dataset"]["n_examples"] == 55
    assert [m["step"] for m in projection.job_metrics(r, job_id, since_step=4)] == [4, 5, 6]
    assert [j["id"] for j in projection.list_jobs(r)] == [job_id]


def test_packed_job_trains_through_the_recipe(settings: TrainerSettings, r: redis.Redis, tiny_model: Path) -> None:
    """`packing: true` goes through run_job (PackCollator + per-example attention) and learns."""
    s3 = s3_client(settings)
    spec = tiny_spec(tiny_model, packing=True, max_steps=8, checkpoint_every=8, lora_dropout=0.0)
    job_id = submit_job(settings, r, s3, demo_dataset_path(), spec=spec, source="cli")
    SimpleWorker(list(queueing.QUEUES), connection=r).work(burst=True)
    assert types(r, streams.JOBS, job_id)[-1] == "job.completed"
    losses = [e.payload["loss"] for _, e in read_all(r, streams.METRICS) if e.job_id == job_id]
    assert len(losses) == 8 and all(x == x and x > 0 for x in losses)  # finite, no NaN
    assert min(losses[-3:]) < losses[0]
