"""The inbox watcher: a complete dataset file dropped in ``inbox/`` becomes a queued job.

Datasets are ``.jsonl``, ``.csv``, ``.parquet`` and ``.json`` holding a JSON array. A file is complete when it
is not a ``.part`` file and its size and mtime stayed the same for ``inbox_stable_s`` (a stable empty file is
rejected as empty). Symbolic links (dataset or sidecar) are refused and moved, as links, to ``rejected/``; their
targets are never read. An optional sidecar ``NAME.yaml`` / ``NAME.yml`` / ``NAME.json`` (a JSON object) beside
the dataset carries the job spec; a ``high__`` or ``low__`` name prefix sets the priority. Accepted files move
to ``inbox/accepted/``, rejected ones to ``inbox/rejected/`` beside ``NAME.errors.txt``; the original bytes are
never changed. Every file gets an outcome: one of another type is rejected at once, naming the accepted types,
and a sidecar whose dataset never comes is rejected after ``inbox_orphan_s``.
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
from services.trainer.filetypes import ACCEPTED, BOM
from services.trainer.spec import parse_spec
from services.trainer.submit import submit_job
from shared.events import DatasetRejected
from shared.settings import TrainerSettings

log = logging.getLogger(__name__)

SIDECARS = (".yaml", ".yml", ".json")
DATASETS = (".jsonl", ".csv", ".parquet")  # and .json holding an array


def json_object(path: Path) -> bool:
    """Whether a ``.json`` file holds an object (a spec sidecar) rather than an array (a dataset)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:  # gone or unreadable: taken as a dataset, whose reading reports it
        return False
    return head.decode("utf-8", errors="replace").lstrip(BOM + " \t\r\n")[:1] == "{"


def role(path: Path) -> str:
    """``dataset``, ``sidecar`` or ``other`` (a link counts by its name alone: it is never read)."""
    suffix = path.suffix.lower()
    if suffix in DATASETS or (suffix == ".json" and not path.is_symlink() and not json_object(path)):
        return "dataset"
    return "sidecar" if suffix in SIDECARS else "other"


def sidecar_of(path: Path) -> Path | None:
    for s in (path.with_suffix(x) for x in SIDECARS):
        if s != path and (s.is_symlink() or (s.is_file() and role(s) == "sidecar")):
            return s
    return None
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
        """Files whose size and mtime have been stable for ``inbox_stable_s`` (a lone sidecar: ``inbox_orphan_s``).

        A sidecar beside a dataset is never listed: it goes with its dataset.
        """
        now = time.monotonic() if now is None else now
        if not self.dir.is_dir():
            return []
        out = []
        # symbolic links are listed too (never followed): take() refuses them
        current = {p for p in self.dir.iterdir() if p.suffix != ".part" and not p.name.startswith(".")
                   and (p.is_symlink() or p.is_file())}
        roles = {p: role(p) for p in current}
        data_stems = {p.stem for p, r in roles.items() if r == "dataset"}
        for p in sorted(current):
            try:
                st = p.lstat()
            except FileNotFoundError:
                continue
            if roles[p] == "sidecar" and p.stem in data_stems:
                self._seen.pop(p, None)
                continue
            wait = self.settings.inbox_orphan_s if roles[p] == "sidecar" else self.settings.inbox_stable_s
            sig = (st.st_size, st.st_mtime)
            prev = self._seen.get(p)
            if prev is None or prev[:2] != sig:
                self._seen[p] = (*sig, now)
            elif now - prev[2] >= wait:
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
        if not (path.is_symlink() or path.exists()):
            return None  # taken already, as another file's sidecar
        kind = role(path)
        if kind == "other":
            return self._reject(path, None, DatasetError([
                f"{path.name}: unsupported file type {path.suffix or '(no extension)'!r}: {ACCEPTED} "
                "(a job spec goes beside its dataset as NAME.yaml, NAME.yml or NAME.json)"]))
        if kind == "sidecar":
            return self._orphan(path)
        sidecar = sidecar_of(path)
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

    def _orphan(self, path: Path) -> None:
        if any(p.stem == path.stem and p != path and p.is_file() and role(p) == "dataset"
               for p in self.dir.iterdir()):
            return None  # its dataset has come: they go together
        if path.is_symlink():
            return self._reject(path, None, SpecError(
                f"{path.name} is a symbolic link; links are refused, never followed"))
        what = "a JSON object (a job spec)" if path.suffix.lower() == ".json" else "a job spec"
        return self._reject(path, None, SpecError(
            f"{path.name} is {what} with no dataset named {path.stem}.jsonl, .json, .csv or .parquet beside it "
            f"(waited {self.settings.inbox_orphan_s:g} s); a .json dataset must be a JSON array of examples"))

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
