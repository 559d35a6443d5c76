"""Fan the probe out to many hosts: a bounded pool, per-host deadlines, one result per host, always.

Each host costs a worker only while it is being reached and probed; a host that hangs past its
deadline (plus a grace for a stuck thread) gets a `timeout` result and never delays the others.
Ctrl-C stops new work, closes open sessions and marks unfinished hosts `cancelled`.
"""

from __future__ import annotations

import logging
import resource
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

from ..inventory import Host
from ..probe import probe_argv, probe_script_for
from ..probe.host.limits import CONNECT_TIMEOUT_S, FORKS, PROBE_MARGIN_S, WINDOW_S
from ..results import Status, HostResult, ProbeOutputError, parse_probe_output
from ..textsafe import last_line, printable
from ..transport import DEFAULT_MAX_OUTPUT, RunResult, Transport, TransportError

log = logging.getLogger("rstfleet.orchestrator")

STUCK_THREAD_GRACE_S = 5.0
FDS_PER_HOST = 3          # an SSH socket plus transient key/known_hosts reads; local: 3 pipes
FDS_RESERVED = 64         # stdio, logging, imports, the report file


def forks_within_fd_limit(forks: int) -> int:
    """Raise the soft RLIMIT_NOFILE toward the hard limit if needed, then bound the pool by it,
    so `ulimit -n 256` makes a big sweep slower, never a crash with EMFILE."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = FDS_RESERVED + FDS_PER_HOST * forks
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return forks
    allowed = max(1, (soft - FDS_RESERVED) // FDS_PER_HOST)
    if allowed < forks:
        log.warning("open-file limit %d allows %d hosts at once, not %d (raise it with ulimit -n)",
                    soft, allowed, forks)
    return min(forks, allowed)


@dataclass
class SweepSettings:
    window_s: float = WINDOW_S
    forks: int = FORKS
    connect_timeout_s: float = CONNECT_TIMEOUT_S
    margin_s: float = PROBE_MARGIN_S         # time allowed beyond the window for python start-up and reply
    max_output: int = DEFAULT_MAX_OUTPUT
    probe_options: tuple[str, ...] = ()   # e.g. ("--trace",), ("--capture", "60", "--owners", "auto")
    lead_s: float = 0.0                   # probe time besides the window (limits.probe_lead_s)

    @property
    def host_budget_s(self) -> float:
        """A host's whole deadline: connect + window + lead (exact baseline, agent) + margin."""
        return self.connect_timeout_s + self.window_s + self.lead_s + self.margin_s


def classify(run: RunResult, settings: SweepSettings) -> tuple[str, str, dict | None]:
    """Turn a finished command into (status, reason, probe document)."""
    stderr = run.stderr.decode("utf-8", "replace")
    if run.timed_out:
        return Status.TIMEOUT, (f"probe did not finish within its deadline "
                         f"({settings.host_budget_s:.0f} s); the host may be overloaded or hung"), None
    if run.truncated:
        return Status.PROBE_ERROR, (f"probe output exceeded {settings.max_output} bytes and was cut; "
                             f"raise --max-output if this host is trusted"), None
    if "sudo:" in stderr and run.exit_code not in (0, None):
        if "password is required" in stderr or "a terminal is required" in stderr:
            return Status.BECOME_FAILED, "sudo needs a password on this host: rerun with -K", None
        if "incorrect password" in stderr:
            return Status.BECOME_FAILED, "sudo rejected the become password given with -K", None
        return Status.BECOME_FAILED, f"sudo failed: {last_line(run.stderr)}", None
    if run.exit_code is None:
        return Status.UNREACHABLE, ("connection lost before the probe finished (the host went down or its "
                             "sshd was killed); check the host, then rerun"), None
    if run.exit_code == -1 and not stderr.strip():
        return Status.PROBE_ERROR, ("the probe was killed on the host before it finished (exit signal, "
                             "no exit status); check the host's OOM killer: dmesg | tail"), None
    if run.exit_code == 127 or ("python3" in stderr and "not found" in stderr):
        return Status.NO_PYTHON, ("python3 is not installed or not on PATH on this host "
                           "(Debian/Ubuntu: apt-get install python3-minimal)"), None
    if run.exit_code != 0:
        return Status.PROBE_ERROR, f"probe exited with {run.exit_code}: {last_line(run.stderr)}", None
    try:
        return Status.OK, "", parse_probe_output(run.stdout)
    except ProbeOutputError as exc:
        return Status.PROBE_ERROR, printable(str(exc)), None


