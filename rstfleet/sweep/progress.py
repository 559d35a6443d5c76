"""Live progress on stderr for a person at a terminal: done / failed / running, time left.

Only when stderr is a TTY and not --quiet; pipelines and CI logs get no progress noise. One line,
redrawn at most every REDRAW_S: at 10,000 hosts the results come in bursts of hundreds, and a
redraw per result would flood the terminal with writes nobody can read.

    4,210/10,000 done, 12 failed, 5,790 running, 3 s left in the window
"""

from __future__ import annotations

import sys
import threading
import time

from ..results import Status, HostResult

REDRAW_S = 0.2


class Progress:
    def __init__(self, total: int, window_s: float, stream=None):
        self.total = total
        self.window_s = window_s
        self.stream = stream or sys.stderr
        self.done = self.failed = 0
        self.started = time.monotonic()
        self._drawn_at = 0.0
        self._width = 0
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
            due = self.done == self.total or time.monotonic() - self._drawn_at >= REDRAW_S
        if due:
            self._draw()

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            self._draw()

    def line(self) -> str:
        """The progress line as it reads now (no carriage return, no padding)."""
        left = max(0.0, self.window_s - (time.monotonic() - self.started))
        with self._lock:
            running = self.total - self.done
            return (f"{self.done:,}/{self.total:,} done, {self.failed:,} failed, {running:,} running"
                    + (f", {left:.0f} s left in the window" if left and running else ""))

    def _draw(self) -> None:
        text = self.line()
        with self._lock:
            self._drawn_at = time.monotonic()
            pad, self._width = max(0, self._width - len(text)), max(self._width, len(text))
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()

    def close(self) -> None:
        self._stop.set()
        self.stream.write("\r" + " " * self._width + "\r")
        self.stream.flush()
