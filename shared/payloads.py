"""The typed payload of every event type (``shared.events.PAYLOADS`` says which model each type carries).

Payloads are frozen; unknown keys are kept, so a newer writer's fields survive replay. A changed payload gets
a new schema version and an upcaster (``shared.events``). Weights never travel in events: payloads carry
object keys, local paths and sha256 digests.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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
    kind: str  # base | adapter | full | merged | dataset
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


class VersionUploadProgress(Payload):
    """Throttled (``TRAINYARD_UPLOAD_PROGRESS_S``) while a large version's files upload; the version does not
    exist until its ``version.stored``."""

    version_id: str  # the id the version will have
    bytes_done: int  # of all its files (parts kept from an interrupted upload count as done)
    bytes_total: int
    path: str = ""  # the file being uploaded
    checkpoint_event_id: str | None = None


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
