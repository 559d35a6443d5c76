"""Processes of network namespaces, seen from /proc: who lives in which namespace, and stopping them.

Shared by the lab (tear-down) and the tests (nothing of rstfleet left running on a lab host).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path


def process_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (pid 1 here may not reap)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def namespace_pids(namespaces: list[str]) -> dict[str, list[int]]:
    """Like ``ip netns pids NS`` for many namespaces at once: one pass over /proc."""
    inodes = {}
    for ns in namespaces:
        with contextlib.suppress(OSError):
            st = os.stat(f"/run/netns/{ns}")
            inodes[(st.st_dev, st.st_ino)] = ns
    found: dict[str, list[int]] = {ns: [] for ns in inodes.values()}
    if not inodes:
        return found
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                st = os.stat(f"/proc/{entry.name}/ns/net")
                if (st.st_dev, st.st_ino) in inodes:
                    found[inodes[(st.st_dev, st.st_ino)]].append(int(entry.name))
    return found


def kill_and_wait(pids: list[int], sig: int, timeout: float = 5.0) -> list[int]:
    """Signal ``pids``; SIGKILL what is left after ``timeout``; return pids still alive."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while (alive := [p for p in pids if _alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.02)
    if alive and sig != signal.SIGKILL:
        return kill_and_wait(alive, signal.SIGKILL, timeout)
    return alive
