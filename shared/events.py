"""The event envelope and the typed payload of every event type.

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


class UnknownEventError(Exception):
    """The event's type or schema version is not one this code knows."""


class InvalidEventError(Exception):
    """The event does not parse into its envelope or payload model."""


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class Payload(BaseModel):
    """Base for payload models: frozen; unknown keys are kept so a newer writer's fields survive replay."""

    model_config = ConfigDict(frozen=True, extra="allow")


class FileEntry(Payload):
    path: str  # relative to the checkpoint / version root, POSIX separators
    sha256: str
    size: int


# --- jobs -------------------------------------------------------------------------------------------


class DatasetRef(Payload):
    name: str
    path: str  # where the accepted original lives (never modified)
    sha256: str
    format: str
    n_examples: int
    version_id: str | None = None  # registry dataset version, once stored
    file_type: str = "jsonl"  # jsonl | json (a JSON array) | csv | parquet
    n_tool_examples: int = 0  # examples that offer tools or hold tool calls


class JobQueued(Payload):
    spec: dict[str, Any]
    dataset: DatasetRef
    priority: str = "default"
    source: str = "api"  # inbox | api | cli | requeue


class JobStarted(Payload):
    attempt: int = 1
    resumed_from_step: int = 0
    worker: str | None = None


class JobPaused(Payload):
    reason: str
    step: int
    checkpoint_dir: str | None = None


class JobResumed(Payload):
    from_step: int = 0


class JobPreempted(Payload):
    by_job_id: str
    step: int


class JobStopped(Payload):
    step: int
    reason: str = "requested"


class JobSkipped(Payload):
    step: int


class JobCompleted(Payload):
    step: int
    final_loss: float | None = None
    train_seconds: float | None = None


class JobFailed(Payload):
    error: str
    step: int | None = None


class JobCancelled(Payload):
    reason: str = "requested"


class JobReprioritised(Payload):
    priority: str
    front: bool = False


class JobControlRequested(Payload):
    action: str  # pause | resume | stop | skip
    source: str = "api"


class DatasetRejected(Payload):
    file: str
    errors: list[str]
    report_path: str | None = None


class MetricsLogged(Payload):
    step: int
    loss: float | None = None
    learning_rate: float | None = None
    grad_norm: float | None = None
    tokens_per_s: float | None = None
    memory_mb: float | None = None
    epoch: float | None = None
    max_steps: int | None = None


class CheckpointSaved(Payload):
    step: int
    checkpoint_dir: str
    files: list[FileEntry]
    base_model: str
    dataset_sha256: str
    spec: dict[str, Any]
    metrics: dict[str, Any] = Field(default_factory=dict)
    final: bool = False
    tracked_key: str | None = None  # object key of the tracked examples file


# --- registry ---------------------------------------------------------------------------------------


class DatasetStored(Payload):
    version_id: str
    sha256: str
    name: str


class VersionStored(Payload):
    version_id: str
    kind: str  # base | adapter | merged | dataset
    manifest_key: str
    files: list[FileEntry]
    step: int | None = None
    base_model: str | None = None
    dataset_sha256: str | None = None
    checkpoint_event_id: str | None = None
    final: bool = False
    bytes_uploaded: int = 0
    # registry additions: the manifest's descriptive fields, so the versions view needs no S3 read
    name: str = ""
    note: str = ""
    created_at: str | None = None
    size: int = 0
    lineage: dict[str, Any] = Field(default_factory=dict)
    rebuilt: bool = False  # re-published by `trainyard registry rebuild` (not a new version: don't react)


class VersionReplicated(Payload):
    version_id: str
    replica: str


class AliasMoved(Payload):
    alias: str
    version_id: str
    previous: str | None = None
    target: str | None = None
    metric: str | None = None  # for `best`: the metric and value that moved it
    value: float | None = None
    removed: bool = False  # the alias was deleted (version_id is then the last one it named)
    rebuilt: bool = False


class VersionProtected(Payload):
    version_id: str
    protected: bool = True
    reason: str = ""


class VersionTrashed(Payload):
    version_id: str
    retention_days: float
    trashed_at: str | None = None  # ISO time the retention counts from (kept across rebuilds)


class VersionRestored(Payload):
    version_id: str


class VersionPurged(Payload):
    version_id: str
    override: bool = False


class RegistryVerifyFailed(Payload):
    missing: list[str] = Field(default_factory=list)
    corrupt: list[str] = Field(default_factory=list)
    repaired: list[str] = Field(default_factory=list)  # restored from the replica by `verify --repair`


# --- evaluator --------------------------------------------------------------------------------------


class SnapshotCaptured(Payload):
    version_id: str | None
    step: int
    key: str
    aggregates: dict[str, Any] = Field(default_factory=dict)


class SnapshotFailed(Payload):
    version_id: str | None
    step: int | None = None
    reason: str


# --- deployer ---------------------------------------------------------------------------------------


class DeploymentRequested(Payload):
    deployment_id: str
    version_id: str
    target: str
    reason: str = "manual"


class DeploymentPushed(Payload):
    deployment_id: str
    version_id: str
    target: str
    adapter_name: str


class DeploymentVerified(Payload):
    deployment_id: str
    version_id: str
    target: str
    adapter_name: str
    checked: int = 0
    matched: int = 0
    latency_ms: float | None = None


class DeploymentFailed(Payload):
    deployment_id: str
    version_id: str
    target: str
    reason: str


class DeploymentRolledBack(Payload):
    deployment_id: str
    version_id: str
    target: str
    reason: str
    restored_version_id: str | None = None


class DeadLettered(Payload):
    stream: str
    entry_id: str
    group: str
    error: str
    deliveries: int
    fields: dict[str, str]


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
