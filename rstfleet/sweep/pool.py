"""Fan the probe out to many hosts: a bounded pool, per-host deadlines, one result per host, always.

Each host costs a worker only while it is being reached and probed. Nothing in one host's path can
take the others down or hang the run:
  * any exception in a host's path (making its transport, running, classifying, closing), of any
    kind, BaseException included, becomes that host's result with its reason;
  * a host still unfinished after its budget plus STUCK_THREAD_GRACE_S is abandoned as `timeout`,
    its session closed behind it, and a fresh worker takes its place, so the pool keeps its width;
  * a whole-run deadline backs both: ``run_deadline_s`` = ceil(hosts / forks) waves of (host budget
    + grace) — with forks >= hosts, the longest host budget + grace. Past it every unfinished host
    is `timeout` and sweep() returns, whatever threads are stuck (workers are daemon threads).
Ctrl-C (an Interrupt, see interrupt.py) stops new work; probes that capture are asked to finish
early and get up to STOP_EARLY_WAIT_S to send the packets so far; the rest become `cancelled`.
"""

from __future__ import annotations

import logging
import math
import resource
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

from ..inventory import Host
from ..probe.host.limits import CONNECT_TIMEOUT_S, FORKS, PROBE_MARGIN_S, STOP_EARLY_WAIT_S, WINDOW_S
from ..results import PROBE_KIND, HostResult, Status
from ..textsafe import printable
from ..transport import DEFAULT_MAX_OUTPUT, Transport, TransportError
from .interrupt import Interrupt
from .probe_run import ask_to_finish_early, run_probe

log = logging.getLogger("rstfleet.orchestrator")

STUCK_THREAD_GRACE_S = 5.0
WAIT_SLICE_S = 0.2        # how often the pool looks at Ctrl-C and overdue hosts
CLOSE_WAIT_S = 1.0        # on Ctrl-C, how long sessions get to close before sweep() returns
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
    host_probe: str = "python-or-shell"   # or "python", or "shell" (probe/shell.py: counters only)
    document_kind: str = PROBE_KIND       # the document the probe must print ("rstfleet-check": --check)

    @property
    def host_budget_s(self) -> float:
        """A host's whole deadline: connect + window + lead (exact baseline, agent) + margin."""
        return self.connect_timeout_s + self.window_s + self.lead_s + self.margin_s

    @property
    def finishes_early_on_interrupt(self) -> bool:
        """Captures are worth keeping: on Ctrl-C their probes are asked to finish early."""
        return "--capture" in self.probe_options


def run_deadline_s(hosts: int, forks: int, settings: SweepSettings) -> float:
    """The whole run's bound: each host ends or is abandoned within its budget + grace and the
    pool keeps ``forks`` workers, so ceil(hosts / forks) such waves bound the run."""
    return max(1, math.ceil(hosts / max(1, forks))) * (settings.host_budget_s + STUCK_THREAD_GRACE_S)


def internal_error(host: Host, exc: BaseException, elapsed_s: float = 0.0) -> HostResult:
    """A bug or an unforeseen library error, of any kind, as this host's result (the reason says
    what; the traceback is logged with -v, not printed once per host)."""
    log.debug("unexpected error on %s", host.name, exc_info=(type(exc), exc, exc.__traceback__))
    return HostResult(host.name, host.address, Status.PROBE_ERROR,
                      printable(f"internal error: {type(exc).__name__}: {exc}"), None, elapsed_s, host.groups)


def probe_host(host: Host, transport: Transport, settings: SweepSettings,
               run_id: str | None = None) -> HostResult:
    """Run the probe on one reached host and say what happened; never raises."""
    started = time.monotonic()
    try:
        status, reason, probe = run_probe(host, transport, settings, started + settings.host_budget_s,
                                          run_id)
    except TransportError as exc:
        status, reason, probe = exc.status, printable(exc.reason, 400), None
    except BaseException as exc:  # noqa: B902 - nothing in one host's path may sink the sweep
        return internal_error(host, exc, time.monotonic() - started)
    log.debug("%s: %s %s", host.name, status, reason)
    return HostResult(host.name, host.address, status, reason, probe,
                      time.monotonic() - started, host.groups)


