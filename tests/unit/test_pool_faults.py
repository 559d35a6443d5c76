"""Nothing in one host's path can hang the sweep or take the other hosts down.

The transport here is a fake, deliberately: this test is about the pool, and the faults it needs
(an exception of any kind, BaseException included, or a stall, injected at every phase of a
transport: while it is made, when its run starts, mid-run, in close()) cannot be produced on
demand by a real SSH server. tests/e2e drives the real transports against the lab
(test_faults_e2e.py, test_interrupt_e2e.py).
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from rstfleet.inventory import Host
from rstfleet.probe.host.counters import read_snapshot
from rstfleet.probe.host.facts import read_uptime
from rstfleet.probe.host.main import build_document
from rstfleet.results import Status
from rstfleet.sweep import pool
from rstfleet.sweep.pool import SweepSettings, run_deadline_s, sweep
from rstfleet.transport import RunResult, TransportError

GRACE_S = 0.2                  # monkeypatched STUCK_THREAD_GRACE_S: keeps every example short
SLACK_S = 0.5                  # scheduling on two shared cores
TINY = dict(window_s=0.01, connect_timeout_s=0.01, margin_s=0.01)
STALL_S = 20.0                 # longer than any deadline here; released when the example ends

SNAPSHOT = read_snapshot()
OK_STDOUT = json.dumps(build_document(0.0, time.time(), 0.0, SNAPSHOT, SNAPSHOT, read_uptime())).encode()


class Boom(BaseException):
    """Like KeyboardInterrupt or SystemExit: not an Exception, so `except Exception` misses it."""


EXCEPTIONS = {
    "TransportError": lambda: TransportError(Status.AUTH_FAILED, "refused authentication"),
    "ValueError": lambda: ValueError("bad Port in ~/.ssh/config"),
    "OSError": lambda: OSError(24, "Too many open files"),
    "KeyError": lambda: KeyError("hostname"),
    "RuntimeError": lambda: RuntimeError("can't start new thread"),
    "RecursionError": lambda: RecursionError("maximum recursion depth exceeded"),
    "MemoryError": lambda: MemoryError(),
    "KeyboardInterrupt": lambda: KeyboardInterrupt(),
    "SystemExit": lambda: SystemExit(3),
    "GeneratorExit": lambda: GeneratorExit(),
    "Boom": lambda: Boom("a BaseException of its own"),
}
PHASES = ("constructor", "connect", "run_start", "mid_run", "close")

fault = st.one_of(
    st.none(),
    st.tuples(st.sampled_from(PHASES), st.sampled_from(sorted(EXCEPTIONS) + ["stall"])))


class FaultyTransport:
    """Raises or stalls in the phase it is told; otherwise answers like a healthy probe."""

    def __init__(self, host: Host, fault, release: threading.Event):
        self.host, self.fault, self.release = host, fault, release
        self._act("constructor")

    def _act(self, phase: str) -> None:
        if self.fault and self.fault[0] == phase:
            if self.fault[1] == "stall":
                self.release.wait(STALL_S)
            else:
                raise EXCEPTIONS[self.fault[1]]()

    def connect(self, deadline: float) -> None:
        self._act("connect")

    def run(self, argv, stdin, deadline, max_output=0) -> RunResult:
        self._act("run_start")
        if self.fault and self.fault[0] == "mid_run":
            time.sleep(0.003)
            self._act("mid_run")
        return RunResult(0, OK_STDOUT, b"")

    def close(self) -> None:
        self._act("close")


def expected_status(fault) -> Status:
    """What the pool must report for a host with this fault."""
    if fault is None or fault[0] == "close":
        return Status.OK                     # measured: a failing or hanging close() loses nothing
    if fault[1] == "stall":
        return Status.TIMEOUT
    return Status.AUTH_FAILED if fault[1] == "TransportError" else Status.PROBE_ERROR


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(faults=[("constructor", "stall"), ("close", "stall"), None], forks=1, stalls_allowed=2)
@example(faults=[("run_start", "stall"), ("mid_run", "stall"), None, None], forks=2, stalls_allowed=2)
@example(faults=[("connect", "stall"), ("connect", "SystemExit"), ("connect", "TransportError"), None],
         forks=1, stalls_allowed=1)
@example(faults=[(phase, name) for phase in PHASES for name in ("KeyboardInterrupt", "SystemExit", "Boom")],
         forks=3, stalls_allowed=0)
@given(faults=st.lists(fault, min_size=1, max_size=12), forks=st.integers(1, 6),
       stalls_allowed=st.integers(0, 2))
def test_every_host_gets_one_result_within_the_whole_run_deadline_whatever_its_transport_does(
        monkeypatch, faults, forks, stalls_allowed):
    monkeypatch.setattr(pool, "STUCK_THREAD_GRACE_S", GRACE_S)
    faults = list(faults)
    stalls = [i for i, f in enumerate(faults) if f and f[1] == "stall"]
    for i in stalls[stalls_allowed:]:            # at most two stalls keep an example short
        faults[i] = None
    hosts = [Host(f"h{i}", f"192.0.2.{i + 1}") for i in range(len(faults))]
    settings_ = SweepSettings(forks=forks, **TINY)
    release = threading.Event()
    by_name = dict(zip((h.name for h in hosts), faults))
    started = time.monotonic()
    try:
        results = sweep(hosts, lambda h: FaultyTransport(h, by_name[h.name], release), settings_)
        took = time.monotonic() - started
    finally:
        release.set()
    bound = run_deadline_s(len(hosts), min(forks, len(hosts)), settings_)
    assert took < bound + SLACK_S, (took, bound)
    assert [r.host for r in results] == [h.name for h in hosts]
    assert all(isinstance(r.status, Status) for r in results)
    assert [r.status for r in results] == [expected_status(f) for f in faults], faults
    for result, fault_ in zip(results, faults):
        if result.status == Status.PROBE_ERROR:
            assert result.reason.startswith(f"internal error: {fault_[1]}"), result.reason


@pytest.fixture
def release():
    event = threading.Event()
    yield event
    event.set()


def test_the_whole_run_deadline_is_the_handshake_waves_then_one_window_per_window_group():
    """Handshakes: 4 x connect timeout each, ceil(hosts / forks) waves; then the lead (at most
    half the window) and a host's budget (connect + window + margin) once; per window group."""
    settings_ = SweepSettings(window_s=10, connect_timeout_s=10, margin_s=15, forks=200)
    grace = pool.STUCK_THREAD_GRACE_S
    one_window = 5 + 35 + grace
    assert run_deadline_s(150, 200, settings_) == (40 + grace) + one_window
    assert run_deadline_s(450, 200, settings_) == 3 * (40 + grace) + one_window
    split = SweepSettings(window_s=10, connect_timeout_s=10, margin_s=15, forks=200, sessions=300)
    assert run_deadline_s(450, 200, split) == 2 * (2 * (40 + grace) + one_window)


