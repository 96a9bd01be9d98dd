"""Pure domain rules of the registry (no I/O): version ids, manifests, aliases, metrics, retention.

A version id is derived from the content it names (kind + every file's path, sha256 and size), so storing
the same checkpoint twice (a redelivered event, a re-import) names the same version.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from services.registry.exceptions import InvalidInputError
from shared import storage


class VersionKind(StrEnum):
    BASE = "base"
    ADAPTER = "adapter"
    MERGED = "merged"
    DATASET = "dataset"


class VersionStatus(StrEnum):
    ACTIVE = "active"
    TRASHED = "trashed"


_PREFIX = {VersionKind.BASE: "base", VersionKind.ADAPTER: "ad", VersionKind.MERGED: "mg", VersionKind.DATASET: "ds"}
ALIAS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}(:[A-Za-z0-9][A-Za-z0-9._-]{0,62})?$")
RESERVED_ALIASES = ("latest", "best")
PRODUCTION = "production"


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def parse_time(value: str) -> datetime:
    dt = datetime.fromisoformat(value)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def normalise_files(files: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Files sorted by path with safe relative paths; duplicates and malformed digests refused."""
    out: dict[str, dict[str, Any]] = {}
    for f in files:
        try:
            rel = storage.safe_relpath(str(f["path"]))
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from exc
        digest = str(f["sha256"])
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise InvalidInputError(f"{rel}: sha256 {digest!r} is not a hex digest")
        if rel in out:
            raise InvalidInputError(f"duplicate file path {rel}")
        out[rel] = {"path": rel, "sha256": digest, "size": int(f["size"])}
    if not out:
        raise InvalidInputError("a version needs at least one file")
    return [out[k] for k in sorted(out)]


def version_id_for(kind: VersionKind | str, files: Iterable[Mapping[str, Any]]) -> str:
    kind = VersionKind(kind)
    canon = json.dumps([[f["path"], f["sha256"], f["size"]] for f in normalise_files(files)], separators=(",", ":"))
    digest = hashlib.sha256(f"{kind.value}\n{canon}".encode()).hexdigest()
    return f"{_PREFIX[kind]}-{digest[:20]}"


def refuse_pickled(files: Iterable[Mapping[str, Any]]) -> list[str]:
    """Paths of pickled weight files (refused); empty when everything is safe to store."""
    return [f["path"] for f in files if storage.is_pickled_weights(f["path"])]


def build_manifest(
    *, kind: VersionKind | str, files: Iterable[Mapping[str, Any]], name: str = "", note: str = "",
    lineage: Mapping[str, Any] | None = None, created_at: str | None = None,
) -> dict[str, Any]:
    kind = VersionKind(kind)
    norm = normalise_files(files)
    base_lineage: dict[str, Any] = {
        "base_model": None, "base_version_id": None, "dataset_sha256": None, "dataset_version_id": None,
        "job_id": None, "step": None, "parent_version_id": None, "spec": None, "metrics": {},
        "checkpoint_event_id": None,
    }
    base_lineage.update(dict(lineage or {}))
    return {
        "version_id": version_id_for(kind, norm), "kind": kind.value, "name": name, "note": note,
        "created_at": created_at or now_iso(), "files": norm, "size": sum(f["size"] for f in norm),
        "lineage": base_lineage,
    }


def dataset_version_id(dataset_sha256: str | None) -> str | None:
    """The id ``RegistryClient.store_dataset`` gives a dataset file."""
    return f"ds-{dataset_sha256[:16]}" if dataset_sha256 else None


def check_alias(alias: str) -> str:
    if not ALIAS_RE.match(alias):
        raise InvalidInputError(
            f"bad alias {alias!r}: letters, digits, '.', '_', '-' (optionally 'name:target'), up to 63 each")
    return alias


def production_alias(target: str) -> str:
    return check_alias(f"{PRODUCTION}:{target}")


def metric_value(metrics: Mapping[str, Any] | None, name: str) -> float | None:
    """A metric by name or dotted path (``eval_loss``, ``heldout.f1``); None when absent or not a number."""
    cur: Any = metrics or {}
    for part in name.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    if isinstance(cur, bool) or not isinstance(cur, int | float):
        return None
    return float(cur)


AUTO_BEST = "auto"
AUTO_BEST_RULE = ("the evaluator's held-out loss (heldout.loss) where the job has held-out examples, "
                  "else the tracked training examples' loss (train.loss); lower is better")


def best_metric_for(configured: str, metrics: Mapping[str, Any] | None) -> str:
    """The metric ``best`` compares for one candidate: ``configured`` itself, or for ``auto`` the snapshot's
    held-out loss when it has one, else its tracked training examples' loss."""
    if configured != AUTO_BEST:
        return configured
    return "heldout.loss" if metric_value(metrics, "heldout.loss") is not None else "train.loss"


def lower_is_better(metric: str) -> bool:
    leaf = metric.rsplit(".", 1)[-1].lower()
    return any(w in leaf for w in ("loss", "perplexity", "error", "distance", "latency"))


def is_better(metric: str, candidate: float, current: float | None) -> bool:
    if current is None:
        return True
    return candidate < current if lower_is_better(metric) else candidate > current


def purge_refusal(
    *, version_id: str, trashed_at: str | None, retention_days: float, replicated: bool,
    override: str | None, now: datetime | None = None,
) -> str | None:
    """Why a purge is refused (None = allowed). An override (naming the version id exactly) may skip the
    retention period, never the replica check: a purge never removes the only verified copy of a version."""
    if trashed_at is None:
        return f"{version_id} is not in the trash: trash it first"
    if override is not None and override != version_id:
        return f"override {override!r} does not name the version being purged ({version_id})"
    if not replicated:
        return (f"refusing to purge {version_id}: it has no verified copy in the replica, so this is its only "
                "copy; no override skips this check. Wait for replication (`trainyard backup status`) or "
                "configure a replica (TRAINYARD_REPLICA_*)")
    if override is not None:
        return None
    now = now or datetime.now(UTC)
    age = now - parse_time(trashed_at)
    if age < timedelta(days=retention_days):
        left = timedelta(days=retention_days) - age
        return (f"refusing to purge {version_id}: it was trashed {age.total_seconds() / 86400:.2f} days ago and "
                f"the retention is {retention_days:g} days ({left.total_seconds() / 3600:.1f} h left); pass "
                f"override={version_id!r} (--force {version_id}) to skip the retention period")
    return None
