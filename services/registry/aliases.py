"""Moving aliases: the S3 document first (the truth a rebuild reads), then ``alias.moved``.

An alias that already names the version in both S3 and the view is left alone, so retries and redeliveries
publish nothing twice.
"""

from __future__ import annotations

from typing import Any

from services.registry.context import Registry
from services.registry.exceptions import NotFoundError, TrashedError
from services.registry.projection import get_aliases
from services.registry.versioning import best_metric_for, check_alias, is_better, metric_value, now_iso
from shared.events import AliasMoved, Event


def set_alias(
    reg: Registry, alias: str, version_id: str, *, target: str | None = None, metric: str | None = None,
    value: float | None = None, moved_by: str = "registry", cause: Event | None = None,
) -> Event | None:
    """Point ``alias`` at ``version_id`` (which must exist and not be in the trash)."""
    check_alias(alias)
    if not reg.primary.has_manifest(version_id):
        raise NotFoundError(f"cannot move alias {alias!r}: no version {version_id}")
    if reg.primary.get_state(version_id).get("trashed_at"):
        raise TrashedError(f"cannot move alias {alias!r} to {version_id}: it is in the trash (restore it first)")
    current = reg.primary.get_alias(alias) or {}
    if current.get("version_id") == version_id and get_aliases(reg.r).get(alias) == version_id:
        return None
    previous = current.get("previous") if current.get("version_id") == version_id else current.get("version_id")
    if target is None and ":" in alias:
        target = alias.split(":", 1)[1]
    doc: dict[str, Any] = {"alias": alias, "version_id": version_id, "previous": previous, "target": target,
                           "moved_at": now_iso(), "moved_by": moved_by, "metric": metric, "value": value}
    reg.primary.put_alias(alias, doc)
    payload = AliasMoved(alias=alias, version_id=version_id, previous=previous, target=target, metric=metric,
                         value=value)
    return reg.emit("alias.moved", payload, cause=cause)


def remove_alias(reg: Registry, alias: str, cause: Event | None = None) -> Event | None:
    current = reg.primary.get_alias(alias)
    if current is None and alias not in get_aliases(reg.r):
        raise NotFoundError(f"no alias {alias!r}")
    version_id = (current or {}).get("version_id") or get_aliases(reg.r).get(alias, "")
    reg.primary.delete_alias(alias)
    return reg.emit("alias.moved", AliasMoved(alias=alias, version_id=version_id, removed=True), cause=cause)


def consider_best(reg: Registry, version_id: str, metrics: dict[str, Any] | None, cause: Event | None = None,
                  spec_metric: str | None = None) -> Event | None:
    """Move ``best`` to ``version_id`` if its value of the best metric beats the current best's.

    The metric is the job spec's ``best_metric``, else the ``TRAINYARD_BEST_METRIC`` setting; ``auto`` (the
    default) is the held-out loss of the evaluator's snapshot where the job has held-out examples, else the
    tracked training examples' loss (``best_metric_for``)."""
    metric = best_metric_for(spec_metric or reg.settings.best_metric, metrics)
    value = metric_value(metrics, metric)
    if value is None:
        return None
    current = reg.primary.get_alias("best") or {}
    current_value = current.get("value") if current.get("metric") == metric else None
    if current.get("version_id") == version_id or not is_better(metric, value, current_value):
        return None
    return set_alias(reg, "best", version_id, metric=metric, value=value, cause=cause)
