"""Adapter uploads: declare files, send chunks (resumable) or let the server fetch URLs, then commit."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request

from services.inference.deps import Authorized, MetricsDep, SettingsDep, StoreDep
from services.inference.exceptions import ChecksumMismatchError, UploadTooLargeError
from services.inference.fetch import fetch_files
from services.inference.schemas import UploadCreate, UploadFetch

router = APIRouter(prefix="/v1/adapter_uploads", tags=["uploads"], dependencies=Authorized)


def _lock(request: Request, upload_id: str) -> asyncio.Lock:
    """One writer per upload at a time (chunks, fetch and commit of the same upload never interleave)."""
    locks: dict[str, asyncio.Lock] = request.app.state.upload_locks
    return locks.setdefault(upload_id, asyncio.Lock())



@router.post("")
async def create_upload(body: UploadCreate, store: StoreDep, metrics: MetricsDep) -> dict[str, Any]:
    upload_id = await asyncio.to_thread(store.create, body.files)
    metrics.uploads.labels(result="created").inc()
    return {"upload_id": upload_id}


@router.get("/{upload_id}")
async def upload_status(upload_id: str, store: StoreDep) -> dict[str, Any]:
    return await asyncio.to_thread(store.status, upload_id)


@router.put("/{upload_id}/files/{path:path}")
async def put_chunk(upload_id: str, path: str, request: Request, store: StoreDep, offset: int = 0) -> dict[str, Any]:
    async with _lock(request, upload_id):
        f, room = store.open_at(upload_id, path, offset)
        written = 0
        try:
            async for chunk in request.stream():
                written += len(chunk)
                if written > room:
                    f.truncate(offset)
                    raise UploadTooLargeError(
                        f"{path}: bytes past the declared size ({offset} + {written} > {offset + room})")
                f.write(chunk)
        finally:
            f.close()
        return {"path": path, "received": offset + written}


@router.post("/{upload_id}/fetch")
async def fetch(upload_id: str, body: UploadFetch, request: Request, store: StoreDep, settings: SettingsDep) -> dict[str, Any]:
    async with _lock(request, upload_id):
        await fetch_files(store, upload_id, body.urls, settings.fetch_timeout_s)
    return await asyncio.to_thread(store.status, upload_id)


@router.post("/{upload_id}/commit")
async def commit(upload_id: str, request: Request, store: StoreDep, metrics: MetricsDep) -> dict[str, Any]:
    async with _lock(request, upload_id):
        try:
            lora_path = await asyncio.to_thread(store.commit, upload_id)
        except ChecksumMismatchError:
            metrics.uploads.labels(result="rejected").inc()
            raise
    metrics.uploads.labels(result="committed").inc()
    return {"upload_id": upload_id, "lora_path": lora_path}


@router.delete("/{upload_id}")
async def delete_upload(upload_id: str, request: Request, store: StoreDep) -> dict[str, Any]:
    async with _lock(request, upload_id):
        await asyncio.to_thread(store.delete, upload_id)
    request.app.state.upload_locks.pop(upload_id, None)
    return {"upload_id": upload_id, "deleted": True}
