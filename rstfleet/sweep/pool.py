"""Fan the probe out to a fleet in one window: handshakes bounded by `--forks`, every reached
session held until one common start, one result per host, always.

Three phases (window.py says why): **reach** — at most ``forks`` handshakes (connect, host key,
authentication: Transport.connect) in flight, each reached host's session then held open by a
session thread, which over SSH starts the probe at once, to wait for its go; **start** — once the
handshakes are done (stragglers aside) a common start instant is chosen a short lead ahead and
every held session sends it as the go line (or, without start(), runs its probe with it:
`--start-at`), so the windows begin together; a host reached after it starts at once; **collect** — each document within
the host's budget from the start. Sessions held at once are bounded by descriptors, memory and threads
(sessions.py): within that bound a fleet is never split; past it, it is swept in successive window
groups and ``Sweep.split_reason`` says why.

Nothing in one host's path can take the others down or hang the run:
  * any exception in a host's path (making its transport, the handshake, running, classifying,
    closing), of any kind, BaseException included, becomes that host's result with its reason;
  * a host whose phase overruns its bound (handshake: ``handshake_budget_s``; probe: its
    ``host_budget_s`` from the start, probe_run.probe_deadline) plus STUCK_THREAD_GRACE_S is abandoned as `timeout`, its session closed behind
    it; a stuck handshake worker is replaced, so the handshakes keep their width;
  * a whole-run deadline backs both (``run_deadline_s``); past it every unfinished host is
    `timeout` and sweep() returns, whatever threads are stuck (all are daemon threads).
Ctrl-C (an Interrupt, see interrupt.py) stops new work; probes that capture are asked to finish
early and get up to STOP_EARLY_WAIT_S to send the packets so far; the rest become `cancelled`.
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from collections import deque
from typing import Callable

from ..inventory import Host
from ..probe.host.limits import GO_AT_CONNECT_MAX, START_LEAD_MAX_S, STOP_EARLY_WAIT_S
from ..results import HostResult, Status
from ..textsafe import printable
from ..transport import Transport, TransportError, can_start
from .background import close_all as _close_all
from .background import close_quietly as _close_quietly
from .background import in_background as _in_background
from .interrupt import Interrupt
from .probe_run import ask_to_finish_early, internal_error, prepare_payloads, probe_deadline, probe_host
from .sessions import fleet_session_cost, session_limit
from .settings import Sweep, SweepSettings
from .window import StartInstant, go_lead_s, only_stragglers_left, start_lead_s

log = logging.getLogger("rstfleet.orchestrator")

STUCK_THREAD_GRACE_S = 5.0
WAIT_SLICE_S = 0.2        # how often the pool looks at Ctrl-C, overdue hosts and stragglers
ENDED_POLL_S = (0.05, 5.0)  # a probe waiting for its go is looked at this often, doubling: one that
                            # ended (no python3) is collected at once; 10,000 waiting cost little
CLOSE_WAIT_S = 1.0        # on Ctrl-C, how long sessions get to close before sweep() returns


def run_deadline_s(hosts: int, forks: int, settings: SweepSettings) -> float:
    """The whole run's bound: per window group, ceil(group / forks) waves of handshakes (each
    ends or is abandoned within its budget + grace), the lead, then a host's budget + grace."""
    group = min(hosts, settings.sessions or hosts) or 1
    ramp = math.ceil(group / max(1, forks)) * (settings.handshake_budget_s + STUCK_THREAD_GRACE_S)
    lead = min(START_LEAD_MAX_S, settings.window_s / 2) if settings.aligned else 0.0
    probe = lead + settings.host_budget_s + STUCK_THREAD_GRACE_S
    return math.ceil(max(1, hosts) / group) * (ramp + probe)


