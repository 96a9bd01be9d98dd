"""Every error the deployer raises, one line each.

``TargetError`` and its subclasses mean the target refused or could not do something *before* anything
changed on it (the deployment is ``failed``); ``VerificationError`` means the new adapter was loaded but is
not good enough (the deployment is ``rolled_back``).
"""

from __future__ import annotations


class DeployerError(Exception):
    """Base class of the deployer's errors."""


class UnknownTargetError(DeployerError):
    """No target of that name in ``TRAINYARD_TARGETS``."""


class InvalidRequestError(DeployerError, ValueError):
    """A deployment or rollback request that cannot be honoured as asked (empty ids, unverified target)."""


class DeploymentNotFoundError(DeployerError):
    """No deployment with that id (or nothing to roll back to)."""


class PreflightError(DeployerError):
    """The version cannot be deployed (not an adapter, no snapshot, no tracked examples)."""


class TargetError(DeployerError):
    """The target answered with an error or could not be reached."""


class TargetUnreachableError(TargetError):
    """The target did not answer (connection refused, DNS, timeout)."""


class TargetAuthError(TargetError):
    """The target refused the bearer token (401/403)."""


class UploadRejectedError(TargetError):
    """The target rejected the uploaded files (hash or size mismatch, 422)."""


class IncompatibleAdapterError(TargetError):
    """The target refused to load the adapter (another base model, bad config: 400/409)."""


class TargetOutOfMemoryError(TargetError):
    """The target ran out of memory loading the adapter."""


class VerificationError(DeployerError):
    """The loaded adapter failed verification (predictions, health or latency)."""
