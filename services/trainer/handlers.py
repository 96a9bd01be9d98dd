"""Reactions to other services' events: checkpoint retention after the registry confirmed a version.

On ``version.stored`` of kind adapter, the checkpoint it came from (``checkpoint_event_id``) is confirmed if
the version holds every local file with the same sha256 and size; only then does the local retention
policy (``TrainerSettings.keep_local_checkpoints``) may delete it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import redis

from services.trainer import checkpoints
from shared import streams
from shared.events import Event

log = logging.getLogger(__name__)

CHECKPOINTS_KEY = streams.key("trainer", "checkpoints")  # checkpoint event id -> {dir, files, step}
CONFIRMED_KEY = streams.key("trainer", "confirmed")  # set of confirmed local checkpoint dirs


def confirmed_dirs(r: redis.Redis) -> set[str]:
    return {d.decode() for d in r.smembers(CONFIRMED_KEY)}


class RetentionHandlers:
    def __init__(self, r: redis.Redis, keep: int) -> None:
        self.r = r
        self.keep = keep

    def on_version_stored(self, event: Event) -> None:
        p = event.payload
        if p.get("kind") not in ("adapter", "full") or not p.get("checkpoint_event_id"):
            return
        raw = self.r.hget(CHECKPOINTS_KEY, p["checkpoint_event_id"])
        if raw is None:
            return  # not a checkpoint of this trainer
        ckpt = json.loads(raw)
        if not checkpoints.matches(ckpt["files"], p.get("files", [])):
            log.warning("version %s does not match local checkpoint %s: keeping it", p["version_id"], ckpt["dir"])
            return
        self.r.sadd(CONFIRMED_KEY, ckpt["dir"])
        checkpoints.prune(Path(ckpt["dir"]).parent, confirmed_dirs(self.r), self.keep)

    def handlers(self) -> dict:
        return {"version.stored": self.on_version_stored}
