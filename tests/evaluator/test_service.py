"""The evaluator end to end on real Redis and S3 with the tiny model: events in, snapshots and views out."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from services.evaluator import readmodel
from services.evaluator.capture import Request
from services.evaluator.main import build
from services.evaluator.readmodel import EvolutionProjection
from services.registry.client import RegistryClient
from shared import storage, streams
from shared.bus import read_all
from shared.projection import rebuild
from shared.settings import EvaluatorSettings
from shared.storage import s3_client
from tests.support.evaluator import publish_job, publish_version, put_tracked, store_version
from tests.support.lora import make_lora_adapter


def drain(consumer) -> int:
    consumer.ensure_groups()
    total, idle = 0, 0
    while idle < 2:
        n = consumer.run_once(block_ms=50)
        total += n
        idle = idle + 1 if n == 0 else 0
    return total


def evolution_events(r) -> list:
    return [e for _, e in read_all(r, streams.EVOLUTION)]


@pytest.fixture
def svc(settings_kwargs: dict, r):
    settings = EvaluatorSettings(**settings_kwargs, embeddings=False, batch_size=8)
    consumer, runner = build(settings, r, consumer="test-1")
    registry = RegistryClient(s3_client(settings), settings.bucket)
    return settings, consumer, runner, registry


def test_baseline_then_checkpoint_snapshot_and_queries(svc, r, tiny_model: Path, tmp_path: Path) -> None:
    settings, consumer, runner, registry = svc
    base = str(tiny_model)
    put_tracked(registry, "job-a", n=8, heldout=2)
    publish_job(r, "job-a", base)
    drain(consumer)

    baseline = registry.get_json(storage.snapshot_key("job-a", 0))
    assert baseline is not None and baseline["version_id"] is None and baseline["step"] == 0
    assert len(baseline["examples"]) == 8
    row = baseline["examples"][0]
    assert row["target"] == "Paris" and isinstance(row["loss"], float) and 0 < row["confidence"] < 1
    assert row["semantic"] is None and "disabled" in baseline["semantic"]
    assert baseline["aggregates"]["train"]["n"] == 6 and baseline["aggregates"]["heldout"]["n"] == 2
    export = Path(settings.state_dir) / "data" / "evolution_snapshots" / "demo" / "step_000000.json"
    assert json.loads(export.read_text())["step"] == 0

    vid, files = store_version(registry, make_lora_adapter(tiny_model, tmp_path / "a10", seed=1), job_id="job-a",
                               step=10, base_model=base)
    publish_version(r, vid, files, job_id="job-a", step=10, base_model=base)
    drain(consumer)
    snap10 = registry.get_json(storage.snapshot_key("job-a", 10))
    assert snap10["version_id"] == vid
    assert [e["prediction"] for e in snap10["examples"]] != [e["prediction"] for e in baseline["examples"]]
    captured = [e for e in evolution_events(r) if e.type == "snapshot.captured"]
    assert [(e.job_id, e.payload["step"]) for e in captured] == [("job-a", 0), ("job-a", 10)]

    runner.catch_up()
    jobs = readmodel.list_jobs(r)
    assert [(j["job_id"], j["n_snapshots"], j["last_step"], j["n_examples"]) for j in jobs] == [("job-a", 2, 10, 8)]
    assert [s["step"] for s in readmodel.curve(r, "job-a")] == [0, 10]
    listing = readmodel.examples(r, "job-a", limit=5)
    assert listing["count"] == 8 and [x["idx"] for x in listing["data"]] == [0, 1, 2, 3, 4]
    hist = readmodel.example_history(r, "job-a", 0)
    assert [h["step"] for h in hist["history"]] == [0, 10]
    assert hist["history"][1]["prediction"] == snap10["examples"][0]["prediction"]
    assert any(op["op"] != "equal" for op in hist["history"][1]["diff"])
    step = readmodel.step_snapshot(r, "job-a", 10)
    assert [x["prediction"] for x in step["examples"]] == [e["prediction"] for e in snap10["examples"]]

    report = rebuild(r, [EvolutionProjection(registry)])[0]
    assert report.equal, report.differing
    assert report.applied == 2


def test_redelivery_and_crash_before_publish_make_no_duplicates(svc, r, tiny_model: Path, tmp_path: Path) -> None:
    settings, consumer, runner, registry = svc
    base = str(tiny_model)
    put_tracked(registry, "job-b", n=4, heldout=1)
    vid, files = store_version(registry, make_lora_adapter(tiny_model, tmp_path / "b20", seed=2), job_id="job-b",
                               step=20, base_model=base)
    capturer = consumer.handlers["version.stored"].__self__.capturer

    # A crash after the S3 upload and before the publish: the document is there, no event yet.
    req = Request(job_id="job-b", step=20, version_id=vid, base_model=base)
    doc = capturer.compute(req)
    registry.put_json(storage.snapshot_key("job-b", 20), doc)

    publish_version(r, vid, files, job_id="job-b", step=20, base_model=base)
    publish_version(r, vid, files, job_id="job-b", step=20, base_model=base)  # a producer publishing twice
    drain(consumer)
    captured = [e for e in evolution_events(r) if e.type == "snapshot.captured"]
    assert [(e.job_id, e.payload["step"]) for e in captured] == [("job-b", 20)]
    assert registry.get_json(storage.snapshot_key("job-b", 20))["captured_at"] == doc["captured_at"]  # reused
    assert capturer.handle(req) is None  # and a direct retry is a no-op


def test_missing_blob_gives_a_failed_snapshot_event(svc, r, tiny_model: Path, tmp_path: Path) -> None:
    settings, consumer, runner, registry = svc
    base = str(tiny_model)
    put_tracked(registry, "job-c", n=3, heldout=0)
    vid, files = store_version(registry, make_lora_adapter(tiny_model, tmp_path / "c5", seed=3), job_id="job-c",
                               step=5, base_model=base)
    weights = next(f for f in files if f["path"] == "adapter_model.safetensors")
    registry.s3.remove_object(registry.bucket, storage.blob_key(weights["sha256"]))
    publish_version(r, vid, files, job_id="job-c", step=5, base_model=base)
    drain(consumer)
    failed = [e for e in evolution_events(r) if e.type == "snapshot.failed"]
    assert len(failed) == 1 and failed[0].payload["step"] == 5 and failed[0].payload["version_id"] == vid
    assert "missing" in failed[0].payload["reason"] and weights["sha256"] in failed[0].payload["reason"]
    assert registry.get_json(storage.snapshot_key("job-c", 5)) is None
    runner.catch_up()
    assert readmodel.list_jobs(r)[0]["failed"] == 1
    assert readmodel.failures(r, "job-c")[0]["reason"] == failed[0].payload["reason"]


def test_missing_tracked_examples_fail_clearly(svc, r, tiny_model: Path) -> None:
    settings, consumer, runner, registry = svc
    publish_job(r, "job-d", str(tiny_model))
    drain(consumer)
    failed = [e for e in evolution_events(r) if e.type == "snapshot.failed"]
    assert len(failed) == 1 and "tracked/job-d.json" in failed[0].payload["reason"]
    assert Counter(e.type for e in evolution_events(r)) == {"snapshot.failed": 1}


def test_only_the_adapter_is_fetched_and_pickled_weights_are_refused_unread(svc, r, tiny_model: Path,
                                                                            tmp_path: Path) -> None:
    """A checkpoint version also holds optimizer and RNG state: the snapshot downloads the adapter alone (the
    optimizer's blob is gone from S3 and the snapshot still succeeds). A version with pickled weights fails
    with that reason before anything is downloaded."""
    settings, consumer, runner, registry = svc
    base = str(tiny_model)
    put_tracked(registry, "job-e", n=3, heldout=0)
    ckpt = make_lora_adapter(tiny_model, tmp_path / "e10", seed=5)
    (ckpt / "optimizer.pt").write_bytes(b"optimizer state " * 1000)
    (ckpt / "trainer_state.json").write_text("{}")
    vid, files = store_version(registry, ckpt, job_id="job-e", step=10, base_model=base)
    optimizer = next(f for f in files if f["path"] == "optimizer.pt")
    registry.s3.remove_object(registry.bucket, storage.blob_key(optimizer["sha256"]))
    publish_version(r, vid, files, job_id="job-e", step=10, base_model=base)

    pickled = make_lora_adapter(tiny_model, tmp_path / "e20", seed=6)
    (pickled / "adapter_model.bin").write_bytes(b"not really a pickle")
    vid2, files2 = store_version(registry, pickled, job_id="job-e", step=20, base_model=base)
    for f in files2:  # nothing of it may be read: remove every blob it does not share with step 10
        if f["sha256"] not in {g["sha256"] for g in files}:
            registry.s3.remove_object(registry.bucket, storage.blob_key(f["sha256"]))
    publish_version(r, vid2, files2, job_id="job-e", step=20, base_model=base)
    drain(consumer)
    by_step = {e.payload["step"]: e for e in evolution_events(r)}
    assert by_step[10].type == "snapshot.captured"
    assert by_step[20].type == "snapshot.failed"
    assert by_step[20].payload["reason"] == "refusing pickled weights in the version: adapter_model.bin"
