"""The pool starts each probe right after its host's handshake and sends the go when every
handshake is done (sweep/window.py, "The go").

The transport is LocalTransport with a start() added: the product's LocalTransport has run()
only (the local host needs no early start), and SSH cannot be arranged here with a handshake of
exactly the length a test needs. Everything behind it is real: the probe (Python or shell) runs
on this machine as a child, reads its script and then its go line from stdin, and a closed
session is its stdin closing, as when sshd drops a channel.
"""

from __future__ import annotations

import subprocess
import threading
import time

import pytest

from rstfleet.inventory import Host
from rstfleet.probe import GO_READER
from rstfleet.probe.host.facts import read_uptime
from rstfleet.probe.host.limits import NO_GO_EXIT
from rstfleet.results import Status
from rstfleet.sweep.interrupt import Interrupt
from rstfleet.sweep.pool import SweepSettings, sweep_fleet
from rstfleet.sweep.probe_run import SHELL_FALLBACK_NOTE
from rstfleet.transport import RunResult
from rstfleet.transport.local import LocalTransport

NO_PYTHON = ["sh", "-c", "echo 'sh: 1: python3: not found' >&2; exit 127"]


class Child:
    """transport.Running for a local child process."""

    def __init__(self, process: subprocess.Popen):
        self.process = process

    def ended(self) -> bool:
        return self.process.poll() is not None

    def send(self, data: bytes) -> None:
        try:
            self.process.stdin.write(data)
            self.process.stdin.close()
        except (BrokenPipeError, OSError, ValueError):
            pass

    def wait(self, deadline: float) -> RunResult:
        out, err = self.process.stdout.read(), self.process.stderr.read()
        return RunResult(self.process.wait(max(0.1, deadline - time.monotonic())), out, err)


class StartedHere(LocalTransport):
    """A 0.15 s "handshake", then the command started at once (module docstring)."""

    def __init__(self, no_python: bool = False):
        super().__init__()
        self.no_python = no_python
        self.started: list[tuple[float, list[str]]] = []
        self.children: list[subprocess.Popen] = []
        self.connected_at = None

    def connect(self, deadline):
        time.sleep(0.15)
        self.connected_at = time.time()

    def start(self, argv, stdin, deadline, max_output=0) -> Child:
        argv = self._resolve(argv)
        if self.no_python and GO_READER in argv:
            argv = NO_PYTHON
        self.started.append((time.time(), argv))
        process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.children.append(process)
        try:
            process.stdin.write(stdin)
            process.stdin.flush()
        except BrokenPipeError:
            pass
        return Child(process)

    def close(self):
        for process in self.children:
            if process.stdin and not process.stdin.closed:
                process.stdin.close()       # the session is gone: EOF before any go
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()


def local_fleet(n: int) -> list[Host]:
    return [Host(f"here{i}", "localhost", connection="local") for i in range(n)]


def three_hosts_one_fork():
    """Three local hosts through StartedHere transports, one handshake at a time; all must be ok."""
    made = []

    def transport_for(host):
        made.append(StartedHere())
        return made[-1]
    settings = SweepSettings(window_s=1.0, forks=1, margin_s=10, host_probe="python", probe_options=())
    outcome = sweep_fleet(local_fleet(3), transport_for, settings)
    assert [r.status for r in outcome.results] == [Status.OK] * 3, [r.reason for r in outcome.results]
    return made, outcome


def test_probes_start_at_their_handshake_and_their_windows_at_the_go():
    """Three hosts reached 0.15 s apart by one fork: each probe runs from its handshake, yet
    every window starts at the one instant the go names, after the last handshake."""
    made, outcome = three_hosts_one_fork()
    [start] = outcome.starts
    assert all("--start-on-stdin" in t.started[0][1] for t in made)
    assert made[0].started[0][0] < made[-1].connected_at         # started before the last handshake
    starts = [r.probe["window"]["started_at"] for r in outcome.results]
    assert all(r.probe["window"]["start_at"] == pytest.approx(start, abs=0.001) for r in outcome.results)
    assert start - 0.01 <= min(starts) and max(starts) - min(starts) < 0.2, (start, starts)


def test_a_host_without_python_is_measured_by_the_shell_probe_which_also_waits_for_the_go():
    made = []

    def transport_for(host):
        made.append(StartedHere(no_python=host.name == "here1"))
        return made[-1]
    settings = SweepSettings(window_s=1.0, forks=1, margin_s=10)
    outcome = sweep_fleet(local_fleet(3), transport_for, settings)
    assert [r.status for r in outcome.results] == [Status.OK] * 3, [r.reason for r in outcome.results]
    fallback = outcome.results[1].probe
    assert fallback["facts"]["probe"] == "shell" and SHELL_FALLBACK_NOTE in fallback["notes"]
    assert [argv[0] for _, argv in made[1].started] == ["sh", "sh"]
    assert made[1].started[1][1][-1] == "go"                   # the shell probe started early too
    assert made[1].started[1][0] < made[2].connected_at        # ... at once, not at the start
    # The shell probe's started_at rests on /proc/stat's whole-second btime: compare uptimes.
    uptime_at_start = read_uptime() - (time.time() - outcome.starts[0])
    shell_began = fallback["baseline"]["uptime_s"] - fallback["window"]["measured_s"]
    assert uptime_at_start - 0.05 <= shell_began < uptime_at_start + 0.3, (uptime_at_start, shell_began)


def test_ctrl_c_before_the_go_cancels_every_host_and_each_waiting_probe_exits_on_eof():
    made, interrupt = [], Interrupt()

    def transport_for(host):
        made.append(StartedHere())
        return made[-1]

    def press_once_two_probes_wait():
        deadline = time.monotonic() + 20
        while sum(len(t.started) for t in made) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        interrupt.press()
    presser = threading.Thread(target=press_once_two_probes_wait)
    presser.start()
    settings = SweepSettings(window_s=5.0, forks=1, margin_s=10, host_probe="python", probe_options=())
    outcome = sweep_fleet(local_fleet(6), transport_for, settings, interrupt=interrupt)
    presser.join()
    assert outcome.starts == []                                  # no go was ever chosen
    assert {r.status for r in outcome.results} == {Status.CANCELLED}
    children = [p for t in made for p in t.children]
    assert children and all(p.wait(10) == NO_GO_EXIT for p in children)


def test_a_window_group_past_the_go_bound_execs_every_probe_at_the_start(monkeypatch):
    """Past GO_AT_CONNECT_MAX sessions (2,000: at 10,000 simulated hosts the go at connect cost
    13.8 ms a host and 278 handshake timeouts) no probe is started at its handshake: each runs
    (LocalTransport.run) with --start-at at the common start. Bound lowered to 2 for 3 hosts."""
    from rstfleet.sweep import pool
    monkeypatch.setattr(pool, "GO_AT_CONNECT_MAX", 2)
    made, outcome = three_hosts_one_fork()
    assert not any(t.started for t in made)                       # start() never used
    [start] = outcome.starts
    assert all(r.probe["window"]["start_at"] == pytest.approx(start, abs=0.001) for r in outcome.results)
