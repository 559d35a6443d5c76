"""The pool's accounting: one result per host, whatever each host's transport does.

The transports here are fakes held in memory, because these tests are about the pool (bounds,
deadlines, statuses), not about SSH; tests/e2e drives the real transports against the lab.
"""

import json
import threading
import time

import pytest

from rstfleet.inventory import Host
from rstfleet.probe.host.counters import read_snapshot
from rstfleet.probe.host.facts import read_uptime
from rstfleet.probe.host.main import build_document
from rstfleet.results import Status
from rstfleet.sweep import pool
from rstfleet.sweep.pool import SweepSettings, sweep
from rstfleet.sweep.probe_run import classify
from rstfleet.transport import RunResult, TransportError

FAST = SweepSettings(window_s=0.05, forks=4, connect_timeout_s=0.05, margin_s=0.05)


def probe_stdout() -> bytes:
    """A real probe document of this machine, over a window of zero."""
    snapshot = read_snapshot()
    return json.dumps(build_document(0.0, time.time(), 0.0, snapshot, snapshot, read_uptime())).encode()


class FakeTransport:
    """Answers run() from a function of the host; counts how many runs are in flight."""

    in_flight = 0
    most_in_flight = 0
    lock = threading.Lock()

    def __init__(self, host, answer):
        self.host, self.answer, self.closed = host, answer, 0

    def connect(self, deadline):
        """No handshake to make: run() is what these tests time."""

    def run(self, argv, stdin, deadline, max_output=0):
        with FakeTransport.lock:
            FakeTransport.in_flight += 1
            FakeTransport.most_in_flight = max(FakeTransport.most_in_flight, FakeTransport.in_flight)
        try:
            return self.answer(self.host)
        finally:
            with FakeTransport.lock:
                FakeTransport.in_flight -= 1

    def close(self):
        self.closed += 1


def ok_answer(host):
    return RunResult(0, OK_STDOUT, b"")


OK_STDOUT = probe_stdout()
HOSTS = [Host(f"h{i}", f"192.0.2.{i}") for i in range(1, 9)]


def test_every_host_gets_exactly_one_result_in_inventory_order():
    results = sweep(HOSTS, lambda h: FakeTransport(h, ok_answer), FAST)
    assert [r.host for r in results] == [h.name for h in HOSTS]
    assert {r.status for r in results} == {Status.OK}
    assert all(r.probe["kind"] == "rstfleet-probe" for r in results)


def test_a_transport_that_cannot_be_made_gives_its_host_that_status_and_the_rest_still_run():
    def transport_for(host):
        if host.name == "h2":
            raise TransportError(Status.AUTH_FAILED, "refused authentication")
        return FakeTransport(host, ok_answer)
    results = {r.host: r for r in sweep(HOSTS, transport_for, FAST)}
    assert (results["h2"].status, results["h2"].reason) == (Status.AUTH_FAILED, "refused authentication")
    assert all(r.status == Status.OK for name, r in results.items() if name != "h2")


def test_an_unexpected_exception_in_run_is_an_internal_probe_error_and_the_session_is_closed():
    made = []

    def transport_for(host):
        made.append(FakeTransport(host, lambda h: {}["boom"]))
        return made[-1]
    [result] = sweep(HOSTS[:1], transport_for, FAST)
    assert result.status == Status.PROBE_ERROR
    assert "internal error" in result.reason and "KeyError" in result.reason
    assert made[0].closed == 1


@pytest.fixture
def release():
    """Lets hung fake runs return at the end of a test, so no thread outlives it for long."""
    event = threading.Event()
    yield event
    event.set()


def sweep_in_background(hosts, transport_for, settings):
    box = []
    thread = threading.Thread(target=lambda: box.append(sweep(hosts, transport_for, settings)),
                              daemon=True)
    thread.start()
    return thread, box


