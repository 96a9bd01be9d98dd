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
import time
from collections.abc import Callable, Sequence
from types import FrameType

import redis
from rq import SimpleWorker

from services.trainer import control, jobstore, queueing, resilient
from services.trainer.emit import emit
from services.trainer.states import Action, JobState
from shared import streams
from shared.events import JobFailed
from shared.runtime import Loop

log = logging.getLogger(__name__)


class OrphanReaper:
    """Requeues jobs whose worker died mid-training (no heartbeat): they resume from the last checkpoint.

    A job is reaped only after its heartbeat has been missing for ``grace_s`` (a Redis restart lets every
    heartbeat lapse at once; live workers refresh theirs at their next step), and never while this very
    process is training it.
    """

    def __init__(self, r: redis.Redis, interval_s: float = 2.0, grace_s: float = float(jobstore.HEARTBEAT_TTL_S),
                 training_here: Callable[[], set[str]] = lambda: set()) -> None:
        self.r = r
        self.interval_s = interval_s
        self.grace_s = grace_s
        self.training_here = training_here
        self._suspects: dict[str, float] = {}  # job id -> when its heartbeat was first seen missing
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.reap_once()
            except resilient.RETRYABLE as exc:
                log.warning("reaper: redis unavailable (%s); trying again", exc)
                self._suspects.clear()  # heartbeats could not be refreshed meanwhile: start the grace over
            self._stop.wait(self.interval_s)

    def suspects(self, now: float | None = None) -> list[str]:
        """Orphaned jobs whose heartbeat has been missing for at least ``grace_s``."""
        now = time.monotonic() if now is None else now
        missing = set(jobstore.orphaned(self.r)) - self.training_here()
        self._suspects = {j: t for j, t in self._suspects.items() if j in missing}
        for job_id in missing:
            self._suspects.setdefault(job_id, now)
        return sorted(j for j, t in self._suspects.items() if now - t >= self.grace_s)

    def reap_once(self, now: float | None = None) -> list[str]:
        done = []
        for job_id in self.suspects(now):
            self._suspects.pop(job_id, None)
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

    def run(self, burst: bool = False, max_restarts: int | None = None) -> None:
        """Work until stopped. RQ quits its loop on an error it does not handle (Redis gone in the middle of
        its bookkeeping): the worker is then registered again and goes on, with backoff."""
        delay, restarts = 1.0, 0
        while True:
            try:
                self.worker.work(burst=burst, with_scheduler=False)
            except resilient.RETRYABLE as exc:
                log.warning("worker %s: redis unavailable (%s)", self.name, exc)
            except Exception:  # noqa: BLE001 - the worker must outlive whatever broke one RQ loop
                log.exception("worker %s: RQ loop raised", self.name)
            if self._stopping or (burst and self._queues_empty()):
                return
            restarts += 1
            if max_restarts is not None and restarts > max_restarts:
                raise RuntimeError(f"worker {self.name}: RQ loop quit {restarts} times")
            log.warning("worker %s: RQ loop quit unexpectedly; restarting in %.0f s", self.name, delay)
            time.sleep(delay)
            delay = min(delay * 2, 30.0)
            self._rebuild()

    def _queues_empty(self) -> bool:
        try:
            return not any(self.r.llen(f"rq:queue:{q}") for q in queueing.QUEUES)
        except resilient.RETRYABLE:
            return False

    def _rebuild(self) -> None:
        """A fresh RQ worker under the same name (the job records name it); the old registration is retired."""
        try:
            resilient.call(self.worker.register_death, what="retiring the old RQ worker registration")
        except Exception as exc:  # noqa: BLE001 - its key expires on its own (worker_ttl)
            log.warning("worker %s: could not retire the old registration: %s", self.name, exc)
        self.worker = SimpleWorker(list(queueing.QUEUES), connection=self.r, name=self.name, worker_ttl=20)
        self.worker._install_signal_handlers = self._install  # type: ignore[method-assign]
