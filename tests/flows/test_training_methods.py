"""Training methods through the real worker path on real Redis and S3: a full fine-tune (versioned as kind
``full``, snapshotted by the evaluator, exported by the CLI) and continue-from-version over three generations
(lineage base -> v1 -> v2 -> v3 in ``GET /api/versions/{id}/lineage``)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import torch
from fastapi.testclient import TestClient
from rq import SimpleWorker
from safetensors.torch import load_file

from services.api.main import create_app
from services.evaluator.main import build as build_evaluator
from services.registry import commands, handlers
from services.registry.context import Registry
from services.registry.main import build_loops
from services.registry.projection import list_versions
from services.trainer import jobstore, queueing, recipe
from services.trainer.exceptions import SpecError
from services.trainer.submit import submit_job
from shared import storage, streams
from shared.bus import Consumer, ConsumerConfig, read_all
from shared.modeling import build_tiny_model, demo_dataset_path
from shared.settings import ApiSettings, EvaluatorSettings, RegistrySettings, TrainerSettings
from shared.storage import s3_client
from tests.support.registry import dropped_after
from tests.support.servers import serve_app
from tests.support.trainer import tiny_spec

TOKEN = "methods-token"


@pytest.fixture
def settings(settings_kwargs: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TrainerSettings:
    kw = {**settings_kwargs, "checkpoints_dir": tmp_path / "ckpt", "inbox_dir": tmp_path / "inbox",
          "control_dir": tmp_path / "control"}
    for k, v in kw.items():
        monkeypatch.setenv(f"TRAINYARD_{k.upper()}", str(v))  # run_job reads its settings from the environment
    return TrainerSettings(**kw)


@pytest.fixture
def reg(settings_kwargs: dict, r: redis.Redis, bucket: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    monkeypatch.setenv("TRAINYARD_REPLICA_BUCKET", f"{bucket}-replica")
    with dropped_after(Registry.open(RegistrySettings(**settings_kwargs, replica_bucket=f"{bucket}-replica"),
                                     r)) as reg:
        yield reg


def registry_pass(reg: Registry) -> None:
    """What the registry service does: checkpoint.saved -> version.stored, and the versions view (its own
    thread in the service, seconds ahead of the next checkpoint: here caught up after every event)."""
    _consumer, _replica, projection = build_loops(reg, consumer_name="methods-test")
    config = ConsumerConfig(group=streams.GROUP_REGISTRY, consumer="methods-test", batch=1,
                            streams=(streams.CHECKPOINTS, streams.REGISTRY, streams.EVOLUTION))
    consumer = Consumer(reg.r, config, handlers.handlers(reg))
    consumer.ensure_groups()
    while consumer.run_once(block_ms=10):
        projection.catch_up()
    projection.catch_up()


def train(settings: TrainerSettings, r: redis.Redis, reg: Registry, spec: dict) -> str:
    job_id = submit_job(settings, r, s3_client(settings), demo_dataset_path(), spec=spec, source="cli")
    SimpleWorker(list(queueing.QUEUES), connection=r).work(burst=True)
    jobs = [e.type for _, e in read_all(r, streams.JOBS) if e.job_id == job_id]
    assert jobs[-1] == "job.completed", jobs
    registry_pass(reg)
    return job_id


def versions_of(r: redis.Redis, job_id: str) -> list[dict]:
    return sorted((v for v in list_versions(r, job_id=job_id) if v["kind"] != "dataset"), key=lambda v: v["step"])


def test_full_fine_tune_is_versioned_snapshotted_and_exported(settings: TrainerSettings, r: redis.Redis,
                                                               reg: Registry, settings_kwargs: dict,
                                                               tiny_model: Path, tmp_path: Path) -> None:
    spec = tiny_spec(tiny_model, method="full", lr=1e-3, max_steps=4, checkpoint_every=2, lora_dropout=0.0)
    job_id = train(settings, r, reg, spec)

    record = jobstore.load(r, job_id)
    assert record["spec"]["method"] == "full" and record["spec"]["gradient_checkpointing"] is True
    ckpt = settings.checkpoints_dir / job_id / "checkpoint-4"
    names = {p.name for p in ckpt.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "optimizer.pt", "scheduler.pt",
            "rng_state.pth", "trainyard_job.json"} <= names
    assert not any(n.startswith("adapter") for n in names)
    # every parameter trained: each tensor of the checkpoint differs from the base model's
    base = load_file(str(tiny_model / "model.safetensors"))
    trained = load_file(str(ckpt / "model.safetensors"))
    assert set(trained) == set(base)
    assert [k for k in base if torch.equal(base[k], trained[k])] == []
    # fp32 AdamW states for every parameter (on CUDA the weights would be bf16, the states still fp32)
    opt = torch.load(ckpt / "optimizer.pt", weights_only=True)
    assert len(opt["state"]) == len(base)
    assert {s["exp_avg"].dtype for s in opt["state"].values()} == {torch.float32}

    versions = versions_of(r, job_id)
    assert [(v["kind"], v["step"]) for v in versions] == [("full", 2), ("full", 4)]
    assert all(v["version_id"].startswith("ft-") for v in versions)
    v2, v4 = versions
    assert v4["lineage"]["parent_version_id"] == v2["version_id"]

    ev_settings = EvaluatorSettings(**settings_kwargs, embeddings=False, batch_size=8)
    consumer, _runner = build_evaluator(ev_settings, r, consumer="methods-eval")
    consumer.ensure_groups()
    while consumer.run_once(block_ms=50):
        pass
    snaps = [e for _, e in read_all(r, streams.EVOLUTION) if e.job_id == job_id]
    assert [(e.type, e.payload["step"]) for e in snaps] == [("snapshot.captured", 0), ("snapshot.captured", 2),
                                                             ("snapshot.captured", 4)]
    registry = reg.primary
    baseline = registry.get_json(storage.snapshot_key(job_id, 0))
    last = registry.get_json(storage.snapshot_key(job_id, 4))
    assert last["version_id"] == v4["version_id"]
    # the full weights were evaluated, not the base model: every example's loss moved
    assert all(a["loss"] != b["loss"] for a, b in zip(baseline["examples"], last["examples"], strict=True))

    dest = tmp_path / "exported"
    cli = Path(sys.executable).with_name("trainyard")
    api = ApiSettings(**settings_kwargs, api_token=TOKEN, uploads_dir=tmp_path / "up")
    with serve_app(create_app(api, targets=[])) as server:  # the CLI goes through the REST gateway
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TRAINYARD_API_URL": server.url,
               "TRAINYARD_API_TOKEN": TOKEN}
        proc = subprocess.run([str(cli), "versions", "export", v4["version_id"], str(dest), "--json"],
                              capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["dest"] == str(dest)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(dest, use_safetensors=True)
    assert all(torch.equal(t, model.state_dict()[k]) for k, t in trained.items() if k in model.state_dict())
    assert AutoTokenizer.from_pretrained(dest).chat_template

    with pytest.raises(SpecError, match="full fine-tune; continue it with method: full"):
        submit_job(settings, r, s3_client(settings), demo_dataset_path(),
                   spec=tiny_spec(tiny_model, init_from=v4["version_id"]))


def _lineage(settings_kwargs: dict, tmp_path: Path, version_id: str) -> dict:
    api = ApiSettings(**settings_kwargs, api_token=TOKEN, uploads_dir=tmp_path / "up")
    with TestClient(create_app(api, targets=[])) as client:
        resp = client.get(f"/api/versions/{version_id}/lineage", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_three_generations_continue_from_each_other(settings: TrainerSettings, r: redis.Redis, reg: Registry,
                                                      settings_kwargs: dict, tiny_model: Path,
                                                      tmp_path: Path) -> None:
    base = commands.import_dir(reg, tiny_model, kind="base")["version_id"]
    spec = tiny_spec(tiny_model, max_steps=2, checkpoint_every=2, lora_dropout=0.0)
    gen1 = train(settings, r, reg, spec)
    (v1,) = versions_of(r, gen1)
    gen2 = train(settings, r, reg, {**spec, "init_from": "latest", "lora_r": 4})  # an alias; the adapter's r wins
    assert jobstore.load(r, gen2)["spec"]["init_from"] == v1["version_id"]  # resolved at submit
    (v2,) = versions_of(r, gen2)
    gen3 = train(settings, r, reg, {**spec, "init_from": v2["version_id"]})
    (v3,) = versions_of(r, gen3)
    assert [v["kind"] for v in (v1, v2, v3)] == ["adapter"] * 3
    assert v2["lineage"]["parent_version_id"] == v1["version_id"]
    assert v3["lineage"]["parent_version_id"] == v2["version_id"]

    # generation 2 started from v1's adapter weights, not from a fresh LoRA
    init, kind = recipe.fetch_init(settings, s3_client(settings), v1["version_id"])
    model, _tok = recipe.build_model(settings_spec(jobstore.load(r, gen2)["spec"]), "cpu", init, kind)
    stored = load_file(str(init / "adapter_model.safetensors"))
    live = {k: t for k, t in model.state_dict().items() if "lora_" in k}
    assert len(live) == len(stored) and all(any(torch.equal(t, s) for s in stored.values()) for t in live.values())
    assert all(p.requires_grad for n, p in model.named_parameters() if "lora_" in n)

    graph = _lineage(settings_kwargs, tmp_path, v3["version_id"])
    edges = {(e["from"], e["to"], e["relation"]) for e in graph["edges"]}
    ids = [base, v1["version_id"], v2["version_id"], v3["version_id"]]
    assert {(ids[i], ids[i + 1], "parent") for i in (1, 2)} <= edges
    assert (base, v1["version_id"], "base") in edges
    assert {n["version_id"] for n in graph["nodes"]} >= set(ids)

    other = build_tiny_model(tmp_path / "other-base", seed=1)
    with pytest.raises(SpecError, match="was trained from base model"):
        submit_job(settings, r, s3_client(settings), demo_dataset_path(),
                   spec=tiny_spec(other, init_from=v3["version_id"]))
    commands.trash(reg, v1["version_id"])
    with pytest.raises(SpecError, match="is in the trash"):
        submit_job(settings, r, s3_client(settings), demo_dataset_path(), spec={**spec, "init_from": v1["version_id"]})
    with pytest.raises(SpecError, match="neither a stored version id nor an alias"):
        submit_job(settings, r, s3_client(settings), demo_dataset_path(), spec={**spec, "init_from": "nope"})


def settings_spec(raw: dict):
    from services.trainer.spec import JobSpec

    return JobSpec.model_validate(raw)
