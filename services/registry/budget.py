"""The bucket budget, applied: ``storage_plan`` reads the versions view and plans with
``services.registry.thinning``; ``storage_apply`` plans again at that moment and removes what the plan names,
each removal through the same guarded trash + purge a user would run (so protection and the replica check
are checked once more, at the instant of deletion). Every removal is a ``version.trashed`` and a
``version.purged`` event.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from services.registry.context import Registry
from services.registry.exceptions import ProtectedError, PurgeRefusedError
from services.registry.lifecycle import purge, restore, trash
from services.registry.projection import list_versions
from services.registry.thinning import Plan, Policy, plan

log = logging.getLogger(__name__)


def policy_of(reg: Registry) -> Policy:
    s = reg.settings
    return Policy(keep_last=s.keep_last, keep_every=s.keep_every)


def budget_bytes(reg: Registry) -> int | None:
    gb = reg.settings.bucket_budget_gb
    return None if gb is None else int(gb * 1e9)


def storage_plan(reg: Registry, running_jobs: set[str], *, budget: int | None = None,
                 policy: Policy | None = None) -> Plan:
    """What a thinning would remove now and why everything else stays (``budget`` defaults to the setting)."""
    return plan(list_versions(reg.r), running_jobs=running_jobs,
                budget_bytes=budget_bytes(reg) if budget is None else budget, policy=policy or policy_of(reg))


@dataclass
class ApplyReport:
    plan: Plan
    removed: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    bytes_freed: int = 0


def storage_apply(reg: Registry, running_jobs: set[str], *, budget: int | None = None,
                  policy: Policy | None = None) -> ApplyReport:
    """Plan now, then trash and purge each removal; a version the guards refuse stays (restored from the
    trash if it got there), with the reason."""
    report = ApplyReport(storage_plan(reg, running_jobs, budget=budget, policy=policy))
    for d in report.plan.removals:
        try:
            trash(reg, d.version_id)
            result = purge(reg, d.version_id, override=d.version_id)
        except (ProtectedError, PurgeRefusedError) as exc:
            if isinstance(exc, PurgeRefusedError):
                restore(reg, d.version_id)  # the guard said no at the last moment: back as it was
            report.refused[d.version_id] = str(exc)
            log.warning("storage apply: kept %s: %s", d.version_id, exc)
            continue
        report.removed.append(d.version_id)
        report.bytes_freed += result.bytes_freed
    return report
