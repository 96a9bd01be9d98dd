"""Moving the ``production:<target>`` alias in the registry after a verified deployment.

Goes through the registry's own alias code (``services.registry.aliases.set_alias``: S3 document first,
then ``alias.moved``, idempotent on retries). Only if that module is absent does it write the alias document
itself in the same layout and publish ``alias.moved``.
"""

from __future__ import annotations

import redis

from services.registry.client import RegistryClient
from shared import storage
from shared.bus import publish
from shared.events import AliasMoved, Event, utcnow
from shared.settings import CommonSettings


def production_alias(target: str) -> str:
    return f"production:{target}"


def move_production_alias(r: redis.Redis, registry: RegistryClient, settings: CommonSettings, target: str,
                          version_id: str, cause: Event | None = None) -> None:
    alias = production_alias(target)
    try:
        from services.registry.aliases import set_alias
        from services.registry.context import Registry, registry_settings, replica_client
    except ImportError:
        _write_alias(r, registry, alias, target, version_id, cause)
        return
    rs = registry_settings(settings)
    reg = Registry(settings=rs, r=r, primary=registry, replica=replica_client(rs))
    set_alias(reg, alias, version_id, target=target, moved_by="deployer", cause=cause)


def _write_alias(r: redis.Redis, registry: RegistryClient, alias: str, target: str, version_id: str,
                 cause: Event | None) -> None:
    doc = registry.get_json(storage.alias_key(alias)) or {}
    previous = doc.get("version_id")
    registry.put_json(storage.alias_key(alias), {
        "alias": alias, "version_id": version_id, "previous": previous, "target": target,
        "moved_at": utcnow().isoformat(), "moved_by": "deployer",
    })
    publish(r, Event.create("alias.moved", AliasMoved(alias=alias, version_id=version_id, previous=previous,
                                                      target=target), cause=cause))
