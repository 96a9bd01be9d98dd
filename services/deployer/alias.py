"""Moving the ``production:<target>`` alias in the registry after a verified deployment."""

from __future__ import annotations

import redis

from services.registry.client import RegistryClient
from shared import storage
from shared.bus import publish
from shared.events import AliasMoved, Event, utcnow


def production_alias(target: str) -> str:
    return f"production:{target}"


def move_production_alias(r: redis.Redis, registry: RegistryClient, target: str, version_id: str,
                          cause: Event | None = None) -> str | None:
    """Point ``production:<target>`` at ``version_id``, publish ``alias.moved``; returns the previous version."""
    alias = production_alias(target)
    doc = registry.get_json(storage.alias_key(alias)) or {}
    previous = doc.get("version_id")
    registry.put_json(storage.alias_key(alias), {
        "alias": alias, "version_id": version_id, "previous": previous, "target": target,
        "moved_at": utcnow().isoformat(), "moved_by": "deployer",
    })
    payload = AliasMoved(alias=alias, version_id=version_id, previous=previous, target=target)
    publish(r, Event.create("alias.moved", payload, cause=cause))
    return previous