def probe_host(host: Host, transport: Transport, settings: SweepSettings) -> HostResult:
    """Reach one host, run the probe, and say what happened; never raises."""
    started = time.monotonic()
    deadline = started + settings.host_budget_s
    try:
        run = transport.run(probe_argv(settings.window_s, list(settings.probe_options), host.python),
                            probe_script_for(settings.probe_options), deadline, settings.max_output)
        status, reason, probe = classify(run, settings)
    except TransportError as exc:
        status, reason, probe = exc.status, printable(exc.reason, 400), None
    except Exception as exc:  # a bug or an unforeseen library error must not sink the sweep
        log.exception("unexpected error on %s", host.name)
        status, reason, probe = Status.PROBE_ERROR, printable(f"internal error: {type(exc).__name__}: {exc}"), None
    finally:
        try:
            transport.close()
        except Exception:
            log.debug("closing %s failed", host.name, exc_info=True)
    log.debug("%s: %s %s", host.name, status, reason)
    return HostResult(host.name, host.address, status, reason, probe,
                      time.monotonic() - started, host.groups)


def sweep(hosts: list[Host], transport_for: Callable[[Host], Transport], settings: SweepSettings,
          on_result: Callable[[HostResult], None] | None = None) -> list[HostResult]:
    """Probe every host with at most settings.forks at once; results in inventory order."""
    pending = deque(hosts)
    results: dict[str, HostResult] = {}
    started: dict[str, float] = {}
    active: dict[str, Transport] = {}
    cond = threading.Condition()
    stopping = threading.Event()

    def record(result: HostResult) -> None:
        if stopping.is_set() and result.status != Status.OK:
            # The session was closed by our own Ctrl-C handling, not by the host.
            result = HostResult(result.host, result.address, Status.CANCELLED,
                                "run interrupted (Ctrl-C) before this host finished", None,
                                result.elapsed_s, result.groups)
        with cond:
            if result.host in results:
                return
            results[result.host] = result
            cond.notify_all()
        if on_result:
            on_result(result)

    def worker() -> None:
        while not stopping.is_set():
            with cond:
                if not pending:
                    return
                host = pending.popleft()
                started[host.name] = time.monotonic()
            try:
                transport = transport_for(host)
            except TransportError as exc:
                record(HostResult(host.name, host.address, exc.status, printable(exc.reason), None,
                                  0.0, host.groups))
                continue
            with cond:
                active[host.name] = transport
            result = probe_host(host, transport, settings)
            with cond:
                active.pop(host.name, None)
            record(result)

    for _ in range(max(1, min(forks_within_fd_limit(settings.forks), len(hosts)))):
        threading.Thread(target=worker, name="rstfleet-worker", daemon=True).start()

    overdue_after = settings.host_budget_s + STUCK_THREAD_GRACE_S
    try:
        with cond:
            while len(results) < len(hosts):
                now = time.monotonic()
                stuck = [name for name, t in started.items()
                         if name not in results and now - t > overdue_after]
                for name in stuck:
                    host = next(h for h in hosts if h.name == name)
                    results[name] = HostResult(name, host.address, Status.TIMEOUT,
                                               f"no result within {overdue_after:.0f} s; abandoned",
                                               None, now - started[name], host.groups)
                waits = [started[n] + overdue_after - now for n in started if n not in results]
                cond.wait(timeout=max(0.05, min(waits)) if waits else None)
    except KeyboardInterrupt:
        stopping.set()
        with cond:
            sessions = list(active.values())
            for host in hosts:
                results.setdefault(host.name, HostResult(
                    host.name, host.address, Status.CANCELLED,
                    "run interrupted (Ctrl-C) before this host finished", None, 0.0, host.groups))
        for transport in sessions:
            try:
                transport.close()
            except Exception:
                pass
    return [results[h.name] for h in hosts]
