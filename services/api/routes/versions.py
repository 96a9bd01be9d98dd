"""Versions: list, get (with manifest), lineage graph, aliases, protection, trash/restore, download links."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.api import backends as b
from services.api.deps import READ, WRITE, PageDep, RedisDep, RegistryCtxDep, RegistryDep
from services.api.exceptions import found
from services.api.problems import NOT_FOUND, READ_ERRORS, WRITE_ERRORS
from services.api.schemas import (
    AliasCreate,
    DownloadLinks,
    LineageGraph,
    Page,
    ProtectBody,
    StorageUsed,
    VersionAction,
    VersionDetail,
    VersionPublic,
    paginate,
)
from services.api.schemas_registry import PurgeBody, PurgeResultPublic

router = APIRouter(prefix="/api/versions", tags=["versions"])

LINEAGE_LINKS = ("parent_version_id", "base_version_id", "dataset_version_id")


def load_version(r: Any, version_id: str) -> dict[str, Any]:
    return found(b.call(b.REGISTRY_PROJECTION, "get_version", r, version_id), f"no version {version_id}")


@router.get("", response_model=Page[VersionPublic], dependencies=READ, responses=READ_ERRORS)
def list_versions(
    r: RedisDep, page: PageDep,
    kind: Annotated[str | None, Query(pattern="^(base|adapter|merged|dataset)$")] = None,
    job_id: Annotated[str | None, Query()] = None,
    include_trashed: Annotated[bool, Query()] = False,
) -> dict:
    items = b.call(b.REGISTRY_PROJECTION, "list_versions", r, kind=kind, job_id=job_id,
                   include_trashed=include_trashed)
    return paginate(items, *page)


@router.get("/aliases", response_model=dict[str, str], dependencies=READ, responses=READ_ERRORS)
def aliases(r: RedisDep) -> dict:
    """Every alias and the version it points to."""
    return b.call(b.REGISTRY_PROJECTION, "get_aliases", r)


@router.get("/storage", response_model=StorageUsed, dependencies=READ, responses=READ_ERRORS)
def storage_used(r: RedisDep) -> dict:
    """Bytes stored: logical (sum over versions) and unique (each blob counted once)."""
    items = b.call(b.REGISTRY_PROJECTION, "list_versions", r, include_trashed=True)
    logical, blobs, by_kind = 0, {}, {}
    for v in items:
        for f in v.get("files") or []:
            logical += int(f.get("size", 0))
            blobs[f.get("sha256")] = int(f.get("size", 0))
        size = v.get("size") or sum(int(f.get("size", 0)) for f in v.get("files") or [])
        by_kind[v.get("kind", "?")] = by_kind.get(v.get("kind", "?"), 0) + int(size)
    return {"versions": len(items), "logical_bytes": logical, "unique_bytes": sum(blobs.values()),
            "blobs": len(blobs), "by_kind": by_kind}


@router.get("/{version_id}", response_model=VersionDetail, dependencies=READ, responses={**READ_ERRORS, **NOT_FOUND})
def get_version(version_id: str, r: RedisDep, registry: RegistryDep) -> dict:
    """The version as the registry projection knows it, with its manifest from the bucket."""
    v = load_version(r, version_id)
    manifest = registry.get_json(f"manifests/{version_id}.json")
    return {**v, "manifest": manifest}


@router.get("/{version_id}/lineage", response_model=LineageGraph, dependencies=READ,
            responses={**READ_ERRORS, **NOT_FOUND})
def lineage(version_id: str, r: RedisDep, registry: RegistryDep) -> dict:
    """The version's ancestry (parent, base model, dataset) and the versions of the same job."""
    load_version(r, version_id)
    nodes: dict[str, dict[str, Any]] = {}
    edges: list[dict[str, Any]] = []
    todo = [version_id]
    while todo and len(nodes) < 200:
        vid = todo.pop()
        if vid in nodes:
            continue
        manifest = registry.get_json(f"manifests/{vid}.json") or {}
        lin = manifest.get("lineage") or {}
        nodes[vid] = {"version_id": vid, "kind": manifest.get("kind"), "name": manifest.get("name"),
                      "step": lin.get("step"), "job_id": lin.get("job_id"), "missing": not manifest}
        for link in LINEAGE_LINKS:
            parent = lin.get(link)
            if parent:
                edges.append({"from": parent, "to": vid, "relation": link.removesuffix("_version_id")})
                todo.append(parent)
    job_id = nodes[version_id].get("job_id")
    if job_id:  # siblings: the job's other checkpoints, in step order
        for v in b.call(b.REGISTRY_PROJECTION, "list_versions", r, job_id=job_id, include_trashed=True):
            vid = v.get("version_id")
            if vid and vid not in nodes:
                nodes[vid] = {"version_id": vid, "kind": v.get("kind"), "name": v.get("name"),
                              "step": v.get("step"), "job_id": job_id, "missing": False}
    return {"nodes": list(nodes.values()), "edges": edges}


