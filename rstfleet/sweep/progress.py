"""Live progress on stderr for a person at a terminal: done / failed / running, time left.

Only when stderr is a TTY and not --quiet; pipelines and CI logs get no progress noise.
"""

from __future__ import annotations

import sys
import threading
import time

from ..results import Status, HostResult


class Progress:
    def __init__(self, total: int, window_s: float, stream=None):
        self.total = total
        self.window_s = window_s
        self.stream = stream or sys.stderr
        self.done = self.failed = 0
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="rstfleet-progress", daemon=True)

    @classmethod
    def for_terminal(cls, total: int, window_s: float, quiet: bool) -> "Progress | None":
        return None if quiet or not sys.stderr.isatty() else cls(total, window_s)

    def start(self) -> "Progress":
        self._ticker.start()
        return self

    def on_result(self, result: HostResult) -> None:
        with self._lock:
            self.done += 1
            self.failed += result.status != Status.OK
        self._draw()

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            self._draw()

    def _draw(self) -> None:
        left = max(0.0, self.window_s - (time.monotonic() - self.started))
        with self._lock:
            running = self.total - self.done
            line = (f"\r{self.done}/{self.total} done, {self.failed} failed, {running} running"
                    + (f", {left:.0f} s left in the window" if left and running else "") + "   ")
        self.stream.write(line)
        self.stream.flush()

    def close(self) -> None:
        self._stop.set()
        self.stream.write("\r" + " " * 70 + "\r")
        self.stream.flush()
