"""Upload progress of a version as events: ``version.upload_progress`` on REGISTRY, throttled.

The first event goes out once an upload has run for ``every_s`` seconds, then at most one per ``every_s``,
and a last one at 100 % if any went out: a small adapter that uploads in a blink adds nothing to the stream,
a 1.2 GB full checkpoint shows its bytes moving on the Models page.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from services.registry.context import Registry
from shared.events import Event, VersionUploadProgress


class UploadReporter:
    """A ``FileProgress`` (path, bytes more done) for ``store_version`` that publishes throttled events."""

    def __init__(self, reg: Registry, version_id: str, bytes_total: int, *, cause: Event | None = None,
                 every_s: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.reg = reg
        self.version_id = version_id
        self.bytes_total = bytes_total
        self.bytes_done = 0
        self.cause = cause
        self.every_s = reg.settings.upload_progress_s if every_s is None else every_s
        self.clock = clock
        self.last = clock()
        self.sent = 0  # events published

    def __call__(self, path: str, n: int) -> None:
        self.bytes_done = min(self.bytes_total, self.bytes_done + n)
        now = self.clock()
        if now - self.last >= self.every_s or (self.sent and self.bytes_done == self.bytes_total):
            self.last = now
            self._emit(path)

    def _emit(self, path: str) -> None:
        payload = VersionUploadProgress(
            version_id=self.version_id, bytes_done=self.bytes_done, bytes_total=self.bytes_total, path=path,
            checkpoint_event_id=self.cause.id if self.cause and self.cause.type == "checkpoint.saved" else None)
        self.reg.emit("version.upload_progress", payload, cause=self.cause)
        self.sent += 1
