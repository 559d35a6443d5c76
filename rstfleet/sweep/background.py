"""Threads the pool starts and the sessions it closes, none of which may sink a sweep.

A machine out of threads gets no new one (the caller goes on without it); closing a session is
best effort, and on Ctrl-C a few threads close them all, returning after a bound whatever hangs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Callable

from ..transport import Transport

log = logging.getLogger("rstfleet.orchestrator")
CLOSERS = 16              # threads closing sessions on Ctrl-C


def in_background(function: Callable[[], None], name: str) -> threading.Thread | None:
    try:
        thread = threading.Thread(target=function, name=name, daemon=True)
        thread.start()
        return thread
    except RuntimeError:          # no thread left: the caller goes on without it
        log.warning("could not start a %s thread", name)
        return None


def close_quietly(transport: Transport) -> None:
    try:
        transport.close()
    except BaseException:  # noqa: B902 - closing is best effort
        log.debug("closing a session failed", exc_info=True)


def close_all(transports: list[Transport], wait_s: float) -> None:
    """Close sessions with a few threads; return after ``wait_s`` whatever hangs."""
    queue = deque(transports)

    def closer() -> None:
        while True:
            try:
                transport = queue.popleft()
            except IndexError:
                return
            close_quietly(transport)
    threads = [in_background(closer, "rstfleet-close") for _ in range(min(CLOSERS, len(queue)))]
    end = time.monotonic() + wait_s
    for thread in threads:
        if thread is not None:
            thread.join(max(0.0, end - time.monotonic()))