def test_a_sweep_whose_last_host_hangs_returns_after_budget_plus_grace(monkeypatch, release):
    monkeypatch.setattr(pool, "STUCK_THREAD_GRACE_S", 0.1)

    def hang(host):
        release.wait(10)
        return RunResult(0, OK_STDOUT, b"")
    thread, box = sweep_in_background(HOSTS[:1], lambda h: FakeTransport(h, hang), FAST)
    thread.join(1.0)
    assert box, "sweep() still waiting 1 s after the host's budget + grace"
    assert box[0][0].status == Status.TIMEOUT


def test_hosts_queued_behind_a_stuck_run_still_get_a_result(monkeypatch, release):
    monkeypatch.setattr(pool, "STUCK_THREAD_GRACE_S", 0.1)

    def hang(host):
        if host.name == "h1":
            release.wait(10)
        return RunResult(0, OK_STDOUT, b"")
    settings = SweepSettings(window_s=0.05, forks=1, connect_timeout_s=0.05, margin_s=0.05)
    thread, _ = sweep_in_background(HOSTS[:2], lambda h: FakeTransport(h, hang), settings)
    thread.join(1.0)
    assert not thread.is_alive(), "sweep() still waiting 1 s after h1's deadline"


def test_a_transport_factory_that_crashes_gives_an_internal_error_not_a_lost_host(monkeypatch):
    monkeypatch.setattr(pool, "STUCK_THREAD_GRACE_S", 0.1)

    def transport_for(host):
        if host.name == "h1":
            raise ValueError("bad Port in ~/.ssh/config")
        return FakeTransport(host, ok_answer)
    settings = SweepSettings(window_s=0.05, forks=1, connect_timeout_s=0.05, margin_s=0.05)
    thread, box = sweep_in_background(HOSTS[:2], transport_for, settings)
    thread.join(1.0)
    assert box, "sweep() did not return"
    assert box[0][0].status == Status.PROBE_ERROR and "internal error" in box[0][0].reason
    assert box[0][1].status == Status.OK


@pytest.mark.parametrize("run, status, words", [
    (RunResult(None, b"", b"", timed_out=True), Status.TIMEOUT, "deadline"),
    (RunResult(0, b"{}", b"", truncated=True), Status.PROBE_ERROR, "--max-output"),
    (RunResult(1, b"", b"sudo: a password is required\n"), Status.BECOME_FAILED, "-K"),
    (RunResult(1, b"", b"sudo: a terminal is required to read the password\n"), Status.BECOME_FAILED, "-K"),
    (RunResult(1, b"", b"sudo: 1 incorrect password attempt\n"), Status.BECOME_FAILED, "rejected"),
    (RunResult(127, b"", b"bash: python3: command not found\n"), Status.NO_PYTHON, "python3"),
    (RunResult(None, b"", b""), Status.UNREACHABLE, "connection lost"),
    (RunResult(-1, b"", b""), Status.PROBE_ERROR, "killed"),
    (RunResult(0, b"not json", b""), Status.PROBE_ERROR, "not JSON"),
    (RunResult(0, b"", b""), Status.PROBE_ERROR, "printed nothing"),
    (RunResult(2, b"", b"rstprobe: unknown option\n"), Status.PROBE_ERROR, "exited with 2"),
])
def test_a_finished_run_is_classified_with_a_reason(run, status, words):
    got, reason, probe = classify(run, SweepSettings())
    assert (got, probe) == (status, None)
    assert words in reason


def test_a_valid_probe_document_is_ok_and_returned():
    status, reason, probe = classify(RunResult(0, OK_STDOUT, b""), SweepSettings())
    assert (status, reason) == (Status.OK, "")
    assert probe["window"]["measured_s"] == 0.0
    assert "OutRsts" in probe["tcp"]["delta"]


def test_a_timeout_reason_names_the_hosts_whole_budget():
    _, reason, _ = classify(RunResult(None, b"", b"", timed_out=True), FAST)
    assert f"{FAST.host_budget_s:.0f} s" in reason
