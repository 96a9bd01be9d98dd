"""Schemas of the registry maintenance routes: purge, inventory and the gc check."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from services.api.schemas import Open


class PurgeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    force: str | None = Field(None, description="skip the retention period (repeat the version id); never the replica "
                                            "check")


class PurgeResultPublic(BaseModel):
    version_id: str
    blobs_deleted: int
    bytes_freed: int
    override: bool


class InventoryVersion(Open):
    version_id: str
    kind: str
    name: str = ""
    size: int = 0
    aliases: list[str] = []
    copies: list[str] = []


class Inventory(Open):
    versions: list[InventoryVersion]
    count: int
    logical_bytes: int
    stored_bytes: int = Field(description="bytes in the bucket after deduplication")
    primary: str
    replica: str


class LocalFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(max_length=4096, description="relative to the directory")
    sha256: str = Field(pattern="^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class LocalDir(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(max_length=4096, description="the directory as the client names it (echoed back)")
    files: list[LocalFile] = Field(max_length=100_000)


class GcCheckBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dirs: list[LocalDir] = Field(max_length=1000)


class GcVerdict(BaseModel):
    path: str
    safe: bool = Field(description="every file is stored, verified and replicated: the folder may be deleted")
    bytes: int
    reason: str


class StorageDecision(BaseModel):
    version_id: str
    job_id: str | None
    step: int | None
    size: int
    remove: bool
    reasons: list[str] = Field(description="why it stays (every rule that keeps it) or why it may go")


class StoragePlanPublic(BaseModel):
    budget_bytes: int | None = Field(description="TRAINYARD_BUCKET_BUDGET_GB in bytes; null: no budget set")
    total_bytes: int
    after_bytes: int
    over_budget: bool
    summary: str
    decisions: list[StorageDecision]


class StorageApplyPublic(BaseModel):
    plan: StoragePlanPublic
    removed: list[str]
    refused: dict[str, str] = Field(description="version id -> why a guard kept it at the moment of deletion")
    bytes_freed: int
