"""The evolution projection and its queries on synthetic snapshot documents (real Redis and S3)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from services.evaluator import readmodel
from services.evaluator.exceptions import InvalidQueryError, UnknownJobError
from services.evaluator.readmodel import EvolutionProjection
from services.evaluator.snapshot import aggregates
from services.registry.client import RegistryClient
from shared import bus, storage
from shared.events import Event, SnapshotCaptured, SnapshotFailed
from shared.projection import ProjectionRunner, rebuild
from shared.storage import s3_client

TARGETS = ["Paris", "Rome", "Madrid"]
# exact match per step (0, 10, 20, 30) and gold confidence per step, per example
EXACT = ["0011", "0110", "0000"]
CONF = [[0.1, 0.2, 0.9, 0.95], [0.2, 0.9, 0.8, 0.1], [0.01, 0.02, 0.01, 0.03]]
STEPS = [0, 10, 20, 30]
PREDS = {False: "=HYPERLINK(\"x\") <script>alert(1)</script>", True: None}


def doc(job_id: str, k: int) -> dict:
    rows = []
    for i, target in enumerate(TARGETS):
        ok = EXACT[i][k] == "1"
        rows.append({"idx": i, "id": f"ex-{i}", "split": "heldout" if i == 2 else "train",
                     "question": f"What is the capital of {['France', 'Italy', 'Spain'][i]}?",
                     "prediction": target if ok else PREDS[False], "target": target, "loss": round(2.0 - k * 0.3 - i, 3),
                     "confidence": CONF[i][k], "exact": ok, "f1": 1.0 if ok else 0.0, "edit_sim": 1.0 if ok else 0.1,
                     "semantic": None, "pred_len": 3, "flags": []})
    return {"job_id": job_id, "version_id": None if k == 0 else f"v{k}", "step": STEPS[k],
            "captured_at": f"2025-01-01T00:00:{k:02d}+00:00", "max_new_tokens": 48, "examples": rows,
            "aggregates": aggregates(rows)}


def capture(r, registry: RegistryClient, job_id: str, k: int) -> None:
    d = doc(job_id, k)
    key = storage.snapshot_key(job_id, d["step"])
    registry.put_json(key, d)
    bus.publish(r, Event.create("snapshot.captured", SnapshotCaptured(
        version_id=d["version_id"], step=d["step"], key=key, aggregates=d["aggregates"]), job_id=job_id))


@pytest.fixture
def registry(common_settings) -> RegistryClient:
    reg = RegistryClient(s3_client(common_settings), common_settings.bucket)
    reg.ensure_bucket()
    return reg


@pytest.fixture
def loaded(r, registry: RegistryClient) -> ProjectionRunner:
    for k in range(4):
        capture(r, registry, "job-in-order", k)
    for k in (0, 2, 1, 3, 1):  # late and repeated steps
        capture(r, registry, "job-shuffled", k)
    bus.publish(r, Event.create("snapshot.failed", SnapshotFailed(version_id="v9", step=40, reason="blob x is missing"),
                                job_id="job-in-order"))
    runner = ProjectionRunner(r, EvolutionProjection(registry))
    runner.catch_up()
    return runner


def ids(result: dict) -> list[int]:
    return [x["idx"] for x in result["data"]]


def test_derived_states_counts_and_filters(r, loaded) -> None:
    rows = readmodel.examples(r, "job-in-order")["data"]
    assert [(x["learned_at"], x["forgetting_events"], x["state"]) for x in rows] == [
        (20, [], "learned"), (None, [30], "forgotten"), (None, [], "never_learned")]
    assert [x["region"] for x in rows] == ["ambiguous", "ambiguous", "hard-to-learn"]
    assert rows[0]["correctness"] == 0.5 and rows[0]["confidence_mean"] == pytest.approx(0.5375)
    counts = [s["counts"] for s in readmodel.curve(r, "job-in-order")]
    assert counts == [
        {"learned": 0, "forgotten": 0, "never_learned": 3},
        {"learned": 1, "forgotten": 0, "never_learned": 2},
        {"learned": 2, "forgotten": 0, "never_learned": 1},
        {"learned": 1, "forgotten": 1, "never_learned": 1},
    ]
    assert ids(readmodel.examples(r, "job-in-order", state="forgotten")) == [1]
    assert ids(readmodel.examples(r, "job-in-order", region="hard-to-learn")) == [2]
    assert ids(readmodel.examples(r, "job-in-order", q="ITALY")) == [1]
    assert ids(readmodel.examples(r, "job-in-order", q="<script>")) == [1, 2]
    assert ids(readmodel.examples(r, "job-in-order", split="heldout")) == [2]
    assert ids(readmodel.examples(r, "job-in-order", sort="learned_at")) == [0, 1, 2]
    assert ids(readmodel.examples(r, "job-in-order", sort="-loss")) == [0, 1, 2]
    assert ids(readmodel.examples(r, "job-in-order", sort="loss")) == [2, 1, 0]
    page = readmodel.examples(r, "job-in-order", offset=1, limit=1)
    assert ids(page) == [1] and page["count"] == 3
    jobs = {j["job_id"]: j for j in readmodel.list_jobs(r)}
    assert jobs["job-in-order"]["n_snapshots"] == 4 and jobs["job-in-order"]["failed"] == 1


def test_late_and_repeated_steps_give_the_same_answers(r, loaded) -> None:
    def strip(rows: list[dict]) -> list[dict]:
        return [{k: v for k, v in x.items() if k != "step"} for x in rows]

    assert strip(readmodel.examples(r, "job-shuffled")["data"]) == strip(readmodel.examples(r, "job-in-order")["data"])
    assert [s["counts"] for s in readmodel.curve(r, "job-shuffled")] == [
        s["counts"] for s in readmodel.curve(r, "job-in-order")]
    assert readmodel.example_history(r, "job-shuffled", 1)["history"] == readmodel.example_history(
        r, "job-in-order", 1)["history"]


def test_history_step_and_export(r, loaded) -> None:
    hist = readmodel.example_history(r, "job-in-order", 0)
    assert [h["step"] for h in hist["history"]] == STEPS
    assert hist["history"][3]["diff"] == [{"op": "equal", "prediction": "Paris", "target": "Paris"}]
    ops = hist["history"][0]["diff"]
    assert "".join(o["prediction"] for o in ops) == PREDS[False] and "".join(o["target"] for o in ops) == "Paris"
    step = readmodel.step_snapshot(r, "job-in-order", 20)
    assert [x["exact"] for x in step["examples"]] == [True, True, False] and step["counts"]["learned"] == 2
    rows = list(csv.DictReader(io.StringIO(readmodel.export(r, "job-in-order", "csv"))))
    assert len(rows) == 12 and rows[0]["prediction"].startswith("'=HYPERLINK")
    data = json.loads(readmodel.export(r, "job-in-order", "json"))
    assert len(data["curve"]) == 4 and len(data["examples"][2]["history"]) == 4


def test_bad_queries_are_refused_clearly(r, loaded) -> None:
    with pytest.raises(UnknownJobError, match="nope"):
        readmodel.curve(r, "nope")
    with pytest.raises(UnknownJobError):
        readmodel.examples(r, "nope")
    with pytest.raises(InvalidQueryError, match="sort"):
        readmodel.examples(r, "job-in-order", sort="colour")
    with pytest.raises(InvalidQueryError, match="state"):
        readmodel.examples(r, "job-in-order", state="maybe")
    with pytest.raises(InvalidQueryError, match="step 99"):
        readmodel.step_snapshot(r, "job-in-order", 99)
    with pytest.raises(InvalidQueryError, match="example 7"):
        readmodel.example_history(r, "job-in-order", 7)
    with pytest.raises(InvalidQueryError, match="format"):
        readmodel.export(r, "job-in-order", "xml")


def test_projection_rebuilds_to_the_same_answers(r, registry: RegistryClient, loaded) -> None:
    before = (readmodel.examples(r, "job-shuffled"), readmodel.curve(r, "job-in-order"), readmodel.list_jobs(r))
    report = rebuild(r, [EvolutionProjection(registry)], apply=True)[0]
    assert report.equal, report.differing
    assert report.applied == 10
    assert (readmodel.examples(r, "job-shuffled"), readmodel.curve(r, "job-in-order"), readmodel.list_jobs(r)) == before
