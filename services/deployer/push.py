"""Getting a version's adapter files onto a target: chunked resumable upload, or fetch by presigned URL.

The upload id is kept in the deployer's state, so a deployment interrupted mid-transfer (a dropped
connection, a deployer restart) continues from the bytes the target already has.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from services.deployer.exceptions import TargetUnreachableError, UploadRejectedError
from services.deployer.state import DeployerState
from services.deployer.target import TargetClient

log = logging.getLogger(__name__)

CHUNK_BYTES = 4 * 1024 * 1024
RESUME_ATTEMPTS = 3


def _open_upload(client: TargetClient, state: DeployerState, version_id: str,
                 files: list[dict[str, Any]]) -> tuple[str, dict[str, int]]:
    """The upload to continue (and the bytes received per file), or a fresh one."""
    upload_id = state.upload_id(client.name, version_id)
    if upload_id:
        status = client.upload_status(upload_id)
        if status is not None:
            received = {f["path"]: int(f.get("received", 0)) for f in status.get("files", [])}
            if set(received) == {f["path"] for f in files}:
                return upload_id, received
    upload_id = client.create_upload(files)
    state.set_upload_id(client.name, version_id, upload_id)
    return upload_id, {f["path"]: 0 for f in files}


def _send_files(client: TargetClient, upload_id: str, src: Path, files: list[dict[str, Any]],
                received: dict[str, int], chunk: int) -> int:
    sent = 0
    for f in files:
        offset = received.get(f["path"], 0)
        with open(src / f["path"], "rb") as fh:
            fh.seek(offset)
            while offset < f["size"]:
                data = fh.read(chunk)
                if not data:
                    raise UploadRejectedError(f"{f['path']} is shorter than its manifest size {f['size']}")
                got = client.put_chunk(upload_id, f["path"], offset, data)
                if got != offset + len(data):  # the target says where to go on; trust it, re-seek
                    fh.seek(got)
                sent += max(0, got - offset)
                offset = got
    return sent


def upload(client: TargetClient, state: DeployerState, version_id: str, src: Path,
           files: list[dict[str, Any]], chunk: int = CHUNK_BYTES) -> str:
    """Upload ``files`` (manifest entries under ``src``) and commit; returns the target's ``lora_path``."""
    entries = [{"path": f["path"], "sha256": f["sha256"], "size": int(f["size"])} for f in files]
    for attempt in range(1, RESUME_ATTEMPTS + 1):
        upload_id, received = _open_upload(client, state, version_id, entries)
        try:
            sent = _send_files(client, upload_id, src, entries, received, chunk)
            break
        except TargetUnreachableError:
            if attempt == RESUME_ATTEMPTS:
                raise
            log.warning("upload of %s to %s interrupted; resuming (attempt %d)", version_id, client.name, attempt)
    log.info("uploaded %d bytes of %s to %s (upload %s)", sent, version_id, client.name, upload_id)
    try:
        lora_path = client.commit_upload(upload_id)
    except UploadRejectedError:
        state.set_upload_id(client.name, version_id, None)  # start afresh next time
        raise
    state.set_upload_id(client.name, version_id, None)
    return lora_path


def fetch(client: TargetClient, files: list[dict[str, Any]], urls: dict[str, str]) -> str:
    """Let the target download the files itself from presigned registry URLs; returns ``lora_path``."""
    entries = [{"path": f["path"], "sha256": f["sha256"], "size": int(f["size"])} for f in files]
    upload_id = client.create_upload(entries)
    client.fetch_upload(upload_id, urls)
    return client.commit_upload(upload_id)
