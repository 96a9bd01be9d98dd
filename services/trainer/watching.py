"""The loop both file watchers run (inbox and control files): ``scan_once`` every ``interval()`` seconds
until ``stop()``, in the thread that calls ``run()``."""

from __future__ import annotations

import threading
from typing import Any


class Watcher:
    def __init__(self) -> None:
        self._stop = threading.Event()

    def interval(self) -> float:
        raise NotImplementedError

    def scan_once(self) -> Any:
        raise NotImplementedError

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        while not self._stop.is_set():
            self.scan_once()
            self._stop.wait(self.interval())
