"""Ctrl-C as a request the run answers, not an exception that lands anywhere.

A KeyboardInterrupt raised at a random bytecode can fall inside a lock, a `finally` or half a
report file. During a run, Ctrl-C instead sets an ``Interrupt`` that every stage checks at its own
safe points:

    1st press   stop starting hosts; probes that capture are asked to finish early and get up to
                STOP_EARLY_WAIT_S to send what they hold; unfinished hosts become `cancelled`;
                the reports are written whole, marked partial; exit 130
    2nd press   stop waiting for those probes: cancel them now, still write the reports
    3rd press   KeyboardInterrupt, for when something blocks (a report to a stalled pipe): the run
                leaves at once, without a report
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

LEAVE_AT_ONCE_PRESSES = 3


class Interrupt:
    """How many times Ctrl-C was pressed; thread-safe to read."""

    def __init__(self) -> None:
        self._pressed = threading.Event()
        self.presses = 0

    def press(self) -> None:
        self.presses += 1
        self._pressed.set()

    def is_set(self) -> bool:
        return self._pressed.is_set()

    @property
    def insistent(self) -> bool:
        """Pressed again: do not wait for anything more."""
        return self.presses >= 2


@contextmanager
def ctrl_c() -> Iterator[Interrupt]:
    """SIGINT presses the Interrupt while the block runs. Left alone where Python cannot catch it
    (not the main thread) or where it is ignored (a background job: the shell's choice)."""
    interrupt = Interrupt()
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is signal.SIG_IGN):
        yield interrupt
        return

    def on_sigint(signum, frame) -> None:
        interrupt.press()
        if interrupt.presses >= LEAVE_AT_ONCE_PRESSES:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield interrupt
    finally:
        signal.signal(signal.SIGINT, previous)