def _in_background(function: Callable[[], None], name: str) -> threading.Thread | None:
    try:
        thread = threading.Thread(target=function, name=name, daemon=True)
        thread.start()
        return thread
    except RuntimeError:          # no thread left: the caller goes on without it
        log.warning("could not start a %s thread", name)
        return None


def _close_quietly(transport: Transport) -> None:
    try:
        transport.close()
    except BaseException:  # noqa: B902 - closing is best effort
        log.debug("closing a session failed", exc_info=True)


class _Fanout:
    """One sweep's state; see the module docstring for the guarantees."""

    def __init__(self, hosts: list[Host], transport_for: Callable[[Host], Transport],
                 settings: SweepSettings, on_result: Callable[[HostResult], None] | None,
                 interrupt: Interrupt):
        self.hosts, self.transport_for, self.settings = list(hosts), transport_for, settings
        self.on_result, self.interrupt = on_result, interrupt
        self.pending = deque(range(len(self.hosts)))
        self.results: dict[int, HostResult] = {}
        self.measured: dict[int, HostResult] = {}   # results whose session is still closing
        self.running: dict[int, float] = {}        # started, no result yet: index -> start time
        self.active: dict[int, Transport] = {}
        self.cond = threading.Condition()
        self.stopping = threading.Event()
        self.run_id = secrets.token_hex(8) if settings.finishes_early_on_interrupt else None
        self.forks = max(1, min(forks_within_fd_limit(settings.forks), len(self.hosts)))
        self.overdue_after = settings.host_budget_s + STUCK_THREAD_GRACE_S
        self.deadline_s = run_deadline_s(len(self.hosts), self.forks, settings)

    # --- workers ---------------------------------------------------------------------------------

    def record(self, index: int, result: HostResult) -> None:
        """The first result of a host wins; later ones (a stuck thread waking up) are dropped."""
        if self.stopping.is_set() and result.status != Status.OK:
            # The session was closed by our own Ctrl-C handling, not by the host.
            result = self.cancelled(index, result.elapsed_s)
        elif self.interrupt.is_set() and result.probe and result.probe["window"].get("stopped_early"):
            window = result.probe["window"]
            result.probe.setdefault("notes", []).append(
                f"interrupted (Ctrl-C) after {window['measured_s']:.1f} s of the "
                f"{window.get('requested_s') or 0:g} s window: what was measured so far is kept")
        with self.cond:
            if index in self.results:
                return
            self.results[index] = result
            self.running.pop(index, None)
            self.cond.notify_all()
        if self.on_result:
            try:
                self.on_result(result)
            except BaseException:  # noqa: B902 - progress display must not lose a host
                log.debug("on_result failed", exc_info=True)

    def reach_and_probe(self, index: int) -> HostResult:
        host = self.hosts[index]
        try:
            transport = self.transport_for(host)
        except TransportError as exc:
            return HostResult(host.name, host.address, exc.status, printable(exc.reason), None, 0.0, host.groups)
        except BaseException as exc:  # noqa: B902 - e.g. a bad ~/.ssh/config line: this host's result
            return internal_error(host, exc)
        with self.cond:
            self.active[index] = transport
        result = probe_host(host, transport, self.settings, self.run_id)
        with self.cond:
            self.measured[index] = result     # kept even if close() below hangs
        _close_quietly(transport)
        with self.cond:
            self.active.pop(index, None)
        return result

    def worker(self) -> None:
        while not self.stopping.is_set():
            with self.cond:
                if not self.pending:
                    return
                index = self.pending.popleft()
                self.running[index] = time.monotonic()
            try:
                result = self.reach_and_probe(index)
            except BaseException as exc:  # noqa: B902 - no worker dies silently
                result = internal_error(self.hosts[index], exc)
            self.record(index, result)

    def add_workers(self, count: int) -> None:
        started = sum(_in_background(self.worker, "rstfleet-worker") is not None for _ in range(count))
        if started == 0 and not self.active:
            with self.cond:
                for index in list(self.pending):
                    self.results.setdefault(index, internal_error(
                        self.hosts[index], RuntimeError("no worker thread could be started")))
                self.pending.clear()

    # --- the main thread: overdue hosts, the whole-run deadline, Ctrl-C --------------------------

    def cancelled(self, index: int, elapsed_s: float = 0.0) -> HostResult:
        host = self.hosts[index]
        return HostResult(host.name, host.address, Status.CANCELLED,
                          "run interrupted (Ctrl-C) before this host finished", None, elapsed_s, host.groups)

    def give_up_on(self, index: int, now: float, reason: str) -> None:
        """Caller holds cond. A measured host whose session would not close keeps its result."""
        host = self.hosts[index]
        result = self.measured.get(index) or HostResult(
            host.name, host.address, Status.TIMEOUT, reason, None,
            now - self.running.get(index, now), host.groups)
        self.results[index] = result
        self.running.pop(index, None)
        transport = self.active.pop(index, None)
        if transport is not None:     # the remote probe sees its session go and stops itself
            _in_background(lambda: _close_quietly(transport), "rstfleet-close")

    def watch(self) -> None:
        """Until every host has a result, Ctrl-C, or the whole-run deadline."""
        began = time.monotonic()
        while True:
            with self.cond:
                now = time.monotonic()
                if len(self.results) == len(self.hosts) or self.interrupt.is_set():
                    return
                overdue = [i for i, t in self.running.items() if now - t > self.overdue_after]
                for index in overdue:
                    self.give_up_on(index, now, f"no result within {self.overdue_after:.0f} s "
                                                f"(budget + grace); abandoned")
                if now - began > self.deadline_s:
                    self.stopping.set()
                    for index in range(len(self.hosts)):
                        if index not in self.results:
                            self.give_up_on(index, now, f"no result within the whole run's bound of "
                                                        f"{self.deadline_s:.0f} s; abandoned")
                    return
                waits = [t + self.overdue_after - now for t in self.running.values()]
                self.cond.wait(max(0.01, min([WAIT_SLICE_S, began + self.deadline_s - now] + waits)))
            if overdue and self.pending and not self.stopping.is_set():
                self.add_workers(len(overdue))     # stuck threads do not narrow the pool

    def stop(self) -> None:
        """Ctrl-C: no new hosts; capturing probes asked to finish early; the rest cancelled."""
        self.stopping.set()
        with self.cond:
            running = list(self.running)
        try:
            if self.run_id and running and not self.interrupt.insistent:
                end = time.monotonic() + STOP_EARLY_WAIT_S
                for index in running:
                    host = self.hosts[index]
                    _in_background(lambda host=host: ask_to_finish_early(
                        host, self.transport_for, self.run_id, self.settings, end), "rstfleet-stop")
                with self.cond:
                    while (any(i not in self.results for i in running) and not self.interrupt.insistent
                           and time.monotonic() < end):
                        self.cond.wait(min(WAIT_SLICE_S, max(0.01, end - time.monotonic())))
        except KeyboardInterrupt:
            self.interrupt.press()
        with self.cond:
            for index in range(len(self.hosts)):
                measured = self.measured.get(index)      # measured; its session was still closing
                self.results.setdefault(index, measured if measured and measured.checked else self.cancelled(index))
            sessions = list(self.active.values())
            self.active.clear()
        closers = [_in_background(lambda t=t: _close_quietly(t), "rstfleet-close") for t in sessions]
        end = time.monotonic() + CLOSE_WAIT_S
        for thread in closers:
            if thread is not None:
                thread.join(max(0.0, end - time.monotonic()))

    def run(self) -> list[HostResult]:
        try:
            if not self.interrupt.is_set():
                self.add_workers(self.forks)
            self.watch()
        except KeyboardInterrupt:     # no Interrupt handler installed (library use): the same path
            self.interrupt.press()
        if self.interrupt.is_set():
            self.stop()
        return [self.results[i] for i in range(len(self.hosts))]


def sweep(hosts: list[Host], transport_for: Callable[[Host], Transport], settings: SweepSettings,
          on_result: Callable[[HostResult], None] | None = None,
          interrupt: Interrupt | None = None) -> list[HostResult]:
    """Probe every host with at most settings.forks at once; one result per host, in inventory
    order, within ``run_deadline_s``; ``interrupt`` (Ctrl-C) ends it early (module docstring)."""
    if not hosts:
        return []
    return _Fanout(hosts, transport_for, settings, on_result, interrupt or Interrupt()).run()
