"""The registry's commands, called by the API, the CLI and other services (mutations become S3 writes
and events). Each takes a ``Registry`` (``Registry.open(settings)``) first::

    reg = Registry.open(settings)
    commands.move_alias(reg, "production:local", version_id)       # the deployer
    commands.trash(reg, version_id)                                 # refused when protected
    commands.purge(reg, version_id)                                 # refused unless old enough + replicated
"""

from __future__ import annotations

from services.registry.aliases import remove_alias, set_alias
from services.registry.backup import backup_status, best_status
from services.registry.context import Registry
from services.registry.diskguard import GcItem, describe, gc, judge
from services.registry.lifecycle import (
    PurgeResult,
    protect,
    protection_reasons,
    purge,
    restore,
    trash,
    unprotect,
)
from services.registry.maintenance import (
    RebuildFromS3Report,
    VerifyReport,
    inventory,
    rebuild_from_s3,
    verify,
)
from services.registry.replica import replicate_pending, replicate_version
from services.registry.transfer import export, import_dir, merge_adapter
from shared.events import Event

__all__ = [
    "GcItem", "PurgeResult", "RebuildFromS3Report", "Registry", "VerifyReport", "backup_status", "best_status",
    "describe", "export", "gc", "import_dir", "inventory", "judge", "merge_adapter", "move_alias", "protect",
    "protection_reasons", "purge", "rebuild_from_s3",
    "remove_alias", "replicate_pending", "replicate_version", "restore", "trash", "unprotect", "verify",
]


def move_alias(reg: Registry, alias: str, version_id: str, *, target: str | None = None,
               moved_by: str = "user", cause: Event | None = None) -> Event | None:
    """Point an alias at a version. ``move_alias(reg, "production", vid, target="local")`` is the same as
    ``move_alias(reg, "production:local", vid)``. Returns the ``alias.moved`` event (None if unchanged)."""
    if target and ":" not in alias:
        alias = f"{alias}:{target}"
    return set_alias(reg, alias, version_id, target=target, moved_by=moved_by, cause=cause)
