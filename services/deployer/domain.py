"""Deployment vocabulary: statuses, adapter names, the serving name and what a deployment needs to know."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from services.deployer.verify import Case

# The stable name clients use on a target (``model="production"``): the verified adapter is hot-swapped
# under it. Each version is also resident under its own name (``adapter_name``) for verification and
# instant rollback.
SERVING_NAME = "production"


class DeploymentStatus(StrEnum):
    REQUESTED = "requested"
    PUSHED = "pushed"
    VERIFIED = "verified"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"


class DeployPolicy(StrEnum):
    MANUAL = "manual"
    ON_COMPLETE = "on-complete"
    ON_IMPROVEMENT = "on-improvement"


class Transfer(StrEnum):
    UPLOAD = "upload"  # chunked, resumable upload to the target (trainyard targets)
    FETCH = "fetch"  # the target downloads presigned registry URLs itself (trainyard targets)
    SHARED = "shared"  # a directory both machines see (vllm targets: no upload endpoints)


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def adapter_name_for(version_id: str, lineage: dict[str, Any]) -> str:
    """``<job>-s<step>`` when the lineage names both, else the version id; safe for URLs and file names."""
    job, step = lineage.get("job_id"), lineage.get("step")
    name = f"{job}-s{step}" if job and step is not None else version_id
    name = _UNSAFE.sub("-", name).strip("-.")[:64]
    return name if name and name != SERVING_NAME else f"v-{version_id}"[:64]


@dataclass(frozen=True)
class Plan:
    """Everything checked before the target is touched."""

    deployment_id: str
    version_id: str
    target: str
    adapter_name: str
    files: list[dict[str, Any]]
    cases: list[Case]
    max_tokens: int
    eos: str | None
    job_id: str | None