class _WindowGroup:
    """One window group's state (normally the whole fleet); see the module docstring."""

    def __init__(self, hosts: list[Host], transport_for: Callable[[Host], Transport],
                 settings: SweepSettings, on_result: Callable[[HostResult], None] | None,
                 interrupt: Interrupt, run_id: str | None):
        self.hosts, self.transport_for, self.settings = list(hosts), transport_for, settings
        self.on_result, self.interrupt, self.run_id = on_result, interrupt, run_id
        self.pending = deque(range(len(self.hosts)))     # waiting for a handshake slot
        self.results: dict[int, HostResult] = {}
        self.measured: dict[int, HostResult] = {}        # results whose session is still closing
        self.began: dict[int, float] = {}                # index -> handshake start (elapsed_s)
        self.handshaking: dict[int, float] = {}          # index -> handshake start
        self.probing: set[int] = set()
        self.overdue_at: dict[int, float] = {}           # index -> end of its phase + grace
        self.active: dict[int, Transport] = {}           # sessions made, not yet closed
        self.slowest_handshake_s = 0.0
        self.execs_at_start = 0                          # held sessions with no start(): exec at the start
        self.cond = threading.Condition()
        self.stopping = threading.Event()
        self.go = threading.Event()                      # the start is chosen (or we stop)
        self.start: StartInstant | None = None
        self.cpu_at_begin = time.process_time()
        self.forks = max(1, min(settings.forks, len(self.hosts)))
        self.deadline_s = run_deadline_s(len(self.hosts), self.forks, settings)

    # --- reach: the handshake workers ------------------------------------------------------------

    def reach(self, index: int) -> tuple[Transport | None, HostResult | None]:
        """(the connected transport, None), or (what to close, if anything, and the result)."""
        host = self.hosts[index]
        try:
            transport = self.transport_for(host)
        except TransportError as exc:
            return None, HostResult(host.name, host.address, exc.status, printable(exc.reason), None, 0.0,
                                    host.groups)
        except BaseException as exc:  # noqa: B902 - e.g. a bad ~/.ssh/config line: this host's result
            return None, internal_error(host, exc)
        with self.cond:
            self.active[index] = transport
        try:
            transport.connect(time.monotonic() + self.settings.handshake_budget_s)
            return transport, None
        except TransportError as exc:
            return transport, HostResult(host.name, host.address, exc.status, printable(exc.reason, 400),
                                         None, time.monotonic() - self.began[index], host.groups)
        except BaseException as exc:  # noqa: B902
            return transport, internal_error(host, exc, time.monotonic() - self.began[index])

    def handshake_worker(self) -> None:
        while not self.stopping.is_set():
            with self.cond:
                if not self.pending:
                    return
                index = self.pending.popleft()
                now = self.began[index] = self.handshaking[index] = time.monotonic()
                self.overdue_at[index] = now + self.settings.handshake_budget_s + STUCK_THREAD_GRACE_S
            try:
                transport, failed = self.reach(index)
            except BaseException as exc:  # noqa: B902 - no worker dies silently
                transport, failed = None, internal_error(self.hosts[index], exc)
            with self.cond:
                abandoned = self.handshaking.pop(index, None) is None    # a fresh worker replaced us
                self.overdue_at.pop(index, None)
                if not abandoned and failed is None:
                    self.slowest_handshake_s = max(self.slowest_handshake_s, time.monotonic() - now)
                    self.execs_at_start += not self.starts_early(transport)
                self.release_start_if_due()
            if failed is not None:
                self.record(index, failed)      # dropped if the host was given up on meanwhile
            elif not (abandoned or self.stopping.is_set()):   # else its result is there, or stop() writes it
                # Bound now: this loop rebinds index and transport before the thread may read them.
                if _in_background(lambda i=index, t=transport: self.session(i, t), "rstfleet-session") is not None:
                    transport = None
                else:
                    self.record(index, internal_error(self.hosts[index],
                                                      RuntimeError("no session thread could be started")))
            if transport is not None:
                self.end_session(index, transport)
            if abandoned:
                return

    def add_workers(self, count: int) -> None:
        started = sum(_in_background(self.handshake_worker, "rstfleet-handshake") is not None
                      for _ in range(count))
        if started == 0 and not self.handshaking:
            with self.cond:
                for index in list(self.pending):
                    self.results.setdefault(index, internal_error(
                        self.hosts[index], RuntimeError("no worker thread could be started")))
                self.pending.clear()
                self.release_start_if_due()

    # --- start: the common instant ---------------------------------------------------------------

    def release_start_if_due(self) -> None:
        """Caller holds cond. Choose the start once no handshake is left to wait for."""
        if self.start is not None or self.pending:
            return
        if self.handshaking and not only_stragglers_left(
                list(self.handshaking.values()), self.slowest_handshake_s, time.monotonic()):
            return
        lead = 0.0 if not self.settings.aligned else go_lead_s(len(self.active), self.settings.window_s) \
            if not self.execs_at_start else start_lead_s(time.process_time() - self.cpu_at_begin, self.settings.window_s)
        self.start = StartInstant.after(lead)
        log.debug("common start in %.2f s (%d sessions held, %d handshakes left)", lead,
                  len(self.active), len(self.handshaking))
        # Every held session is bounded from now, even one whose session thread never runs.
        held_until = self.start.monotonic + self.settings.host_budget_s + STUCK_THREAD_GRACE_S
        for index in self.active:
            if index not in self.handshaking:
                self.overdue_at.setdefault(index, held_until)
        self.go.set()

    # --- collect: one session thread per reached host --------------------------------------------

    def starts_early(self, transport: Transport) -> bool:
        """Whether this session starts its probe now and sends the go later (window.py): up to
        GO_AT_CONNECT_MAX sessions in the group; past that 10,000 session threads waking beside
        the SSH work cost more than the aligned exec (measured: docs/benchmarks.md)."""
        return self.settings.aligned and len(self.hosts) <= GO_AT_CONNECT_MAX and can_start(transport)

    def until_start(self, index: int, ended: Callable[[], bool]) -> tuple[StartInstant | None, float] | None:
        """probe_run.UntilStart for one session: wait for the go (or the probe's end), then bound
        the probe phase from the start; None when the run stops or the host was given up on."""
        poll = ENDED_POLL_S[0]
        while not self.go.wait(poll) and not ended():
            poll = min(2 * poll, ENDED_POLL_S[1])
        with self.cond:
            if self.stopping.is_set() or index in self.results:
                return None
            start = self.start if self.go.is_set() else None
            deadline = probe_deadline(self.settings, start)
            self.overdue_at[index] = deadline + STUCK_THREAD_GRACE_S
            self.probing.add(index)
            return start, deadline

    def session(self, index: int, transport: Transport) -> None:
        try:
            if self.starts_early(transport):
                result = probe_host(self.hosts[index], transport, self.settings, self.run_id, began=self.began[index],
                                    until_start=lambda ended: self.until_start(index, ended))
                if result is None:
                    return                      # stop() or give_up_on() closes it and says why
                return self.finish_session(index, transport, result)
            self.go.wait()
            with self.cond:
                if self.stopping.is_set() or index in self.results or self.start is None:
                    return                      # stop() or give_up_on() closes it and says why
                start = self.start if self.settings.aligned else None
                deadline = probe_deadline(self.settings, start)
                self.overdue_at[index] = deadline + STUCK_THREAD_GRACE_S
                self.probing.add(index)
            result = probe_host(self.hosts[index], transport, self.settings, self.run_id, start,
                                self.began[index], deadline)
            self.finish_session(index, transport, result)
        except BaseException as exc:  # noqa: B902 - no session dies silently
            self.record(index, internal_error(self.hosts[index], exc,
                                              time.monotonic() - self.began.get(index, 0.0)))

    def finish_session(self, index: int, transport: Transport, result: HostResult) -> None:
        with self.cond:
            self.measured[index] = result     # kept even if close() below hangs
        self.end_session(index, transport)
        self.record(index, result)

    def end_session(self, index: int, transport: Transport) -> None:
        _close_quietly(transport)
        with self.cond:
            if self.active.get(index) is transport:
                del self.active[index]

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
            self.probing.discard(index)
            self.overdue_at.pop(index, None)
            self.cond.notify_all()
        if self.on_result:
            try:
                self.on_result(result)
            except BaseException:  # noqa: B902 - progress display must not lose a host
                log.debug("on_result failed", exc_info=True)

    # --- the main thread: overdue hosts, stragglers, the whole-run deadline, Ctrl-C ---------------

    def cancelled(self, index: int, elapsed_s: float = 0.0) -> HostResult:
        host = self.hosts[index]
        return HostResult(host.name, host.address, Status.CANCELLED,
                          "run interrupted (Ctrl-C) before this host finished", None, elapsed_s, host.groups)

    def give_up_on(self, index: int, now: float, reason: str) -> None:
        """Caller holds cond. A measured host whose session would not close keeps its result."""
        host = self.hosts[index]
        self.results[index] = self.measured.get(index) or HostResult(
            host.name, host.address, Status.TIMEOUT, reason, None, now - self.began.get(index, now), host.groups)
        self.handshaking.pop(index, None)
        self.probing.discard(index)
        self.overdue_at.pop(index, None)
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
                overdue = [i for i, t in self.overdue_at.items() if now > t]
                stuck_handshakes = sum(i in self.handshaking for i in overdue)
                for index in overdue:
                    phase = "handshake" if index in self.handshaking else "probe"
                    self.give_up_on(index, now, f"no result within its {phase} bound + grace; abandoned")
                self.release_start_if_due()
                if now - began > self.deadline_s:
                    self.stopping.set()
                    self.go.set()
                    for index in range(len(self.hosts)):
                        if index not in self.results:
                            self.give_up_on(index, now, f"no result within the whole run's bound of "
                                                        f"{self.deadline_s:.0f} s; abandoned")
                    return
                waits = [t - now for t in self.overdue_at.values()]
                self.cond.wait(max(0.01, min([WAIT_SLICE_S, began + self.deadline_s - now] + waits)))
            if stuck_handshakes and self.pending and not self.stopping.is_set():
                self.add_workers(stuck_handshakes)     # stuck threads do not narrow the handshakes

    def stop(self) -> None:
        """Ctrl-C: no new hosts; capturing probes asked to finish early; the rest cancelled."""
        self.stopping.set()
        self.go.set()
        with self.cond:
            running = sorted(self.probing)
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
        _close_all(sessions, CLOSE_WAIT_S)

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


