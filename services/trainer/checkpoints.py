"""Local checkpoint directories: self-description, hashing, discovery and confirmed-only retention.

A checkpoint is complete once ``trainyard_job.json`` (the typed spec, job id and step) is written, which
happens last; a directory without it (a crash or a full disk mid-save) is never resumed from or published.
A checkpoint is deleted only after the registry stored a version with the same file hashes, and then only
beyond the newest ``keep`` confirmed ones; the newest checkpoint (needed to resume) is always kept.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from shared.events import FileEntry
from shared.storage import list_files, sha256_file

log = logging.getLogger(__name__)

SPEC_FILE = "trainyard_job.json"
PREFIX = "checkpoint-"


def write_spec(ckpt_dir: Path, *, job_id: str, step: int, spec: dict[str, Any]) -> None:
    tmp = ckpt_dir / (SPEC_FILE + ".tmp")
    tmp.write_text(json.dumps({"job_id": job_id, "step": step, "spec": spec}, indent=1, sort_keys=True))
    os.replace(tmp, ckpt_dir / SPEC_FILE)


def describe(ckpt_dir: Path) -> list[FileEntry]:
    """Every file of a checkpoint with sha256 and size, paths relative to the directory."""
    return [FileEntry(path=p.relative_to(ckpt_dir).as_posix(), sha256=sha256_file(p), size=p.stat().st_size)
            for p in list_files(ckpt_dir)]


def step_of(path: Path) -> int:
    try:
        return int(path.name[len(PREFIX):])
    except ValueError:
        return -1


def complete(output_dir: Path) -> list[Path]:
    """Complete checkpoints under ``output_dir``, oldest first."""
    if not output_dir.is_dir():
        return []
    found = [p for p in output_dir.iterdir() if p.name.startswith(PREFIX) and step_of(p) >= 0]
    return sorted((p for p in found if (p / SPEC_FILE).is_file()), key=step_of)


def latest(output_dir: Path) -> Path | None:
    done = complete(output_dir)
    return done[-1] if done else None


def remove_incomplete(output_dir: Path) -> list[Path]:
    """Delete partial checkpoint directories (never published, so nothing refers to them)."""
    if not output_dir.is_dir():
        return []
    gone = [p for p in output_dir.iterdir()
            if p.is_dir() and p.name.startswith(PREFIX) and not (p / SPEC_FILE).is_file()]
    for p in gone:
        shutil.rmtree(p, ignore_errors=True)
    return gone


def matches(ckpt_files: list[dict[str, Any]], version_files: list[dict[str, Any]]) -> bool:
    """True when the version holds every checkpoint file with the same sha256 and size."""
    stored = {f["path"]: (f["sha256"], f["size"]) for f in version_files}
    return bool(ckpt_files) and all(stored.get(f["path"]) == (f["sha256"], f["size"]) for f in ckpt_files)


def prune(output_dir: Path, confirmed: set[str], keep: int) -> list[Path]:
    """Delete confirmed checkpoints beyond the newest ``keep`` confirmed ones; never the newest overall."""
    done = complete(output_dir)
    if not done:
        return []
    ok = [p for p in done if str(p.resolve()) in confirmed]
    kept = set(ok[-keep:]) if keep > 0 else set()
    kept.add(done[-1])
    doomed = [p for p in ok if p not in kept]
    for p in doomed:
        log.info("retention: deleting confirmed local checkpoint %s", p)
        shutil.rmtree(p)
    return doomed
