"""The trainer service: ``python -m services.trainer.main``.

Main thread: the RQ worker (queues high, default, low). Side threads: the inbox watcher, the control-file
watcher, the jobs projection, the checkpoint-retention consumer (group ``trainer`` on REGISTRY) and the
orphan reaper.
"""

from __future__ import annotations

import logging
import threading

from services.trainer.controlfiles import ControlFileWatcher
from services.trainer.handlers import RetentionHandlers
from services.trainer.inbox import InboxWatcher
from services.trainer.projection import JobsProjection
from services.trainer.recipe import worker_name
from services.trainer.worker import OrphanReaper, TrainerWorker
from shared import streams
from shared.bus import Consumer, ConsumerConfig
from shared.projection import ProjectionRunner
from shared.runtime import Loop, connect_redis, setup_logging
from shared.settings import TrainerSettings, load
from shared.storage import s3_client

log = logging.getLogger(__name__)


def _thread(loop: Loop, name: str) -> threading.Thread:
    def run() -> None:
        try:
            loop.run()
        except Exception:  # noqa: BLE001 - a side loop must not take the worker down
            log.exception("loop %s crashed", name)

    t = threading.Thread(target=run, name=name, daemon=True)
    t.start()
    return t


def main() -> None:
    settings = load(TrainerSettings)
    setup_logging("trainer", settings.log_level)
    r = connect_redis(settings.redis_url)
    s3 = s3_client(settings)
    name = worker_name(settings)
    settings.inbox_dir.mkdir(parents=True, exist_ok=True)
    settings.control_dir.mkdir(parents=True, exist_ok=True)
    retention = RetentionHandlers(connect_redis(settings.redis_url), settings.keep_local_checkpoints)
    loops: dict[str, Loop] = {
        "inbox": InboxWatcher(settings, connect_redis(settings.redis_url), s3),
        "control": ControlFileWatcher(settings, connect_redis(settings.redis_url)),
        "projection": ProjectionRunner(connect_redis(settings.redis_url), JobsProjection()),
        "retention": Consumer(connect_redis(settings.redis_url),
                              ConsumerConfig(group=streams.GROUP_TRAINER, consumer=name, streams=(streams.REGISTRY,)),
                              retention.handlers()),
        "reaper": OrphanReaper(connect_redis(settings.redis_url)),
    }
    for loop_name, loop in loops.items():
        _thread(loop, f"trainer-{loop_name}")
    worker = TrainerWorker(r, name, list(loops.values()))
    log.info("trainer %s: worker on queues high, default, low", name)
    try:
        worker.run()
    finally:
        for loop in loops.values():
            loop.stop()
        log.info("trainer %s stopped", name)


if __name__ == "__main__":
    main()