def sweep_fleet(hosts: list[Host], transport_for: Callable[[Host], Transport], settings: SweepSettings,
                on_result: Callable[[HostResult], None] | None = None,
                interrupt: Interrupt | None = None) -> Sweep:
    """Probe every host in one window when the sessions fit (sessions.py), else in successive
    window groups; one result per host, in inventory order; ``interrupt`` (Ctrl-C) ends it early."""
    if not hosts:
        return Sweep([])
    interrupt = interrupt or Interrupt()
    prepare_payloads(settings)
    capture_bytes = settings.max_output if "--capture" in settings.probe_options else 0
    ceiling = getattr(transport_for, "session_ceiling", lambda: None)()
    limit = session_limit(len(hosts), output_bytes=capture_bytes, cost=fleet_session_cost(hosts, transport_for),
                          ceiling=ceiling)
    size = min(limit.sessions, settings.sessions or len(hosts))
    reason = "" if size >= len(hosts) else (
        limit.reason if limit.sessions <= size else f"at most {size} sessions held at once (settings)")
    run_id = secrets.token_hex(8) if settings.finishes_early_on_interrupt else None
    outcome = Sweep([], groups=math.ceil(len(hosts) / size), split_reason=reason, sessions=size)
    for first in range(0, len(hosts), size):
        group = hosts[first:first + size]
        if interrupt.is_set():
            outcome.results += [HostResult(h.name, h.address, Status.CANCELLED, "run interrupted (Ctrl-C) "
                                           "before this host's window group", None, 0.0, h.groups) for h in group]
            continue
        window_group = _WindowGroup(group, transport_for, settings, on_result, interrupt, run_id)
        outcome.results += window_group.run()
        if window_group.start is not None:
            outcome.starts.append(window_group.start.wall)
    return outcome


def sweep(hosts: list[Host], transport_for: Callable[[Host], Transport], settings: SweepSettings,
          on_result: Callable[[HostResult], None] | None = None,
          interrupt: Interrupt | None = None) -> list[HostResult]:
    """sweep_fleet()'s results only."""
    return sweep_fleet(hosts, transport_for, settings, on_result, interrupt).results
