"""Request and response schemas, per resource: ``...Create`` bodies, ``...Public`` items, ``...List`` pages."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")

Priority = Literal["high", "default", "low"]


class Open(BaseModel):
    """An item whose fields are defined by the owning service's projection; known ones are typed."""

    model_config = ConfigDict(extra="allow")


class Page(BaseModel, Generic[T]):
    data: list[T]
    count: int = Field(description="total number of items (all pages)")
    offset: int = 0
    limit: int = 50


def paginate(items: list[Any], offset: int, limit: int) -> dict[str, Any]:
    return {"data": items[offset:offset + limit], "count": len(items), "offset": offset, "limit": limit}


# --- jobs -------------------------------------------------------------------------------------------
class JobPublic(Open):
    id: str
    state: str | None = None
    priority: str | None = None
    step: int | None = None
    max_steps: int | None = None


class JobCreate(BaseModel):
    """Submit a job on a dataset already in the registry (upload a file with ``POST /api/jobs/upload``)."""

    model_config = ConfigDict(extra="forbid")
    dataset_version_id: str = Field(min_length=1, description="registry dataset version, e.g. ds-0123abcd")
    spec: dict[str, Any] = Field(default_factory=dict, description="JobSpec overrides")
    priority: Priority | None = None
    name: str | None = None


class JobSubmitted(BaseModel):
    job_id: str
    format: str | None = None  # the dataset format detected (chat, sharegpt, ...)
    file_type: str | None = None  # jsonl | json | csv | parquet
    n_examples: int | None = None
    n_tool_examples: int | None = None
    detected: str | None = None  # the same in words, as the UI shows it


class Reprioritise(BaseModel):
    model_config = ConfigDict(extra="forbid")
    priority: Priority
    front: bool = False


class ControlAccepted(BaseModel):
    job_id: str
    action: str
    result: Any = None


class MetricPoint(Open):
    step: int


class MetricsPublic(BaseModel):
    job_id: str
    data: list[dict[str, Any]]
    count: int


# --- versions / datasets ----------------------------------------------------------------------------
class VersionPublic(Open):
    version_id: str
    kind: str | None = None
    name: str | None = None
    status: str | None = Field(default=None, description="active | trashed")
    aliases: list[str] | None = None
    protected: bool | None = None


class VersionDetail(VersionPublic):
    manifest: dict[str, Any] | None = Field(default=None, description="the manifest from the bucket (None if gone)")


class VersionAction(BaseModel):
    version_id: str
    action: str
    result: str | int | bool | None = None


class StorageUsed(BaseModel):
    versions: int
    logical_bytes: int = Field(description="sum of every version's file sizes")
    unique_bytes: int = Field(description="each blob counted once")
    blobs: int
    by_kind: dict[str, int]


class FileLink(Open):
    path: str | None = None
    sha256: str | None = None
    size: int | None = None
    url: str = Field(description="time-limited presigned URL")


class DownloadLinks(BaseModel):
    version_id: str
    files: list[FileLink]


class ManifestPublic(Open):
    """A version manifest as stored in the bucket (``manifests/<version_id>.json``)."""

    version_id: str
    kind: str
    name: str | None = None
    files: list[dict[str, Any]] = Field(default_factory=list)


class DatasetStoredPublic(BaseModel):
    version_id: str
    sha256: str
    name: str
    n_examples: int | None = None
    format: str | None = None
    file_type: str | None = None
    detected: str | None = None


class AliasCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alias: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")


class ProtectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = ""


class LineageGraph(BaseModel):
    nodes: list[dict[str, Any]]
    edges: list[dict[str, Any]]


# --- deployments ------------------------------------------------------------------------------------
class DeploymentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version_id: str = Field(min_length=1)
    target: str = Field(min_length=1)
    reason: str = "manual"


class RollbackCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to_deployment_id: str | None = None


class DeploymentAccepted(BaseModel):
    deployment_id: str | None = None
    target: str
    result: Any = None


class DeploymentPublic(Open):
    """One deployment as the deployer's projection records it (``services.deployer.projection``)."""

    deployment_id: str
    version_id: str | None = None
    target: str | None = None
    status: str | None = Field(default=None, description="requested | pushed | verified | failed | rolled_back")
    reason: str | None = None
    job_id: str | None = None
    adapter_name: str | None = None
    requested_at: str | None = None
    updated_at: str | None = None
    finished_at: str | None = None
    error: str | None = None
    checked: int | None = None
    matched: int | None = None
    latency_ms: float | None = None
    restored_version_id: str | None = None


class CurrentDeployment(Open):
    """What a target serves now (its last verified deployment)."""

    deployment_id: str
    version_id: str | None = None
    adapter_name: str | None = None
    serving_name: str | None = None


class TargetPublic(BaseModel):
    name: str
    url: str
    kind: str
    current: CurrentDeployment | None = None


# --- registry ---------------------------------------------------------------------------------------
class VerifyFailure(Open):
    missing: list[str] = Field(default_factory=list)
    corrupt: list[str] = Field(default_factory=list)
    repaired: list[str] = Field(default_factory=list)
    at: str | None = None


class RegistryHealth(BaseModel):
    bucket: str
    bucket_reachable: bool
    s3_error: str | None = None
    versions: int = Field(description="versions in the view, trash included")
    trashed: int
    dead_lettered: int = Field(description="entries in the dead-letter stream")
    last_verify_failed: VerifyFailure | None = None


class PendingBackup(Open):
    version_id: str
    kind: str | None = None
    name: str | None = None
    size: int | None = None


class BackupRow(Open):
    version_id: str
    kind: str | None = None
    name: str | None = None
    size: int | None = None
    replicated: bool


class BackupStatus(Open):
    replica: str = Field(description="where the replica lives (endpoint/bucket)")
    total: int
    replicated: int
    pending: list[PendingBackup]
    pending_bytes: int
    summary: str = Field(description="the replica's state in one sentence")
    warnings: list[str] = Field(description="why the replica is not a backup (nothing replicated, no replica "
                                            "configured, a replica on the primary's own server); empty when fine")
    rows: list[BackupRow] = Field(default_factory=list, description="every version and whether the replica holds it")


class BestAlias(Open):
    version_id: str | None = Field(description="the version `best` names (None: not set yet)")
    metric: str | None = Field(description="the metric that moved it there (e.g. heldout.loss)")
    value: float | None = None
    moved_at: str | None = None
    configured: str = Field(description="TRAINYARD_BEST_METRIC (auto or a metric path)")
    rule: str = Field(description="what best follows, in words")


class VerifyReportPublic(Open):
    checked_blobs: int
    checked_bytes: int
    missing: list[str] = Field(description="'blob:<sha256>' or 'manifest:<version id>'")
    corrupt: list[str]
    repaired: list[str] = Field(default_factory=list)
    unrepaired: list[str] = Field(default_factory=list)
    affected_versions: list[str] = Field(default_factory=list)
    ok: bool


# --- events and health ------------------------------------------------------------------------------
class EventPublic(Open):
    """An event envelope (``shared.events.Event``) with the ``stream`` and ``entry_id`` it was read from."""

    type: str
    id: str | None = None
    job_id: str | None = None
    payload: dict[str, Any] | None = None
    stream: str | None = None
    entry_id: str | None = None


class EventList(BaseModel):
    data: list[EventPublic]
    count: int
    last_id: str = Field(description="pass as ?after= to continue")


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, bool | str]
    backends: dict[str, bool]


class Problem(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None
