"""The control-file watcher: ``control/pause``, ``resume``, ``stop`` or ``skip`` act on a job.

The file may hold a job id; empty means the running job (for ``resume``: the most recently paused,
preempted or stopped one). The file is consumed and the outcome appended to ``control/outcomes.log``
(one JSON line each) and published as ``job.control_requested`` by the control functions.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from services.trainer import control, jobstore
from services.trainer.exceptions import TrainerError
from services.trainer.states import RESUMABLE, Action
from services.trainer.watching import Watcher
from shared.settings import TrainerSettings

log = logging.getLogger(__name__)

ACTIONS = (Action.pause, Action.resume, Action.stop, Action.skip)
OUTCOMES = "outcomes.log"


def latest_resumable(r: redis.Redis) -> str | None:
    recs = []
    for job_id in jobstore.all_ids(r):
        try:
            rec = jobstore.load(r, job_id)
        except TrainerError:
            continue
        if rec["state"] in {s.value for s in RESUMABLE}:
            recs.append((rec.get("updated_at", ""), job_id))
    return max(recs)[1] if recs else None


class ControlFileWatcher(Watcher):
    def __init__(self, settings: TrainerSettings, r: redis.Redis, poll_s: float = 0.5) -> None:
        super().__init__()
        self.settings = settings
        self.r = r
        self.dir = Path(settings.control_dir)
        self.poll_s = poll_s

    def interval(self) -> float:
        return self.poll_s

    def scan_once(self) -> list[dict[str, Any]]:
        if not self.dir.is_dir():
            return []
        done = []
        for action in ACTIONS:
            path = self.dir / action.value
            if path.is_file():
                done.append(self.consume(path, action))
        return done

    def consume(self, path: Path, action: Action) -> dict[str, Any]:
        try:
            job_id = path.read_text(encoding="utf-8", errors="replace").strip() or None
        finally:
            path.unlink(missing_ok=True)
        record: dict[str, Any] = {"at": datetime.now(UTC).isoformat(), "action": action.value, "job_id": job_id}
        try:
            if job_id is None:
                job_id = latest_resumable(self.r) if action == Action.resume else control.running_job(self.r)
                record["job_id"] = job_id
            if job_id is None:
                raise TrainerError(f"no job to {action.value}: none running" if action != Action.resume
                                   else "no paused, preempted or stopped job to resume")
            if action == Action.pause:
                outcome = control.pause(self.r, job_id, source="control-file")
            elif action == Action.resume:
                outcome = control.resume(self.settings, self.r, job_id)
            elif action == Action.stop:
                outcome = control.stop(self.r, job_id, source="control-file")
            else:
                outcome = control.skip(self.r, job_id, source="control-file")
            record.update(ok=True, outcome=outcome)
        except TrainerError as exc:
            record.update(ok=False, outcome=str(exc))
        log.info("control file %s: %s", action.value, record)
        with open(self.dir / OUTCOMES, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        return record
