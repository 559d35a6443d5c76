"""One window for the fleet: handshakes bounded by --forks, sessions held, one common start.

Most transports here are fakes with an explicit handshake (``connect``), deliberately: counting
handshakes and probe runs in flight, holding a handshake for exactly as long as a test needs, or a
straggler that connects after the start, cannot be arranged on demand with a real sshd.
tests/e2e/test_window_e2e.py sweeps real lab hosts with --forks 10; the alignment test below runs
the real probe on this machine (LocalTransport).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time

import pytest

from rstfleet.inventory import Host
from rstfleet.probe.host.counters import read_snapshot
from rstfleet.probe.host.facts import read_uptime
from rstfleet.probe.host.main import build_document
from rstfleet.results import Status
from rstfleet.report import view, window_text
from rstfleet.sweep import pool, sessions, window
from rstfleet.sweep.pool import SweepSettings, sweep_fleet
from rstfleet.transport import RunResult
from rstfleet.transport.local import LocalTransport

from helpers import ROOT

SNAPSHOT = read_snapshot()
OK_STDOUT = json.dumps(build_document(0.0, time.time(), 0.0, SNAPSHOT, SNAPSHOT, read_uptime())).encode()


class Counter:
    def __init__(self):
        self.now = self.most = 0
        self.lock = threading.Lock()

    def __enter__(self):
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def __exit__(self, *exc):
        with self.lock:
            self.now -= 1


class HeldSession:
    """connect() is the handshake (takes ``handshake_s``), run() the probe (takes ``run_s``);
    both counted in flight; run() keeps the argv it was given."""

    def __init__(self, host, handshakes: Counter, runs: Counter, handshake_s=0.02, run_s=0.05):
        self.host, self.handshakes, self.runs = host, handshakes, runs
        self.handshake_s, self.run_s = handshake_s, run_s
        self.connected_at = self.argv = None
        self.closed = 0

    def connect(self, deadline):
        with self.handshakes:
            time.sleep(self.handshake_s)
        self.connected_at = time.time()

    def run(self, argv, stdin, deadline, max_output=0):
        self.argv = list(argv)
        with self.runs:
            time.sleep(self.run_s)
        return RunResult(0, OK_STDOUT, b"")

    def close(self):
        self.closed += 1

    def start_at(self) -> float | None:
        return float(self.argv[self.argv.index("--start-at") + 1]) if "--start-at" in self.argv else None


def hosts(n: int, prefix: str = "n") -> list[Host]:
    return [Host(f"{prefix}{i}", f"198.51.100.{i + 1}") for i in range(n)]


def sessions_for(fleet, **kw):
    handshakes, runs, made = Counter(), Counter(), {}

    def transport_for(host):
        made[host.name] = HeldSession(host, handshakes, runs, **kw.get(host.name, kw.get("all", {})))
        return made[host.name]
    return transport_for, handshakes, runs, made


SETTINGS = SweepSettings(window_s=1.0, forks=3, connect_timeout_s=1.0, margin_s=1.0)


def test_no_more_handshakes_than_forks_are_in_flight_yet_every_session_is_held_for_one_window():
    fleet = hosts(12)
    transport_for, handshakes, runs, made = sessions_for(fleet, all={"run_s": 0.5})   # long enough to meet
    outcome = sweep_fleet(fleet, transport_for, SETTINGS)
    assert [r.status for r in outcome.results] == [Status.OK] * 12
    assert 1 < handshakes.most <= 3
    assert runs.most == 12                      # all twelve probes ran at the same time
    assert (outcome.groups, outcome.split_reason) == (1, "")
    assert all(t.closed for t in made.values())


def test_every_probe_gets_the_same_start_after_the_last_handshake():
    fleet = hosts(9)
    transport_for, _, _, made = sessions_for(fleet)
    outcome = sweep_fleet(fleet, transport_for, SETTINGS)
    starts = {t.start_at() for t in made.values()}
    assert len(starts) == 1 and outcome.starts == [starts.pop()]
    last_handshake = max(t.connected_at for t in made.values())
    lead = outcome.starts[0] - last_handshake
    assert window.START_LEAD_S - 0.05 <= lead <= SETTINGS.window_s / 2 + 0.05


def test_a_straggler_does_not_hold_back_the_start_and_is_probed_when_it_arrives(monkeypatch):
    monkeypatch.setattr(window, "STRAGGLER_MIN_S", 0.3)
    fleet = hosts(4)
    transport_for, _, _, made = sessions_for(fleet, n3={"handshake_s": 1.2})
    began = time.time()
    outcome = sweep_fleet(fleet, transport_for, SETTINGS)
    assert [r.status for r in outcome.results] == [Status.OK] * 4
    start = outcome.starts[0]
    assert start - began < 1.0                  # not the straggler's 1.2 s
    assert made["n3"].start_at() == start       # same instant: it starts late, at once
    assert made["n3"].connected_at > start


def test_a_stuck_handshake_is_abandoned_and_the_fleet_still_starts(monkeypatch):
    """One fork; the first handshake never ends: abandoned after its budget + grace, a fresh
    worker reaches the others, and they get their window."""
    monkeypatch.setattr(pool, "STUCK_THREAD_GRACE_S", 0.2)
    release = threading.Event()
    settings = SweepSettings(window_s=0.1, forks=1, connect_timeout_s=0.05, margin_s=0.2)

    class Stuck(HeldSession):
        def connect(self, deadline):
            release.wait(10)

    def transport_for(host):
        return Stuck(host, Counter(), Counter()) if host.name == "n0" else HeldSession(host, Counter(), Counter())
    started = time.monotonic()
    try:
        results = sweep_fleet(hosts(3), transport_for, settings).results
    finally:
        release.set()
    assert results[0].status == Status.TIMEOUT and "handshake" in results[0].reason
    assert [r.status for r in results[1:]] == [Status.OK, Status.OK]
    assert time.monotonic() - started < settings.handshake_budget_s + 0.2 + settings.window_s + 1.5


def test_a_probe_that_never_returns_is_abandoned_after_its_budget_from_the_start(monkeypatch):
    monkeypatch.setattr(pool, "STUCK_THREAD_GRACE_S", 0.2)
    release = threading.Event()
    settings = SweepSettings(window_s=0.2, forks=2, connect_timeout_s=0.05, margin_s=0.2)

    class Hung(HeldSession):
        def run(self, argv, stdin, deadline, max_output=0):
            self.argv = list(argv)
            release.wait(10)
            return RunResult(None, b"", b"", timed_out=True)

    made = {}

    def transport_for(host):
        made[host.name] = (Hung if host.name == "n1" else HeldSession)(host, Counter(), Counter())
        return made[host.name]
    try:
        outcome = sweep_fleet(hosts(3), transport_for, settings)
        ended = time.time()
    finally:
        release.set()
    assert [r.status for r in outcome.results] == [Status.OK, Status.TIMEOUT, Status.OK]
    assert "abandoned" in outcome.results[1].reason
    bound = outcome.starts[0] + settings.host_budget_s + 0.2
    assert bound - 0.05 <= ended < bound + 0.5
    assert made["n1"].closed                    # its session closed behind it


def test_past_the_session_bound_the_fleet_is_split_into_window_groups_and_says_why():
    fleet = hosts(10)
    transport_for, _, runs, made = sessions_for(fleet)
    outcome = sweep_fleet(fleet, transport_for, SweepSettings(window_s=0.2, forks=5, connect_timeout_s=1,
                                                              margin_s=1, sessions=4))
    assert [r.host for r in outcome.results] == [h.name for h in fleet]
    assert {r.status for r in outcome.results} == {Status.OK}
    assert (outcome.groups, outcome.sessions) == (3, 4)
    assert "4 sessions" in outcome.split_reason
    assert runs.most <= 4
    assert len(set(outcome.starts)) == 3
    assert len({t.start_at() for t in made.values()}) == 3


def test_without_a_window_to_align_rstfleet_check_probes_each_host_as_soon_as_it_is_reached():
    fleet = hosts(3)
    transport_for, _, _, made = sessions_for(fleet)
    settings = SweepSettings(window_s=0.0, forks=1, document_kind="rstfleet-check")
    sweep_fleet(fleet, transport_for, settings)
    assert all(t.start_at() is None for t in made.values())


class SlowToReach(LocalTransport):
    """The real probe on this machine, behind a 0.15 s "handshake" (LocalTransport has none)."""

    def connect(self, deadline):
        time.sleep(0.15)


def test_the_real_probe_waits_for_the_common_start_so_the_windows_begin_together(monkeypatch):
    """Three real probes on this machine, reached 0.15 s apart by a single fork: run as they were
    reached, their windows would start 0.3 s apart; they start at the common instant instead. (A
    1 s lead: Python's start-up on this shared 2-core machine has taken over 0.5 s under load.)"""
    monkeypatch.setattr(window, "START_LEAD_S", 1.0)
    fleet = [Host(f"local{i}", "localhost", connection="local") for i in range(3)]
    settings = SweepSettings(window_s=2.0, forks=1, margin_s=10, host_probe="python", probe_options=())
    outcome = sweep_fleet(fleet, lambda h: SlowToReach(), settings)
    assert [r.status for r in outcome.results] == [Status.OK] * 3, [r.reason for r in outcome.results]
    starts = [r.probe["window"]["started_at"] for r in outcome.results]
    assert all(r.probe["window"]["start_at"] == pytest.approx(outcome.starts[0], abs=0.001)
               for r in outcome.results)
    assert min(starts) >= outcome.starts[0] - 0.001
    assert max(starts) - min(starts) < 0.1
    span = window.fleet_window([r.probe for r in outcome.results])
    assert span.overlap and span.start_spread_s < 0.1


def test_the_open_file_limit_bounds_the_sessions_held_and_says_so():
    """In a child whose hard limit is 100 descriptors (the soft one cannot be raised past it)."""
    code = ("import resource; resource.setrlimit(resource.RLIMIT_NOFILE, (100, 100));"
            "from rstfleet.sweep.sessions import session_limit; l = session_limit(1000);"
            "print(l.sessions, l.reason)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         check=True).stdout.split(" ", 1)
    assert int(out[0]) == (100 - sessions.FDS_RESERVED) // sessions.FDS_PER_SESSION
    assert "open-file limit 100" in out[1]


def test_the_soft_open_file_limit_is_raised_toward_the_hard_one_rather_than_splitting():
    """500 sessions, or as many as the hard limit can hold (a machine with a low hard limit still
    checks the raise, on fewer sessions)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    room = 500 if hard == resource.RLIM_INFINITY else (hard - sessions.FDS_RESERVED) // sessions.FDS_PER_SESSION
    wanted = min(500, room)
    start = min(soft, sessions.FDS_RESERVED + sessions.FDS_PER_SESSION * wanted - 1)
    assert wanted > 0 and start < sessions.FDS_RESERVED + sessions.FDS_PER_SESSION * wanted
    resource.setrlimit(resource.RLIMIT_NOFILE, (start, hard))
    try:
        limit = sessions.session_limit(wanted)
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= sessions.FDS_RESERVED + sessions.FDS_PER_SESSION * wanted
        assert limit.sessions == wanted
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_memory_bounds_the_sessions_at_half_of_what_is_available(tmp_path):
    """A /proc with a small MemAvailable (a file tree: the real one cannot be made small)."""
    (tmp_path / "meminfo").write_text("MemTotal: 1000000 kB\nMemAvailable:  102400 kB\n")
    room, why = sessions._memory_room(str(tmp_path))
    assert room == 100 * 2 ** 20 // 2 // sessions.SESSION_MEMORY_BYTES
    assert "100 MB available" in why


def test_the_span_says_whether_one_instant_lies_inside_every_window():
    def doc(start, measured):
        return {"window": {"started_at": start, "measured_s": measured}}
    aligned = window.fleet_window([doc(100.0, 10.0), doc(100.2, 10.0), None, {"window": {}}])
    assert (aligned.hosts_measured, aligned.overlap) == (2, True)
    assert aligned.span_s == pytest.approx(10.2) and aligned.start_spread_s == pytest.approx(0.2)
    apart = window.fleet_window([doc(100.0, 10.0), doc(110.5, 10.0)])
    assert not apart.overlap
    assert "do not all overlap" in window_text.window_sentence(apart.as_dict())
    split = window.fleet_window([doc(100.0, 10.0)], groups=3, split_reason="open-file limit 100")
    assert window_text.window_sentence(split.as_dict()).startswith("split into 3 successive windows (open-file limit 100)")


def test_the_default_sweep_traces_only_where_the_kernel_is_the_hosts_own(tmp_path):
    """--trace-auto: root and the kernel's first network namespace (a real host) traces; a lab
    host or a container (another namespace: the tracepoint is machine-wide) does not. The /proc
    here is a file tree, because a unit test cannot enter another network namespace."""
    from rstfleet.probe.host import main as probe_main, tracefs
    for name in ("self", "1"):
        (tmp_path / name / "ns").mkdir(parents=True)
    (tmp_path / "1" / "ns" / "net").write_text("")
    os.link(tmp_path / "1" / "ns" / "net", tmp_path / "self" / "ns" / "net")
    assert not tracefs.shares_its_kernel(str(tmp_path))          # the same namespace
    (tmp_path / "self" / "ns" / "net").unlink()
    (tmp_path / "self" / "ns" / "net").write_text("")
    assert tracefs.shares_its_kernel(str(tmp_path))              # another one
    assert tracefs.shares_its_kernel(str(tmp_path / "missing"))  # unreadable: shared
    (tmp_path / "1" / "ns" / "net").unlink()                          # PID 1 refuses a look:
    (tmp_path / "2" / "ns").mkdir(parents=True)                       # kthreadd's namespace decides
    os.link(tmp_path / "self" / "ns" / "net", tmp_path / "2" / "ns" / "net")
    assert not tracefs.shares_its_kernel(str(tmp_path))
    args = probe_main.parse_args(["--trace-auto"])
    assert probe_main.trace_wanted(args) == (os.geteuid() == 0
                                             and not tracefs.shares_its_kernel())
    assert probe_main.trace_wanted(probe_main.parse_args(["--trace"]))
    assert not probe_main.trace_wanted(probe_main.parse_args([]))


def test_a_host_without_python3_still_gets_the_shell_probe_when_tracing_is_only_automatic():
    """--trace-auto is not evidence the Python probe must give: python3 missing, the counters come
    from the shell probe on the same session (a fake session: python3 'not found', then sh)."""
    class NoPython:
        def __init__(self):
            self.argvs = []

        def run(self, argv, stdin, deadline, max_output=0):
            self.argvs.append(argv)
            if argv[0] == "python3":
                return RunResult(127, b"", b"sh: 1: python3: not found\n")
            return RunResult(0, subprocess.run(argv, capture_output=True).stdout, b"")

        def connect(self, deadline):
            pass

        def close(self):
            pass
    session = NoPython()
    settings = SweepSettings(window_s=0.2, forks=1, margin_s=5)
    assert settings.probe_options == ("--trace-auto",)
    [result] = sweep_fleet(hosts(1), lambda h: session, settings).results
    assert result.status == Status.OK, result.reason
    assert [argv[0] for argv in session.argvs] == ["python3", "sh"]
    assert result.probe["facts"]["probe"] == "shell"


def test_a_session_thread_that_starts_late_still_probes_its_own_hosts_session(monkeypatch):
    """Threads are started with a delay before their work (as a loaded machine may): each session
    thread must still get the host and session it was started for, not the worker's next ones."""
    started = pool._in_background

    def late(function, name):
        def delayed():
            time.sleep(0.02)
            function()
        return started(delayed, name)
    monkeypatch.setattr(pool, "_in_background", late)
    fleet = hosts(8)
    transport_for, _, _, made = sessions_for(fleet, all={"handshake_s": 0.0, "run_s": 0.0})
    outcome = sweep_fleet(fleet, transport_for, SweepSettings(window_s=0.1, forks=2, connect_timeout_s=1,
                                                              margin_s=1))
    assert [r.status for r in outcome.results] == [Status.OK] * 8, [r.reason for r in outcome.results]
    assert all(t.argv is not None for t in made.values())     # every host's own session ran its probe


def test_probes_that_capture_count_their_output_cap_against_memory(tmp_path):
    (tmp_path / "meminfo").write_text("MemAvailable:  1048576 kB\n")           # 1 GB
    plain, _ = sessions._memory_room(str(tmp_path))
    capturing, why = sessions._memory_room(str(tmp_path), sessions.SESSION_MEMORY_BYTES + 16 * 2 ** 20)
    assert plain == 2048 and capturing == 31 and "16640 KB a session" in why
