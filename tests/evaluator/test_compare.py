"""Comparing runs example by example, through the real evolution projection on real Redis and S3."""

from __future__ import annotations

import pytest

from services.evaluator import api as readmodel  # the read functions, on the public module
from services.evaluator.exceptions import InvalidQueryError, UnknownJobError
from services.evaluator.readmodel import EvolutionProjection
from services.registry.client import RegistryClient
from shared.projection import LIVE, View, rebuild
from shared.storage import s3_client
from tests.support.evolution import seed_evolution

STEPS = [10, 20, 30, 40, 50, 60, 70]


@pytest.fixture
def registry(common_settings) -> RegistryClient:
    reg = RegistryClient(s3_client(common_settings), common_settings.bucket)
    reg.ensure_bucket()
    return reg


def test_states_per_run_sorted_by_the_largest_change(r, registry: RegistryClient) -> None:
    seed_evolution(r, registry, "job-a", n_examples=12, steps=STEPS)  # i % 5 == 4 never learned
    seed_evolution(r, registry, "job-b", n_examples=12, steps=STEPS, never=3)  # i % 3 == 2 never learned
    out = readmodel.compare(r, ["job-a", "job-b"])
    assert out["count"] == 12 and out["axis"] == "step" and out["warnings"] == []
    by_id = {x["id"]: x for x in out["examples"]}
    four = by_id["ex-0004"]
    assert [run["state"] for run in four["runs"]] == ["never_learned", "learned"]
    assert four["runs"][1]["learned_at"] == 50 and four["runs"][0]["learned_at"] is None
    assert four["change"] == "learned in B; never learned in A"
    assert by_id["ex-0002"]["change"] == "never learned in B; learned in A"
    assert by_id["ex-0000"]["change"] == "learned in all" and by_id["ex-0000"]["matched_by"] == "id"
    assert four["deltas"][0]["f1"] == 0.5 and four["deltas"][0]["exact"] == 1.0
    changed = {i for i in range(12) if (i % 5 == 4) != (i % 3 == 2)}
    assert out["changed"] == len(changed)
    assert {x["runs"][0]["idx"] for x in out["examples"][:len(changed)]} == changed  # changes come first
    assert [c["job_id"] for c in out["curves"]] == ["job-a", "job-b"]
    assert [p["x"] for p in out["curves"][0]["points"]] == STEPS


def test_text_matching_fraction_axis_and_a_base_model_warning(r, registry: RegistryClient) -> None:
    seed_evolution(r, registry, "job-a", n_examples=6, steps=STEPS)
    seed_evolution(r, registry, "job-long", n_examples=9, steps=[20, 40, 140], id_prefix="line-",
                   base_model="other")
    out = readmodel.compare(r, ["job-a", "job-long"])
    assert out["count"] == 6 and {x["matched_by"] for x in out["examples"]} == {"text"}
    assert out["axis"] == "fraction" and [p["x"] for p in out["curves"][1]["points"]] == [
        round(20 / 140, 6), round(40 / 140, 6), 1.0]
    assert out["curves"][0]["points"][-1]["x"] == 1.0
    assert "different base models" in out["warnings"][0]


def test_no_shared_examples_unknown_jobs_and_bad_lists(r, registry: RegistryClient) -> None:
    seed_evolution(r, registry, "job-a", n_examples=4, steps=[10])
    seed_evolution(r, registry, "job-x", n_examples=4, steps=[10], id_prefix="line-", topic="thing")
    with pytest.raises(InvalidQueryError, match="share no tracked example"):
        readmodel.compare(r, ["job-a", "job-x"])
    with pytest.raises(UnknownJobError, match="job-zz"):
        readmodel.compare(r, ["job-a", "job-zz"])
    with pytest.raises(InvalidQueryError, match="two or more"):
        readmodel.compare(r, ["job-a", "job-a"])


def _strip_jobs(out: dict) -> dict:
    """The comparison without job ids, to compare two comparisons of equivalent runs."""
    return {**out, "jobs": [{**j, "job_id": None} for j in out["jobs"]],
            "curves": [{**c, "job_id": None} for c in out["curves"]],
            "examples": [{**x, "runs": [{**run, "job_id": None} for run in x["runs"]]} for x in out["examples"]]}


def test_compact_rows_follow_late_steps_and_rebuild_to_the_same_answer(r, registry: RegistryClient) -> None:
    seed_evolution(r, registry, "job-a", n_examples=12, steps=STEPS)
    seed_evolution(r, registry, "job-b", n_examples=12, steps=STEPS, never=3)
    late = [40, 10, 70, 30, 20, 60, 50, 30]  # out of order and step 30 twice: the recompute path
    seed_evolution(r, registry, "job-late", n_examples=12, steps=late, never=3)
    view = View(r, "evolution", LIVE)
    assert r.exists(view.key("cmp", "job-a"), view.key("cmp", "job-late"), view.key("points", "job-late")) == 3
    out = readmodel.compare(r, ["job-a", "job-b"])
    assert out["changed"] > 0
    assert _strip_jobs(readmodel.compare(r, ["job-a", "job-late"])) == _strip_jobs(out)
    report = rebuild(r, [EvolutionProjection(registry)], apply=True)[0]
    assert report.equal, report.differing
    assert readmodel.compare(r, ["job-a", "job-b"]) == out
    # a view built before the compact rows and points: the same answer from the full entries
    r.delete(*(view.key(kind, job) for kind in ("cmp", "points") for job in ("job-a", "job-b")))
    assert readmodel.compare(r, ["job-a", "job-b"]) == out