def test_the_whole_run_deadline_includes_the_probes_lead_exact_minute_and_agent():
    """The lead (exact minute 60 s + agent 1 s) is in every host's probe bound, so in the run's."""
    settings_ = SweepSettings(window_s=10, connect_timeout_s=10, margin_s=15, forks=200, lead_s=61)
    grace = pool.STUCK_THREAD_GRACE_S
    assert settings_.host_budget_s == 96
    assert run_deadline_s(450, 200, settings_) == 3 * (40 + grace) + 5 + 96 + grace


def test_a_stuck_host_does_not_narrow_the_pool_the_queued_hosts_still_finish_in_time(monkeypatch, release):
    """One fork, the first host stalls forever: it is abandoned after its budget + grace and a
    fresh worker probes the others, so they are measured, not abandoned."""
    monkeypatch.setattr(pool, "STUCK_THREAD_GRACE_S", GRACE_S)
    hosts = [Host(f"q{i}", f"192.0.2.{i + 1}") for i in range(4)]
    faults = {"q0": ("run_start", "stall")}
    settings_ = SweepSettings(forks=1, **TINY)
    started = time.monotonic()
    results = sweep(hosts, lambda h: FaultyTransport(h, faults.get(h.name), release), settings_)
    took = time.monotonic() - started
    assert [r.status for r in results] == [Status.TIMEOUT, Status.OK, Status.OK, Status.OK]
    assert "abandoned" in results[0].reason
    assert took < settings_.host_budget_s + GRACE_S + SLACK_S, took


def test_past_the_whole_run_deadline_every_unfinished_host_is_a_timeout(monkeypatch, release):
    """A stalled transport that closes back into a stall: the per-host grace is made huge so only
    the whole-run deadline can end the sweep."""
    monkeypatch.setattr(pool, "STUCK_THREAD_GRACE_S", 0.3)
    monkeypatch.setattr(pool, "run_deadline_s", lambda hosts, forks, settings_: 0.3)
    hosts = [Host("s1", "192.0.2.1"), Host("s2", "192.0.2.2")]
    settings_ = SweepSettings(forks=1, window_s=5, connect_timeout_s=5, margin_s=5)
    started = time.monotonic()
    results = sweep(hosts, lambda h: FaultyTransport(h, ("run_start", "stall"), release), settings_)
    assert time.monotonic() - started < 0.3 + SLACK_S
    assert [r.status for r in results] == [Status.TIMEOUT, Status.TIMEOUT]
    assert all("whole run's bound" in r.reason for r in results)
