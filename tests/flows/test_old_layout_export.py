"""The old-layout export is named by the dataset: a file submitted as ``my_notes.jsonl`` (job named otherwise)
is trained by the real worker, and the evaluator writes ``data/evolution_snapshots/my_notes/step_000000.json``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import redis
from rq import SimpleWorker

from services.evaluator.main import build
from services.registry.client import RegistryClient
from services.trainer import queueing
from services.trainer.submit import submit_job
from shared import storage
from shared.modeling import demo_dataset_path
from shared.settings import EvaluatorSettings, TrainerSettings
from shared.storage import s3_client


def test_export_folder_is_the_dataset_file_stem(settings_kwargs: dict, r: redis.Redis, tiny_model: Path,
                                                tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kw = {**settings_kwargs, "checkpoints_dir": tmp_path / "ckpt", "inbox_dir": tmp_path / "inbox",
          "control_dir": tmp_path / "control"}
    for k, v in kw.items():  # the RQ job loads its settings from the environment, as the worker process does
        monkeypatch.setenv(f"TRAINYARD_{k.upper()}", str(v))
    trainer = TrainerSettings(**kw)
    data = tmp_path / "my_notes.jsonl"
    shutil.copyfile(demo_dataset_path(), data)
    spec = {"name": "experiment 1", "base_model": str(tiny_model), "max_steps": 1, "checkpoint_every": 10,
            "batch_size": 2, "grad_accum": 1, "warmup_steps": 0, "tracked": {"count": 3}, "device": "cpu",
            "max_seq_len": 64}
    job_id = submit_job(trainer, r, s3_client(trainer), data, spec=spec, source="cli")
    SimpleWorker(list(queueing.QUEUES), connection=r).work(burst=True)
    tracked = RegistryClient(s3_client(trainer), trainer.bucket).get_json(storage.tracked_key(job_id))
    assert tracked["dataset_name"] == "my_notes"

    evaluator = EvaluatorSettings(**settings_kwargs, embeddings=False, batch_size=8)
    consumer, _ = build(evaluator, r, consumer="test-export")
    consumer.ensure_groups()
    while consumer.run_once(block_ms=50):
        pass
    root = Path(evaluator.state_dir) / "data" / "evolution_snapshots"
    assert sorted(p.name for p in root.iterdir()) == ["my_notes"]
    baseline = json.loads((root / "my_notes" / "step_000000.json").read_text())
    assert baseline["job_id"] == job_id and baseline["step"] == 0
