"""Uploaded dataset files: saved under a private folder of the uploads directory, and named in every message
as the user sent them (a refused upload never shows a server path)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import UploadFile

from services.api.errors import status_for_foreign
from services.api.exceptions import ApiError, BadInput

UPLOAD_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Upload:
    path: Path  # where the server keeps it
    sent_as: str  # the file's name as the client sent it (its last path component)
    size: int

    @property
    def stem(self) -> str:
        return Path(self.path.name).stem


def spec_overrides(spec: str) -> dict[str, Any]:
    """The ``spec`` form field of an upload: a JSON object of JobSpec overrides, else a 422 saying why."""
    try:
        overrides = json.loads(spec)
    except ValueError as exc:
        raise BadInput(f"spec: not JSON ({exc})") from exc
    if not isinstance(overrides, dict):
        raise BadInput("spec: must be a JSON object")
    return overrides


def safe_filename(name: str) -> str:
    base = Path(name.replace("\\", "/")).name
    base = re.sub(r"[^A-Za-z0-9._-]", "_", base).lstrip(".")
    return base or "dataset.jsonl"


def save(uploads_dir: Path, file: UploadFile) -> Upload:
    """Write the upload to ``<uploads_dir>/<random>/<safe name>``; an empty file is refused."""
    sent = Path((file.filename or "dataset.jsonl").replace("\\", "/")).name or "dataset.jsonl"
    dest = Path(uploads_dir) / uuid.uuid4().hex / safe_filename(sent)
    dest.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    with dest.open("wb") as out:
        while chunk := file.file.read(UPLOAD_CHUNK):
            out.write(chunk)
            size += len(chunk)
    if size == 0:
        raise BadInput("file: the uploaded dataset is empty")
    return Upload(dest, sent, size)


def as_sent(text: str, upload: Upload) -> str:
    """``text`` with every spelling of the server's path of ``upload`` replaced by the name the user sent."""
    for spelling in sorted({str(upload.path.resolve()), str(upload.path), str(upload.path.absolute())},
                           key=len, reverse=True):
        text = text.replace(spelling, upload.sent_as)
    for folder in sorted({str(upload.path.parent.resolve()), str(upload.path.parent)}, key=len, reverse=True):
        text = text.replace(folder, "")
    return text


@contextmanager
def named_as_sent(upload: Upload) -> Iterator[None]:
    """Let a refusal (4xx) of ``upload`` through with every server path replaced by the name the user sent."""
    try:
        yield
    except Exception as exc:
        status = exc.status if isinstance(exc, ApiError) else status_for_foreign(exc)
        if status is None or status >= 500:
            raise
        exc.args = (as_sent(str(exc), upload),)
        report = getattr(exc, "report", None)
        if isinstance(report, list):
            exc.report = [as_sent(str(line), upload) for line in report]  # type: ignore[attr-defined]
        elif isinstance(report, str):
            exc.report = as_sent(report, upload)  # type: ignore[attr-defined]
        raise
