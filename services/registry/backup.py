"""What the registry tells people about safety: the replica's state as a sentence, warnings and a table, and
which version ``best`` names and why. Read by the API (Models page, ``trainyard backup status``)."""

from __future__ import annotations

from typing import Any

from services.registry.context import Registry
from services.registry.versioning import AUTO_BEST, AUTO_BEST_RULE


def backup_status(reg: Registry) -> dict[str, Any]:
    """Which versions the replica does not hold yet, with a one-sentence ``summary``, ``warnings`` (nothing
    replicated, a replica on the primary's own server) and one ``rows`` entry per version."""
    pending, rows = [], []
    for vid in reg.primary.list_version_ids():
        m = reg.primary.manifest(vid)
        held = reg.replica.has_manifest(vid)
        size = sum(f["size"] for f in m["files"])
        row = {"version_id": vid, "kind": m["kind"], "name": m.get("name", ""), "size": size, "replicated": held}
        rows.append(row)
        if not held:
            pending.append({k: row[k] for k in ("version_id", "kind", "name", "size")})
    total = len(rows)
    replicated = total - len(pending)
    warnings = list(reg.settings.replica_warnings())
    if total and not replicated:
        warnings.insert(0, f"nothing is replicated: no version has a copy on the replica yet ({total} stored)")
    return {"replica": reg.replica.location, "total": total, "replicated": replicated, "pending": pending,
            "pending_bytes": sum(p["size"] for p in pending), "summary": _summary(reg, total, replicated),
            "warnings": warnings, "rows": rows}


def _summary(reg: Registry, total: int, replicated: int) -> str:
    where = f"the replica {reg.replica.location}"
    if not total:
        return f"No versions stored yet; they will be copied to {where}."
    rest = "." if replicated == total else f"; {total - replicated} not yet."
    return f"{replicated} of {total} versions copied to {where}{rest}"


def best_status(reg: Registry) -> dict[str, Any]:
    """The ``best`` alias: the version it names, the metric and value that put it there, and the rule."""
    doc = reg.primary.get_alias("best") or {}
    configured = reg.settings.best_metric
    rule = AUTO_BEST_RULE if configured == AUTO_BEST else f"the metric {configured!r}"
    return {"version_id": doc.get("version_id"), "metric": doc.get("metric"), "value": doc.get("value"),
            "moved_at": doc.get("moved_at"), "configured": configured,
            "rule": f"best follows {rule}; a job spec's best_metric overrides it"}
