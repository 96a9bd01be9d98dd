"""The inbox watcher: a complete ``.jsonl`` dropped in ``inbox/`` becomes a queued job.

A file is complete when it is not a ``.part`` file and its size and mtime stayed the same for
``inbox_stable_s`` (a stable empty file is rejected as empty). Symbolic links (dataset or sidecar) are refused
and moved, as links, to ``rejected/``; their targets are never read. An optional sidecar ``NAME.yaml`` / ``NAME.yml`` / ``NAME.json`` carries the job spec; a
``high__`` or ``low__`` name prefix sets the priority. Accepted files move to ``inbox/accepted/``, rejected
ones to ``inbox/rejected/`` beside ``NAME.errors.txt``; the original bytes are never changed.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import redis
import yaml
from minio import Minio

from services.trainer import admission, trainability
from services.trainer.datasets import load_and_validate
from services.trainer.emit import emit
from services.trainer.exceptions import DatasetError, SpecError
from services.trainer.spec import parse_spec
from services.trainer.submit import submit_job
from shared.events import DatasetRejected
from shared.settings import TrainerSettings

log = logging.getLogger(__name__)

SIDECARS = (".yaml", ".yml", ".json")
PRIORITY_PREFIXES = {"high__": "high", "low__": "low", "default__": "default"}


def priority_from_name(name: str) -> tuple[str | None, str]:
    for prefix, prio in PRIORITY_PREFIXES.items():
        if name.startswith(prefix):
            return prio, name[len(prefix):]
    return None, name


def read_sidecar(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise SpecError(f"sidecar {path.name} is unreadable: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SpecError(f"sidecar {path.name} must hold a mapping of spec fields, got {type(data).__name__}")
    return data


def _free_name(directory: Path, name: str) -> Path:
    target = directory / name
    n = 1
    while target.exists() or target.is_symlink():
        target = directory / f"{Path(name).stem}.{n}{Path(name).suffix}"
        n += 1
    return target


class InboxWatcher:
    def __init__(self, settings: TrainerSettings, r: redis.Redis, s3: Minio) -> None:
        self.settings = settings
        self.r = r
        self.s3 = s3
        self.dir = Path(settings.inbox_dir)
        self._seen: dict[Path, tuple[int, float, float]] = {}  # path -> (size, mtime, since)
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        while not self._stop.is_set():
            self.scan_once()
            self._stop.wait(self.settings.inbox_poll_s)

    def ready(self, now: float | None = None) -> list[Path]:
        """``.jsonl`` files whose size and mtime have been stable for ``inbox_stable_s``."""
        now = time.monotonic() if now is None else now
        if not self.dir.is_dir():
            return []
        out = []
        # symbolic links are listed too (never followed): take() refuses them
        current = {p for p in self.dir.iterdir() if p.suffix == ".jsonl" and not p.name.startswith(".")
                   and (p.is_symlink() or p.is_file())}
        for p in sorted(current):
            try:
                st = p.lstat()
            except FileNotFoundError:
                continue
            sig = (st.st_size, st.st_mtime)
            prev = self._seen.get(p)
            if prev is None or prev[:2] != sig:
                self._seen[p] = (*sig, now)
            elif now - prev[2] >= self.settings.inbox_stable_s:
                out.append(p)  # a stable 0-byte file too: it is rejected as empty, not left there forever
        self._seen = {p: v for p, v in self._seen.items() if p in current}
        return out

    def scan_once(self) -> list[str]:
        """Pick up every ready file; returns the ids of the jobs queued."""
        jobs = []
        for path in self.ready():
            self._seen.pop(path, None)
            job_id = self.take(path)
            if job_id:
                jobs.append(job_id)
        return jobs

    def take(self, path: Path) -> str | None:
        sidecar = next((s for s in (path.with_suffix(x) for x in SIDECARS) if s.is_file() or s.is_symlink()), None)
        prio, stem_name = priority_from_name(path.stem)
        if path.is_symlink():
            return self._reject(path, sidecar, DatasetError([
                f"{path.name} is a symbolic link; links are refused, never followed (copy the file itself into "
                "the inbox)"]))
        if sidecar is not None and sidecar.is_symlink():
            return self._reject(path, sidecar, SpecError(
                f"sidecar {sidecar.name} is a symbolic link; links are refused, never followed"))
        try:
            spec = read_sidecar(sidecar) if sidecar else {}
            if prio and "priority" not in spec:
                spec["priority"] = prio
            spec.setdefault("name", stem_name)
            job_spec = parse_spec(spec)
            admission.check(self.settings, job_spec, path)
            trainability.check(job_spec, load_and_validate(path, job_spec.dataset_format))
        except (SpecError, DatasetError) as exc:
            return self._reject(path, sidecar, exc)
        accepted = self._move(path, sidecar, "accepted")
        try:
            job_id = submit_job(self.settings, self.r, self.s3, accepted, spec=job_spec, source="inbox")
        except (SpecError, DatasetError) as exc:  # changed under us: move it on to rejected
            back = accepted.parent.parent / accepted.name
            shutil.move(accepted, back)
            return self._reject(back, None, exc)
        log.info("inbox: %s queued as %s", path.name, job_id)
        return job_id

    def _move(self, path: Path, sidecar: Path | None, sub: str) -> Path:
        dest_dir = self.dir / sub
        dest_dir.mkdir(parents=True, exist_ok=True)
        target = _free_name(dest_dir, path.name)
        shutil.move(path, target)
        if sidecar is not None:
            shutil.move(sidecar, target.with_suffix(sidecar.suffix))
        return target

    def _reject(self, path: Path, sidecar: Path | None, exc: Exception) -> None:
        report = exc.report if isinstance(exc, DatasetError) else [str(exc)]
        target = self._move(path, sidecar, "rejected")
        errors = target.with_name(target.stem + ".errors.txt")
        errors.write_text(f"{path.name} was rejected ({len(report)} problem(s)):\n" + "\n".join(report) + "\n",
                          encoding="utf-8")
        emit(self.r, "dataset.rejected", DatasetRejected(file=str(target), errors=report,
                                                          report_path=str(errors)), None)
        log.warning("inbox: %s rejected: %s", path.name, "; ".join(report[:3]))
        return None
