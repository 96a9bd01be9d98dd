"""The thinning plan (pure): drill 2, a job with 50 checkpoints keeps exactly the versions the policy names."""

from __future__ import annotations

from typing import Any

from services.registry.thinning import Policy, plan


def _row(job: str, step: int, *, size: int = 1000, loss: float | None = None, replicated: bool = True,
         protected_by: tuple[str, ...] = (), kind: str = "adapter") -> dict[str, Any]:
    return {"version_id": f"{job}-{step:03d}", "job_id": job, "step": step, "size": size, "kind": kind,
            "created_at": f"2026-12-01T00:{step // 60:02d}:{step % 60:02d}", "replicas": ["r"] if replicated else [],
            "protected_by": list(protected_by), "lineage": {"metrics": {} if loss is None else {"loss": loss}}}


def test_fifty_checkpoints_keep_exactly_what_the_policy_names() -> None:
    rows = [_row("a", s, loss=2.0 - s / 100) for s in range(1, 51)]
    rows[16]["lineage"]["metrics"]["loss"] = 0.01  # step 17 is the job's best
    rows[4]["replicas"] = []  # step 5 has no verified replica copy
    rows[29]["protected_by"] = ["alias production:box3090 (deployed)"]  # step 30 is deployed
    p = plan(rows, running_jobs=set(), budget_bytes=0, policy=Policy(keep_last=3, keep_every=10))
    kept = {d.step for d in p.decisions if not d.remove}
    assert kept == {48, 49, 50, 17, 10, 20, 30, 40, 5}
    reasons = {d.step: d.reasons for d in p.decisions}
    assert reasons[50][0] == "the job's latest" and "the job's best loss" in reasons[17]
    assert reasons[5] == ["no verified copy in the replica yet"]
    assert reasons[30] == ["protected (alias production:box3090 (deployed))", "step 30 is a multiple of 10"]
    assert all(d.reasons == ["an intermediate checkpoint with a verified replica copy, oldest first, over budget"]
               for d in p.removals)
    assert p.after_bytes == 9 * 1000 and p.over_budget and "still" in p.summary()


def test_removes_oldest_first_only_until_within_budget_and_nothing_without_one() -> None:
    rows = [_row("a", s) for s in range(1, 11)]
    p = plan(rows, running_jobs=set(), budget_bytes=7_500, policy=Policy(keep_last=2))
    assert [d.step for d in p.removals] == [1, 2, 3] and p.after_bytes == 7000 and not p.over_budget
    assert plan(rows, running_jobs=set(), budget_bytes=None).removals == []
    assert plan(rows, running_jobs=set(), budget_bytes=10_000).removals == []


def test_running_jobs_datasets_and_trash_are_never_planned_away() -> None:
    rows = [_row("run", s) for s in range(1, 6)] + [_row("done", s) for s in range(1, 6)]
    rows += [_row("data", 0, kind="dataset"), {**_row("done", 99), "trashed_at": "2026-12-01T00:00:00"}]
    p = plan(rows, running_jobs={"run"}, budget_bytes=0, policy=Policy(keep_last=1))
    assert {d.version_id for d in p.removals} == {"done-001", "done-002", "done-003", "done-004"}
    assert "its job is running" in next(d for d in p.decisions if d.version_id == "run-001").reasons
    assert "done-099" not in {d.version_id for d in p.decisions}


def test_ten_thousand_versions() -> None:  # its time is measured by bench/bench_registry (storage_plan_time)
    rows = [_row(f"j{j}", s) for j in range(100) for s in range(1, 101)]
    p = plan(rows, running_jobs={"j0"}, budget_bytes=0)
    assert len(p.decisions) == 10_000 and len(p.removals) == 99 * 97
