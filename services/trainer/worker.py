"""The trainer's RQ worker: serves high, default, low in that order; two-stage shutdown.

First SIGINT/SIGTERM: the running job checkpoints at its next step and goes back to the front of its queue,
the side loops stop, and the worker exits after the job. Second signal: exit now (the job resumes later from
its last complete checkpoint; the orphan reaper of the next worker requeues it).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Sequence
from types import FrameType

import redis
from rq import SimpleWorker

from services.trainer import control, jobstore, queueing
from services.trainer.emit import emit
from services.trainer.states import Action, JobState
from shared import streams
from shared.events import JobFailed
from shared.runtime import Loop

log = logging.getLogger(__name__)


class OrphanReaper:
    """Requeues jobs whose worker died mid-training (no heartbeat): they resume from the last checkpoint."""

    def __init__(self, r: redis.Redis, interval_s: float = 2.0) -> None:
        self.r = r
        self.interval_s = interval_s
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        while not self._stop.is_set():
            self.reap_once()
            self._stop.wait(self.interval_s)

    def reap_once(self) -> list[str]:
        done = []
        for job_id in jobstore.orphaned(self.r):
            try:
                jobstore.transition(self.r, job_id, [JobState.running], JobState.failed,
                                    error="worker died (no heartbeat)")
            except Exception:  # noqa: BLE001 - another reaper won
                continue
            self.r.hdel(jobstore.RUNNING_KEY, job_id)
            emit(self.r, "job.failed", JobFailed(error="worker died mid-training (no heartbeat); requeued"),
                 job_id)
            control.resume(None, self.r, job_id, front=True)
            log.warning("requeued orphaned job %s", job_id)
            done.append(job_id)
        return done


class TrainerWorker:
    def __init__(self, r: redis.Redis, name: str, loops: Sequence[Loop] = ()) -> None:
        self.r = r
        self.name = name
        self.loops = list(loops)
        self.worker = SimpleWorker(list(queueing.QUEUES), connection=r, name=name, worker_ttl=20)
        self.worker._install_signal_handlers = self._install  # type: ignore[method-assign]
        self._stopping = False

    def _install(self) -> None:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._stopping:
            log.warning("second signal: exiting now (the job resumes from its last checkpoint)")
            os._exit(1)
        self._stopping = True
        mine = [j for j, w in jobstore.running_jobs(self.r).items() if w == self.name]
        for job_id in mine:
            log.info("signal %d: checkpointing %s and requeueing it (again to exit now)", signum, job_id)
            self.r.hset(streams.CONTROL_KEY, job_id, Action.requeue.value)
        for loop in self.loops:
            loop.stop()
        try:
            self.worker.request_stop(signum, frame)  # warm stop; raises StopRequested when idle
        finally:
            self._install()

    def run(self, burst: bool = False) -> None:
        self.worker.work(burst=burst, with_scheduler=False)
