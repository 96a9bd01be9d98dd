"""Every error the registry raises, one class each; the message says what was refused and why."""

from __future__ import annotations


class RegistryError(Exception):
    """Base of the registry's errors."""


class IntegrityError(RegistryError):
    """A stored blob's bytes do not match its sha256, or an upload was not received intact."""


class NotFoundError(RegistryError):
    """No such version, blob, alias or document in the bucket."""


class PickledWeightsError(RegistryError):
    """A directory holds pickled weights (.bin/.pt...); only safetensors are stored or loaded."""


class ProtectedError(RegistryError):
    """The version is protected (pinned, or an alias or a deployment points to it)."""


class PurgeRefusedError(RegistryError):
    """Purging was refused: too recent, not verified in the replica, or not in the trash."""


class TrashedError(RegistryError):
    """The version is in the trash; restore it first."""


class InvalidInputError(RegistryError):
    """Bad input: an unsafe path, an empty directory, a bad alias name."""