@router.get("/{version_id}/download", response_model=DownloadLinks, dependencies=READ, responses={**READ_ERRORS, **NOT_FOUND})
def download(version_id: str, r: RedisDep, registry: RegistryDep,
             expires_s: Annotated[int, Query(ge=60, le=86400)] = 3600) -> dict:
    """Time-limited download links for every file of the version (straight from the object store)."""
    load_version(r, version_id)
    manifest = found(registry.get_json(f"manifests/{version_id}.json"),
                     f"no manifest for version {version_id} in the bucket")
    files = [{**f, "url": registry.presigned_blob_url(f["sha256"], expires_s)} for f in manifest["files"]]
    return {"version_id": version_id, "files": files}


def _command(name: str, version_id: str, r: Any, reg: Any, *args: Any, **kwargs: Any) -> dict:
    load_version(r, version_id)
    result = b.call(b.REGISTRY_COMMANDS, name, reg, *args, **kwargs)
    return {"version_id": version_id, "action": name, "result": result if isinstance(result, (str, int, bool)) else None}


@router.post("/{version_id}/protect", response_model=VersionAction, status_code=202, dependencies=WRITE, responses=WRITE_ERRORS)
def protect(version_id: str, body: ProtectBody, r: RedisDep, reg: RegistryCtxDep) -> dict:
    """Pin the version: it cannot be trashed or purged while pinned."""
    return _command("protect", version_id, r, reg, version_id, reason=body.reason)


@router.post("/{version_id}/unprotect", response_model=VersionAction, status_code=202, dependencies=WRITE, responses=WRITE_ERRORS)
def unprotect(version_id: str, r: RedisDep, reg: RegistryCtxDep) -> dict:
    """Remove the pin (aliases and deployments still protect the version)."""
    return _command("unprotect", version_id, r, reg, version_id)


@router.post("/{version_id}/aliases", response_model=VersionAction, status_code=202, dependencies=WRITE, responses=WRITE_ERRORS)
def move_alias(version_id: str, body: AliasCreate, r: RedisDep, reg: RegistryCtxDep) -> dict:
    """Point an alias at this version (moving it if it exists)."""
    load_version(r, version_id)
    b.call(b.REGISTRY_COMMANDS, "move_alias", reg, body.alias, version_id)
    return {"version_id": version_id, "action": "move_alias", "result": body.alias}


@router.post("/{version_id}/trash", response_model=VersionAction, status_code=202, dependencies=WRITE, responses=WRITE_ERRORS)
def trash(version_id: str, r: RedisDep, reg: RegistryCtxDep) -> dict:
    """Move the version to the trash (refused for protected versions); ``result`` says when it may be purged."""
    return _command("trash", version_id, r, reg, version_id)


@router.post("/{version_id}/restore", response_model=VersionAction, status_code=202, dependencies=WRITE, responses=WRITE_ERRORS)
def restore(version_id: str, r: RedisDep, reg: RegistryCtxDep) -> dict:
    """Take the version back out of the trash."""
    return _command("restore", version_id, r, reg, version_id)


@router.post("/{version_id}/purge", response_model=PurgeResultPublic, status_code=200, dependencies=WRITE,
             responses=WRITE_ERRORS)
def purge(version_id: str, body: PurgeBody, r: RedisDep, reg: RegistryCtxDep) -> dict:
    """Delete a trashed version for good: refused before the retention has passed (``force`` repeats the
    version id to skip it) and always unless the replica holds a verified copy."""
    load_version(r, version_id)
    result = b.call(b.REGISTRY_COMMANDS, "purge", reg, version_id, override=body.force)
    return dataclasses.asdict(result)
