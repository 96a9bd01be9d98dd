"""The storage budget's thinning plan: which versions may leave the primary bucket, and why the rest stay.

Pure domain (no I/O): ``plan(versions, ...)`` takes the versions view's rows and returns one decision per
version. A version is kept when any rule names it:

* it is protected (pinned, or named by an alias: ``latest``, ``best``, ``production:<target>``, user aliases);
* its job is still running (everything of a running job stays);
* it is the newest version of its job (the job's latest), or the job's best by the budget's metric;
* it is one of the newest ``keep_last`` versions of its job, or its step is a multiple of ``keep_every``;
* it is not a training checkpoint (datasets and imported models are inputs, not intermediates);
* it has no verified copy in the replica (a removal never takes the only copy).

Of the rest, the oldest go first until the bucket is within its budget (with no budget, the plan only
reports). ``trainyard storage plan`` shows the decisions with their reasons and sizes; ``storage apply``
carries out the removals, each one an event.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from services.registry.versioning import lower_is_better, metric_value

THINNABLE_KINDS = ("adapter", "full")


@dataclass(frozen=True)
class Policy:
    keep_last: int = 3  # newest versions kept per job
    keep_every: int = 0  # also keep every version whose step is a multiple of this (0: off)
    metric: str = "loss"  # the job's best by this metric (its checkpoint metrics) is kept


@dataclass
class Decision:
    version_id: str
    job_id: str | None
    step: int | None
    size: int
    remove: bool = False
    reasons: list[str] = field(default_factory=list)


@dataclass
class Plan:
    budget_bytes: int | None
    total_bytes: int
    after_bytes: int
    decisions: list[Decision]

    @property
    def removals(self) -> list[Decision]:
        return [d for d in self.decisions if d.remove]

    @property
    def over_budget(self) -> bool:
        return self.budget_bytes is not None and self.after_bytes > self.budget_bytes

    def summary(self) -> str:
        gone = self.removals
        freed = sum(d.size for d in gone)
        if self.budget_bytes is None:
            head = f"no bucket budget set (TRAINYARD_BUCKET_BUDGET_GB); {_gb(self.total_bytes)} in use"
        else:
            head = f"{_gb(self.total_bytes)} in use of a {_gb(self.budget_bytes)} budget"
        tail = (f"; {len(gone)} version(s) would go, freeing {_gb(freed)}" if gone else "; nothing to remove")
        if self.over_budget:
            tail += (f"; still {_gb(self.after_bytes - self.budget_bytes)} over budget: everything else is kept "
                     "by the rules below")
        return head + tail

    def as_dict(self) -> dict[str, Any]:
        return {"budget_bytes": self.budget_bytes, "total_bytes": self.total_bytes, "after_bytes": self.after_bytes,
                "over_budget": self.over_budget, "summary": self.summary(),
                "decisions": [asdict(d) for d in self.decisions]}


def _gb(n: int) -> str:
    if n >= 1e8:
        return f"{n / 1e9:.2f} GB"
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def _best(rows: list[Mapping[str, Any]], metric: str) -> str | None:
    scored = [(v, row["version_id"]) for row in rows
              if (v := metric_value((row.get("lineage") or {}).get("metrics"), metric)) is not None]
    if not scored:
        return None
    return (min(scored) if lower_is_better(metric) else max(scored))[1]


def _keep_reasons(row: Mapping[str, Any], rank: int, best: str | None, running: bool, policy: Policy) -> list[str]:
    reasons = [f"protected ({p})" for p in row.get("protected_by") or []]
    if row.get("kind") not in THINNABLE_KINDS:
        reasons.append(f"a {row.get('kind') or 'untyped'} version, not a training checkpoint")
    if running:
        reasons.append("its job is running")
    if rank == 0:
        reasons.append("the job's latest")
    elif rank < policy.keep_last:
        reasons.append(f"one of the job's newest {policy.keep_last}")
    if row["version_id"] == best:
        reasons.append(f"the job's best {policy.metric}")
    step = row.get("step")
    if policy.keep_every and step is not None and step % policy.keep_every == 0:
        reasons.append(f"step {step} is a multiple of {policy.keep_every}")
    if not row.get("replicas"):
        reasons.append("no verified copy in the replica yet")
    return reasons


def plan(versions: Iterable[Mapping[str, Any]], *, running_jobs: set[str], budget_bytes: int | None,
         policy: Policy = Policy()) -> Plan:
    """One decision per active version; removals oldest first until within ``budget_bytes``."""
    rows = [v for v in versions if not v.get("trashed_at")]
    by_job: dict[str | None, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        by_job[row.get("job_id")].append(row)
    decisions: list[tuple[tuple, Decision]] = []
    for job_id, job_rows in by_job.items():
        job_rows.sort(key=lambda r: (r.get("step") or 0, r.get("created_at") or ""), reverse=True)
        best = _best(job_rows, policy.metric)
        for rank, row in enumerate(job_rows):
            d = Decision(row["version_id"], job_id, row.get("step"), int(row.get("size") or 0))
            d.reasons = _keep_reasons(row, rank, best, job_id in running_jobs, policy)
            decisions.append(((row.get("created_at") or "", row.get("step") or 0, row["version_id"]), d))
    decisions.sort(key=lambda x: x[0])
    total = after = sum(d.size for _, d in decisions)
    for _, d in decisions:
        if d.reasons or budget_bytes is None or after <= budget_bytes:
            continue
        d.remove, after = True, after - d.size
        d.reasons = ["an intermediate checkpoint with a verified replica copy, oldest first, over budget"]
    return Plan(budget_bytes, total, after, [d for _, d in decisions])
