"""The versions view: every version with its lineage, aliases, protection, trash state and replicas.

Built only from the REGISTRY stream (``version.*``, ``alias.moved``, ``registry.verify_failed``); every
apply is idempotent, so a replayed or re-published event changes nothing. Readers use the functions below,
never the raw keys.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import redis

from shared import events as ev
from shared import streams
from shared.events import Event
from shared.projection import LIVE, View

NAME = "versions"
DESCRIPTIVE = ("kind", "name", "note", "created_at", "files", "size", "lineage", "step", "final",
               "base_model", "dataset_sha256", "checkpoint_event_id", "manifest_key")


def _load(view: View, version_id: str) -> dict[str, Any] | None:
    raw = view.hget("versions", version_id)
    return json.loads(raw) if raw else None


def _save(view: View, doc: dict[str, Any]) -> None:
    view.pipe.hset(view.key("versions"), doc["version_id"], json.dumps(doc, sort_keys=True))


def _update(view: View, version_id: str, **changes: Any) -> None:
    doc = _load(view, version_id)
    if doc is not None:
        doc.update(changes)
        _save(view, doc)


def _stored(view: View, event: Event, p: ev.VersionStored) -> None:
    doc = _load(view, p.version_id) or {
        "version_id": p.version_id, "pinned": False, "pin_reason": "", "trashed_at": None,
        "retention_days": None, "replicas": [],
    }
    doc.update({k: event.payload.get(k) for k in DESCRIPTIVE})  # as written (JSON), unknown extras included
    doc["job_id"] = p.lineage.get("job_id") or event.job_id
    _save(view, doc)


def _replicated(view: View, event: Event, p: ev.VersionReplicated) -> None:
    doc = _load(view, p.version_id)
    if doc is not None and p.replica not in doc["replicas"]:
        doc["replicas"] = sorted([*doc["replicas"], p.replica])
        _save(view, doc)


def _alias_moved(view: View, event: Event, p: ev.AliasMoved) -> None:
    if p.removed:
        view.pipe.hdel(view.key("aliases"), p.alias)
    else:
        view.pipe.hset(view.key("aliases"), p.alias, p.version_id)


def _protected(view: View, event: Event, p: ev.VersionProtected) -> None:
    _update(view, p.version_id, pinned=p.protected, pin_reason=p.reason if p.protected else "")


def _trashed(view: View, event: Event, p: ev.VersionTrashed) -> None:
    _update(view, p.version_id, trashed_at=p.trashed_at or event.occurred_at.isoformat(),
            retention_days=p.retention_days)


def _restored(view: View, event: Event, p: ev.VersionRestored) -> None:
    _update(view, p.version_id, trashed_at=None, retention_days=None)


def _purged(view: View, event: Event, p: ev.VersionPurged) -> None:
    view.pipe.hdel(view.key("versions"), p.version_id)


def _verify_failed(view: View, event: Event, p: ev.RegistryVerifyFailed) -> None:
    view.pipe.set(view.key("last_verify_failed"), json.dumps({**event.payload, "at": event.occurred_at.isoformat()}))


# event type -> its change of the view, given the parsed payload
APPLY: dict[str, Callable[[View, Event, Any], None]] = {
    "version.stored": _stored, "version.replicated": _replicated, "alias.moved": _alias_moved,
    "version.protected": _protected, "version.trashed": _trashed, "version.restored": _restored,
    "version.purged": _purged, "registry.verify_failed": _verify_failed,
}


class VersionsProjection:
    name = NAME
    streams = (streams.REGISTRY,)

    def apply(self, view: View, event: Event) -> None:
        change = APPLY.get(event.type)
        if change is not None:
            change(view, event, event.typed())


# -- read functions ---------------------------------------------------------------------------------------
def get_aliases(r: redis.Redis, ns: str = LIVE) -> dict[str, str]:
    """alias -> version id (``latest``, ``best``, ``production:<target>``, user aliases)."""
    raw = r.hgetall(View(r, NAME, ns).key("aliases"))
    return {k.decode(): v.decode() for k, v in sorted(raw.items())}


def _decorate(doc: dict[str, Any], aliases: dict[str, str]) -> dict[str, Any]:
    names = sorted(a for a, v in aliases.items() if v == doc["version_id"])
    doc["aliases"] = names
    doc["protected"] = bool(doc.get("pinned")) or bool(names)
    reasons = ([f"pinned: {doc.get('pin_reason') or 'by request'}"] if doc.get("pinned") else []) + [
        f"alias {a}" + (" (deployed)" if a.startswith("production") else "") for a in names]
    doc["protected_by"] = reasons
    doc["status"] = "trashed" if doc.get("trashed_at") else "active"
    return doc


def get_version(r: redis.Redis, version_id: str, ns: str = LIVE) -> dict[str, Any] | None:
    raw = r.hget(View(r, NAME, ns).key("versions"), version_id)
    if raw is None:
        return None
    return _decorate(json.loads(raw), get_aliases(r, ns))


def list_versions(r: redis.Redis, kind: str | None = None, job_id: str | None = None,
                  include_trashed: bool = False, ns: str = LIVE) -> list[dict[str, Any]]:
    """Versions oldest first (by created time, then step)."""
    aliases = get_aliases(r, ns)
    out = []
    for raw in r.hvals(View(r, NAME, ns).key("versions")):
        doc = json.loads(raw)
        if kind is not None and doc.get("kind") != kind:
            continue
        if job_id is not None and doc.get("job_id") != job_id:
            continue
        if doc.get("trashed_at") and not include_trashed:
            continue
        out.append(_decorate(doc, aliases))
    out.sort(key=lambda d: (d.get("created_at") or "", d.get("step") or 0, d["version_id"]))
    return out


def last_verify_failure(r: redis.Redis, ns: str = LIVE) -> dict[str, Any] | None:
    raw = r.get(View(r, NAME, ns).key("last_verify_failed"))
    return json.loads(raw) if raw else None
