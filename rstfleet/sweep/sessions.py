"""How many SSH sessions this orchestrator can hold open at once: file descriptors, memory, threads.

The pool keeps every reached host's session open until its window ends, so that every window can
overlap a common instant; what bounds a fleet in one window is therefore what a held session
costs here, not `--forks` (which only bounds handshakes in flight). Measured on the lab with 500
hosts (paramiko, as rstfleet uses it; bench/window_bench.py): a connected session costs 1
descriptor (its socket; a ProxyCommand adds its pipes), 1 thread (paramiko's reader) and 58 KB of
RSS; 88 KB with its probe running, and a second thread. Counted per host from what its transport
says it costs (``Transports.session_cost``: 1 descriptor over SSH, 3 for a ProxyCommand's or a
local host's pipes; paramiko's reader thread, none on the asyncssh loop) plus the session's own
thread, and SESSION_MEMORY_BYTES (256 KB) a session — plus, when probes capture, the output cap
each session may be reading into at once. Without a transport that says (tests' fakes): 3
descriptors and 2 threads a session.

Within these limits a fleet is never split. Past them it is swept in successive window groups of
``SessionLimit.sessions`` hosts, and the reason is stated in the report.
"""

from __future__ import annotations

import logging
import math
import os
import resource
from dataclasses import dataclass
from pathlib import Path

from ..probe.host.limits import SESSION_MEMORY_BYTES

log = logging.getLogger("rstfleet.orchestrator")

FDS_PER_SESSION = 3       # the SSH socket, or a ProxyCommand's three pipes; local: three pipes
FDS_RESERVED = 64         # stdio, logging, imports, known_hosts/key reads, the report file
THREADS_PER_SESSION = 2   # paramiko's transport reader + the session's own thread
THREADS_RESERVED = 256    # handshake workers, closers, the rest of the machine's share
MEMORY_SHARE = 0.5        # of what this machine (or cgroup) still has available


@dataclass(frozen=True)
class SessionLimit:
    sessions: int          # sessions this run may hold at once
    reason: str            # what bounds it, in words ("open-file limit 1024 (ulimit -n)")


@dataclass(frozen=True)
class SessionCost:
    """What one held session costs on average over the fleet."""
    descriptors: float = FDS_PER_SESSION
    threads: float = THREADS_PER_SESSION


def fleet_session_cost(hosts: list, transport_for) -> SessionCost:
    """The average cost of a session to these hosts, from ``transport_for.session_cost(host)``
    when the transports say it (transport/__init__.py), plus the session's own thread."""
    cost_of = getattr(transport_for, "session_cost", None)
    if cost_of is None or not hosts:
        return SessionCost()
    try:
        costs = [cost_of(host) for host in hosts]
    except Exception:                                  # noqa: BLE001 - a guess is better than no sweep
        log.debug("session cost unknown; counting %d descriptors a session", FDS_PER_SESSION, exc_info=True)
        return SessionCost()
    return SessionCost(sum(c[0] for c in costs) / len(costs), 1 + sum(c[1] for c in costs) / len(costs))


def _fd_room(wanted: int, per_session: float = FDS_PER_SESSION) -> tuple[int | None, str]:
    """Raise the soft RLIMIT_NOFILE toward the hard limit if needed; sessions it then allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = FDS_RESERVED + math.ceil(per_session * wanted)
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(hard, need)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return None, ""
    return max(1, int((soft - FDS_RESERVED) / per_session)), f"open-file limit {soft} (raise it: ulimit -n)"


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().split()[0]
    except (OSError, IndexError):
        return None
    return int(text) if text.isdigit() else None


def _cgroup_memory_left(proc: str = "/proc") -> int | None:
    """Bytes left under this process's cgroup memory limit (v2 or v1), None when unlimited."""
    try:
        lines = Path(f"{proc}/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":                                   # v2
            limit, used = f"/sys/fs/cgroup{path}/memory.max", f"/sys/fs/cgroup{path}/memory.current"
        elif "memory" in controllers.split(","):                # v1
            limit = f"/sys/fs/cgroup/memory{path}/memory.limit_in_bytes"
            used = f"/sys/fs/cgroup/memory{path}/memory.usage_in_bytes"
        else:
            continue
        cap, current = _read_int(limit), _read_int(used)
        if cap is not None and current is not None and cap < 2 ** 60:
            return max(0, cap - current)
    return None


def _memory_room(proc: str = "/proc", per_session: int = SESSION_MEMORY_BYTES) -> tuple[int | None, str]:
    available = None
    try:
        for line in Path(f"{proc}/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    cgroup = _cgroup_memory_left(proc)
    if cgroup is not None and (available is None or cgroup < available):
        available = cgroup
    if available is None:
        return None, ""
    sessions = int(available * MEMORY_SHARE) // per_session
    return max(1, sessions), (f"memory: {available // 2 ** 20} MB available, half of it at "
                              f"{per_session // 1024} KB a session")


def _thread_room(proc: str = "/proc", per_session: float = THREADS_PER_SESSION) -> tuple[int | None, str]:
    """Threads this machine can still start: threads-max (and the cgroup's pids.max) less what
    runs now (RLIMIT_NPROC counts the user's tasks; root is exempt from it)."""
    rooms = []
    threads_max = _read_int(f"{proc}/sys/kernel/threads-max")
    try:
        running = int(Path(f"{proc}/loadavg").read_text().split()[3].split("/")[1])
    except (OSError, ValueError, IndexError):
        running = 0
    if threads_max:
        rooms.append((threads_max - running, f"kernel.threads-max {threads_max}"))
    nproc, _ = resource.getrlimit(resource.RLIMIT_NPROC)
    if nproc != resource.RLIM_INFINITY and os.geteuid() != 0:
        rooms.append((nproc - running, f"user process limit {nproc} (ulimit -u)"))
    if not rooms:
        return None, ""
    room, why = min(rooms)
    return max(1, int((room - THREADS_RESERVED) / per_session)), why


def session_limit(wanted: int, proc: str = "/proc", output_bytes: int = 0,
                  cost: SessionCost = SessionCost(), ceiling: tuple[int, str] | None = None) -> SessionLimit:
    """How many of ``wanted`` sessions this run can hold at once, and what bounds it;
    ``output_bytes``: what each session may be reading into at once besides (a capture);
    ``ceiling``: the engine's own bound (Transports.session_ceiling)."""
    memory = _memory_room(proc, SESSION_MEMORY_BYTES + output_bytes)
    rooms = (_fd_room(wanted, cost.descriptors), memory, _thread_room(proc, cost.threads), ceiling or (None, ""))
    bounds = [(n, why) for n, why in rooms if n is not None]
    if not bounds:
        return SessionLimit(wanted, "")
    allowed, why = min(bounds)
    if allowed < wanted:
        log.warning("%s allows %d sessions at once, not %d: the fleet is swept in %d window groups",
                    why, allowed, wanted, -(-wanted // allowed))
    return SessionLimit(min(wanted, allowed), why)
