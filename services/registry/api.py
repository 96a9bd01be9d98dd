"""The registry's public face: what other services, the gateway and the CLI may use (docs/contracts.md).

Reads (the versions projection), the S3 client for content-addressed blobs and manifests, the command
context and commands (every mutation is an S3 write, then an event), and the registry's exceptions.
Everything else in ``services.registry`` is private to it (enforced by import-linter, ``make lint``).
"""

from __future__ import annotations

from typing import Any

from services.registry.budget import storage_apply, storage_plan
from services.registry.client import RegistryClient
from services.registry.commands import (
    GcItem,
    PurgeResult,
    RebuildFromS3Report,
    VerifyReport,
    backup_status,
    best_status,
    describe,
    export,
    gc,
    import_dir,
    inventory,
    judge,
    merge_adapter,
    move_alias,
    protect,
    protection_reasons,
    purge,
    rebuild_from_s3,
    remove_alias,
    replicate_pending,
    replicate_version,
    restore,
    trash,
    unprotect,
    verify,
)
from services.registry.context import Registry
from services.registry.exceptions import (
    IntegrityError,
    InvalidInputError,
    NotFoundError,
    PickledWeightsError,
    ProtectedError,
    PurgeRefusedError,
    RegistryError,
    TrashedError,
)
from services.registry.projection import (
    VersionsProjection,
    get_aliases,
    get_version,
    last_verify_failure,
    list_versions,
)

__all__ = [
    "GcItem", "storage_apply", "storage_plan", "best_status", "describe", "judge", "merge_adapter", "register_cli", "IntegrityError", "InvalidInputError", "NotFoundError", "PickledWeightsError", "ProtectedError",
    "PurgeRefusedError", "PurgeResult", "RebuildFromS3Report", "Registry", "RegistryClient", "RegistryError",
    "TrashedError", "VerifyReport", "VersionsProjection", "backup_status", "export", "gc", "get_aliases",
    "get_version", "import_dir", "inventory", "last_verify_failure", "list_versions", "move_alias", "protect",
    "protection_reasons", "purge", "rebuild_from_s3", "remove_alias", "replicate_pending", "replicate_version",
    "restore", "trash", "unprotect", "verify",
]


def register_cli(app: Any) -> None:
    """Add the commands that need the bucket itself (``registry import``, ``registry rebuild``) to ``app``."""
    from services.registry.cli import register  # typer and rich: only for the command line

    register(app)
