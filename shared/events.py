"""The event envelope; the typed payload models are in ``shared.payloads`` (re-exported here).

Events are facts, named in the past tense. The envelope is frozen and versioned; a payload schema that
changes gets a new ``schema_version`` and an upcaster from the previous one (see ``UPCASTERS``), so old
logs keep replaying.

Weights never travel in events: payloads carry object keys, local paths and sha256 digests.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.payloads import (  # noqa: F401 - re-exported: the payload models are part of the event contract
    AliasMoved,
    CheckpointSaved,
    DatasetRef,
    DatasetRejected,
    DatasetStored,
    DeadLettered,
    DeploymentFailed,
    DeploymentPushed,
    DeploymentRequested,
    DeploymentRolledBack,
    DeploymentVerified,
    FileEntry,
    JobCancelled,
    JobCompleted,
    JobControlRequested,
    JobFailed,
    JobPaused,
    JobPreempted,
    JobQueued,
    JobReprioritised,
    JobResumed,
    JobSkipped,
    JobStarted,
    JobStopped,
    MetricsLogged,
    Payload,
    RegistryVerifyFailed,
    SnapshotCaptured,
    SnapshotFailed,
    VersionProtected,
    VersionPurged,
    VersionReplicated,
    VersionRestored,
    VersionStored,
    VersionTrashed,
    VersionUploadProgress,
)


class UnknownEventError(Exception):
    """The event's type or schema version is not one this code knows."""


class InvalidEventError(Exception):
    """The event does not parse into its envelope or payload model."""


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


PAYLOADS: dict[str, type[Payload]] = {
    "job.queued": JobQueued,
    "job.started": JobStarted,
    "job.paused": JobPaused,
    "job.resumed": JobResumed,
    "job.preempted": JobPreempted,
    "job.stopped": JobStopped,
    "job.skipped": JobSkipped,
    "job.completed": JobCompleted,
    "job.failed": JobFailed,
    "job.cancelled": JobCancelled,
    "job.reprioritised": JobReprioritised,
    "job.control_requested": JobControlRequested,
    "dataset.rejected": DatasetRejected,
    "dataset.stored": DatasetStored,
    "metrics.logged": MetricsLogged,
    "checkpoint.saved": CheckpointSaved,
    "version.stored": VersionStored,
    "version.upload_progress": VersionUploadProgress,
    "version.replicated": VersionReplicated,
    "alias.moved": AliasMoved,
    "version.protected": VersionProtected,
    "version.trashed": VersionTrashed,
    "version.restored": VersionRestored,
    "version.purged": VersionPurged,
    "registry.verify_failed": RegistryVerifyFailed,
    "snapshot.captured": SnapshotCaptured,
    "snapshot.failed": SnapshotFailed,
    "deployment.requested": DeploymentRequested,
    "deployment.pushed": DeploymentPushed,
    "deployment.verified": DeploymentVerified,
    "deployment.failed": DeploymentFailed,
    "deployment.rolled_back": DeploymentRolledBack,
    "event.dead_lettered": DeadLettered,
}

# Current schema version per type. Bump it when a payload changes and add an upcaster below.
SCHEMA_VERSIONS: dict[str, int] = dict.fromkeys(PAYLOADS, 1)

# (type, from_version) -> function turning a payload dict of that version into the next version's.
UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}


class Event(BaseModel):
    """The frozen envelope every service writes and reads."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(default_factory=new_id)
    type: str
    schema_version: int = 1
    occurred_at: datetime = Field(default_factory=utcnow)
    job_id: str | None = None
    correlation_id: str = ""
    causation_id: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def create(
        cls,
        type: str,
        payload: Payload,
        *,
        job_id: str | None = None,
        cause: Event | None = None,
        correlation_id: str | None = None,
    ) -> Event:
        """Build an event, checking that ``payload`` is the model registered for ``type``."""
        model = PAYLOADS.get(type)
        if model is None:
            raise UnknownEventError(f"unknown event type {type!r}")
        if not isinstance(payload, model):
            raise TypeError(f"{type} takes a {model.__name__} payload, not {type(payload).__name__}")
        eid = new_id()
        if cause is not None:
            corr = correlation_id or cause.correlation_id or cause.id
            job_id = job_id if job_id is not None else cause.job_id
        else:
            corr = correlation_id or eid
        return cls(
            id=eid,
            type=type,
            schema_version=SCHEMA_VERSIONS[type],
            job_id=job_id,
            correlation_id=corr,
            causation_id=cause.id if cause else None,
            payload=payload.model_dump(mode="json"),
        )

    def typed(self) -> Payload:
        """The payload as its typed model (after upcasting to the current schema version)."""
        return PAYLOADS[self.type].model_validate(self.payload)

    def to_json(self) -> str:
        return self.model_dump_json()


def upcast(data: dict[str, Any]) -> dict[str, Any]:
    """Bring an envelope dict's payload up to the current schema version of its type."""
    etype = data.get("type")
    if etype not in PAYLOADS:
        raise UnknownEventError(f"unknown event type {etype!r}")
    version = int(data.get("schema_version", 1))
    current = SCHEMA_VERSIONS[etype]
    if version > current:
        raise UnknownEventError(f"{etype} schema_version {version} is newer than this code ({current})")
    payload = dict(data.get("payload") or {})
    while version < current:
        step = UPCASTERS.get((etype, version))
        if step is None:
            raise UnknownEventError(f"no upcaster for {etype} v{version}")
        payload = step(payload)
        version += 1
    return {**data, "schema_version": version, "payload": payload}


def parse_event(raw: str | bytes) -> Event:
    """Parse and upcast a stored event; raise UnknownEventError or InvalidEventError with the reason."""
    import json

    try:
        data = json.loads(raw)
    except (ValueError, TypeError) as exc:
        raise InvalidEventError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidEventError("event is not a JSON object")
    data = upcast(data)
    try:
        event = Event.model_validate(data)
        PAYLOADS[event.type].model_validate(event.payload)
    except ValidationError as exc:
        raise InvalidEventError(f"{data.get('type')}: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from exc
    return event
