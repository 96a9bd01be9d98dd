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


class TargetPublic(BaseModel):
    name: str
    url: str
    kind: str
    current: dict[str, Any] | None = None


class Problem(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None
