"""Per-job deploy policy decisions (pure): when a finished job's final version should be deployed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.deployer.domain import DeployPolicy

# Without ``deploy_metric`` in the spec: the first of these the new version has (the trainer's eval loss if it
# evaluates, else the evaluator's mean loss on the held-out examples, else on all tracked examples).
DEFAULT_METRICS = ("eval_loss", "heldout.loss", "all.loss")


@dataclass(frozen=True)
class Decision:
    deploy: bool
    reason: str


def parse_policy(spec: dict[str, Any] | None) -> DeployPolicy:
    raw = (spec or {}).get("deploy_policy") or DeployPolicy.MANUAL.value
    try:
        return DeployPolicy(str(raw))
    except ValueError:
        return DeployPolicy.MANUAL


def lower_is_better(metric: str) -> bool:
    return any(word in metric.lower() for word in ("loss", "perplexity", "error"))


def metric_value(metric: str, lineage_metrics: dict[str, Any], aggregates: dict[str, Any]) -> float | None:
    """``metric`` from the version's lineage metrics, else the snapshot aggregates (``heldout.f1`` or a
    plain name looked up under ``heldout``)."""
    candidates: list[Any] = [lineage_metrics.get(metric)]
    node: Any = aggregates
    for part in metric.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    candidates += [node, (aggregates.get("heldout") or {}).get(metric)]
    for value in candidates:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def improvement(metric: str, candidate: float | None, production: float | None) -> Decision:
    """Deploy when the candidate strictly beats what the target serves (or nothing is served)."""
    if candidate is None:
        return Decision(False, f"the new version has no {metric!r} to compare")
    if production is None:
        return Decision(True, f"no comparable {metric!r} in production; deploying {candidate:.4g}")
    better = candidate < production if lower_is_better(metric) else candidate > production
    verdict = "beats" if better else "does not beat"
    return Decision(better, f"{metric} {candidate:.4g} {verdict} production {production:.4g}")


def ready_to_deploy(job: dict[str, Any]) -> str | None:
    """The final version id once the job completed and its final version's snapshot exists, else None."""
    if not job.get("completed") or job.get("triggered"):
        return None
    return job.get("final_version") if job.get("final_snapshot") else None
