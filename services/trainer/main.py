"""The trainer service: ``python -m services.trainer.main``.

Main thread: the RQ worker (queues high, default, low). Side threads: the inbox watcher, the control-file
watcher, the jobs projection, the checkpoint-retention consumer (group ``trainer`` on REGISTRY) and the
orphan reaper.

Every Redis client here is patient (``services.trainer.resilient``): a Redis restart makes the training step
wait, the side loops restart with backoff, the RQ loop is restarted if it quits; nothing is lost.
"""

from __future__ import annotations

import logging
import threading

import redis

from services.trainer import resilient
from services.trainer.controlfiles import ControlFileWatcher
from services.trainer.handlers import RetentionHandlers
from services.trainer.inbox import InboxWatcher
from services.trainer.projection import JobsProjection
from services.trainer.recipe import TRAINING_HERE, worker_name
from services.trainer.worker import OrphanReaper, TrainerWorker
from shared import streams
from shared.bus import Consumer, ConsumerConfig
from shared.projection import ProjectionRunner
from shared.runtime import Loop, connect_redis, setup_logging, warn_about_replica
from shared.settings import TrainerSettings, load
from shared.storage import s3_client

log = logging.getLogger(__name__)


def _thread(loop: Loop, name: str, stopping: threading.Event) -> threading.Thread:
    """Run a side loop in a daemon thread; a crash (Redis gone, say) restarts it with backoff."""

    def run() -> None:
        delay = 1.0
        while not stopping.is_set():
            try:
                loop.run()
                return
            except Exception:  # noqa: BLE001 - a side loop must not take the worker down, nor stay down
                log.exception("loop %s crashed; restarting in %.0f s", name, delay)
                stopping.wait(delay)
                delay = min(delay * 2, 30.0)

    t = threading.Thread(target=run, name=name, daemon=True)
    t.start()
    return t


class _StopAll:
    """Stops the side loops and ends their restart guards (handed to the worker as one more loop)."""

    def __init__(self, stopping: threading.Event) -> None:
        self.stopping = stopping

    def run(self) -> None:
        self.stopping.wait()

    def stop(self) -> None:
        self.stopping.set()


def main() -> None:
    settings = load(TrainerSettings)
    setup_logging("trainer", settings.log_level)
    warn_about_replica("trainer", settings)
    connect_redis(settings.redis_url)  # wait (with backoff) until Redis answers at all
    resilient.set_patience(resilient.WORKER_PATIENCE_S)  # from here on, ride out Redis restarts

    def client() -> redis.Redis:
        return resilient.patient_client(settings.redis_url)

    r = client()
    s3 = s3_client(settings)
    name = worker_name(settings)
    settings.inbox_dir.mkdir(parents=True, exist_ok=True)
    settings.control_dir.mkdir(parents=True, exist_ok=True)
    retention = RetentionHandlers(client(), settings.keep_local_checkpoints)
    loops: dict[str, Loop] = {
        "inbox": InboxWatcher(settings, client(), s3),
        "control": ControlFileWatcher(settings, client()),
        "projection": ProjectionRunner(client(), JobsProjection()),
        "retention": Consumer(client(),
                              ConsumerConfig(group=streams.GROUP_TRAINER, consumer=name, streams=(streams.REGISTRY,)),
                              retention.handlers()),
        "reaper": OrphanReaper(client(), training_here=lambda: set(TRAINING_HERE)),
    }
    stopping = threading.Event()
    for loop_name, loop in loops.items():
        _thread(loop, f"trainer-{loop_name}", stopping)
    worker = TrainerWorker(r, name, [*loops.values(), _StopAll(stopping)])
    log.info("trainer %s: worker on queues high, default, low", name)
    try:
        worker.run()
    finally:
        stopping.set()
        for loop in loops.values():
            loop.stop()
        log.info("trainer %s stopped", name)


if __name__ == "__main__":
    main()
