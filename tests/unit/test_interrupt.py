"""Ctrl-C in every phase: exit 130, a report marked partial, what was measured kept, the truth told.

The CLI tests at the end run the real CLI on the local host (its own probe, without SSH) and send
it a real SIGINT. The pool and triage tests use fake transports, deliberately: a press exactly
between triage's phases, or while a report is being written, cannot be timed from outside a real
run; tests/e2e/test_interrupt_e2e.py presses Ctrl-C on real lab hosts mid-capture.
"""

from __future__ import annotations

import _thread
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace

from rstfleet.cli import build_parser
from rstfleet.inventory import Host
from rstfleet.plan import Plan
from rstfleet.probe.host.counters import read_snapshot
from rstfleet.probe.host.facts import read_uptime
from rstfleet.probe.host.main import build_document
from rstfleet.results import HostResult, Status
from rstfleet.sweep import pool, run as run_module
from rstfleet.sweep.interrupt import Interrupt
from rstfleet.sweep.pool import SweepSettings, sweep
from rstfleet.sweep.run import Outcome, report_outcome
from rstfleet.sweep.triage import Phase2, triage
from rstfleet.transport import RunResult

from helpers import ROOT

HOSTS = [Host(f"h{i}", f"192.0.2.{i}") for i in range(1, 4)]
CAPTURING = SweepSettings(window_s=5, connect_timeout_s=1, margin_s=1, forks=4,
                          probe_options=("--trace", "--capture", "5.0"))


def document(out_rsts: int = 0, stopped_early: bool = False, measured_s: float = 5.0) -> dict:
    first = read_snapshot()
    last = {"Tcp": dict(first["Tcp"], OutRsts=first["Tcp"].get("OutRsts", 0) + out_rsts),
            "TcpExt": first["TcpExt"]}
    doc = build_document(5.0, time.time(), measured_s, first, last, read_uptime())
    if stopped_early:
        doc["window"]["stopped_early"] = True
    return doc


class StoppableProbe:
    """A capture that lasts until its deadline, unless a `--stop-run` request for its run id
    arrives on another session (what probe/host/main.py does with SIGUSR1)."""

    stop_requests: dict[str, threading.Event] = {}
    lock = threading.Lock()

    def __init__(self, host: Host, honours_stop: bool = True):
        self.host, self.honours_stop = host, honours_stop

    def _event(self, run_id: str) -> threading.Event:
        with self.lock:
            return self.stop_requests.setdefault(f"{self.host.name}:{run_id}", threading.Event())

    def connect(self, deadline: float) -> None:
        """No handshake to make."""

    def run(self, argv, stdin, deadline, max_output=0) -> RunResult:
        if "--stop-run" in argv:
            self._event(argv[argv.index("--stop-run") + 1]).set()
            return RunResult(0, b"", b"")
        run_id = argv[argv.index("--run-id") + 1] if "--run-id" in argv else "none"
        stopped = self._event(run_id).wait(max(0, deadline - time.monotonic()))
        if stopped and self.honours_stop:
            return RunResult(0, json.dumps(document(7, stopped_early=True, measured_s=0.2)).encode(), b"")
        time.sleep(max(0, deadline - time.monotonic()))
        return RunResult(None, b"", b"", timed_out=True)

    def close(self) -> None:
        pass


def press_after(interrupt: Interrupt, delay_s: float, times: int = 1) -> None:
    def press():
        for _ in range(times):
            interrupt.press()
    threading.Timer(delay_s, press).start()


def test_ctrl_c_asks_capturing_probes_to_finish_early_and_keeps_what_they_send(monkeypatch):
    monkeypatch.setattr(pool, "STOP_EARLY_WAIT_S", 0.5)
    interrupt = Interrupt()
    press_after(interrupt, 0.2)
    started = time.monotonic()
    results = sweep(HOSTS[:2], lambda h: StoppableProbe(h, honours_stop=h.name == "h1"), CAPTURING,
                    interrupt=interrupt)
    took = time.monotonic() - started
    assert results[0].status == Status.OK and results[0].probe["window"]["stopped_early"]
    assert results[0].probe["tcp"]["delta"]["OutRsts"] == 7
    assert any("interrupted (Ctrl-C)" in note for note in results[0].probe["notes"])
    assert results[1].status == Status.CANCELLED        # did not answer within the wait
    assert 0.2 + 0.5 <= took < 0.2 + 0.5 + 3.0, took     # loose: loaded CI cores


def test_a_second_ctrl_c_stops_waiting_for_the_probes(monkeypatch):
    monkeypatch.setattr(pool, "STOP_EARLY_WAIT_S", 3.0)
    interrupt = Interrupt()
    press_after(interrupt, 0.2, times=2)
    started = time.monotonic()
    results = sweep(HOSTS[:2], lambda h: StoppableProbe(h, honours_stop=False), CAPTURING, interrupt=interrupt)
    assert time.monotonic() - started < 1.5
    assert [r.status for r in results] == [Status.CANCELLED, Status.CANCELLED]


def test_a_keyboard_interrupt_in_the_main_thread_cancels_unfinished_hosts_without_a_handler():
    """Library use (no ctrl_c() installed): a real KeyboardInterrupt takes the same path."""
    settings_ = SweepSettings(window_s=5, connect_timeout_s=1, margin_s=1, forks=4)
    threading.Timer(0.2, _thread.interrupt_main).start()
    started = time.monotonic()
    results = sweep(HOSTS, lambda h: StoppableProbe(h, honours_stop=False), settings_)
    assert time.monotonic() - started < 1.5
    assert {r.status for r in results} == {Status.CANCELLED}
    assert all("Ctrl-C" in r.reason for r in results)


def triage_plan(top: int = 2) -> Plan:
    args = build_parser().parse_args(["triage", "--capture", "5", "--top", str(top)])
    return Plan.from_args(dict(vars(args), triage=True), hosts=HOSTS)


def test_ctrl_c_between_the_phases_starts_no_phase_2_and_names_no_host_as_dug_into():
    interrupt, phases = Interrupt(), []

    def run_phase(hosts, settings_):
        phases.append([h.name for h in hosts])
        interrupt.press()                      # pressed as phase 1 returns
        return [HostResult(h.name, h.address, Status.OK, "", document(50)) for h in hosts]
    results, phase2 = triage(triage_plan(), run_phase, interrupt)
    assert phases == [["h1", "h2", "h3"]]
    assert phase2 == Phase2(left_out=phase2.left_out)         # nothing finished, stopped or cancelled
    assert phase2.left_out["h1"] == phase2.left_out["h2"] == "Ctrl-C before phase 2 started"
    assert "(--top 2)" in phase2.left_out["h3"]                # beyond the bound: said too
    assert [r.status for r in results] == [Status.OK] * 3


def test_ctrl_c_during_phase_2_says_per_host_what_finished_stopped_early_or_was_cancelled():
    interrupt = Interrupt()

    def run_phase(hosts, settings_):
        if settings_.window_s != 5.0 or "--capture" not in settings_.probe_options:
            return [HostResult(h.name, h.address, Status.OK, "", document(60 - i)) for i, h in enumerate(hosts)]
        interrupt.press()
        fates = {"h1": (Status.OK, document(3)), "h2": (Status.OK, document(2, stopped_early=True, measured_s=1.0)),
                 "h3": (Status.CANCELLED, None)}
        return [HostResult(h.name, h.address, fates[h.name][0], "", fates[h.name][1]) for h in hosts]
    results, phase2 = triage(triage_plan(top=3), run_phase, interrupt)
    assert phase2 == Phase2(finished=["h1"], stopped_early=["h2"], cancelled=["h3"])
    assert all(r.status == Status.OK for r in results)          # phase 1's measurement stands
    assert results[1].probe["phase2_window"]["stopped_early"]
    assert any("phase 2 (capture) interrupted" in n for n in results[2].probe["notes"])
    outcome = Outcome(results, phase2, 1.0, interrupted=True)
    assert outcome.partial
    summary = run_module.interruption_summary(outcome)
    assert "finished on h1" in summary and "stopped early" in summary and "cancelled on h3" in summary


def test_ctrl_c_while_the_reports_are_written_leaves_them_whole_and_marks_the_file_partial(monkeypatch, tmp_path):
    interrupt, real_emit = Interrupt(), run_module.emit
    out = tmp_path / "report.json"

    def emit_then_press(outputs, *args):
        real_emit(outputs, *args)
        interrupt.press()
    monkeypatch.setattr(run_module, "emit", emit_then_press)
    plan = replace(triage_plan(), outputs=replace(triage_plan().outputs, format="json", path=str(out), quiet=True))
    results = [HostResult(h.name, h.address, Status.OK, "", document(0)) for h in HOSTS]
    code = report_outcome(plan, Outcome(results, Phase2(finished=["h1"]), 1.0), interrupt)
    report = json.loads(out.read_text())
    assert code == 130 and report["exit_code"] == 130 and report["partial"] is True
    assert len(report["hosts"]) == 3


# --- the real CLI, a real SIGINT ----------------------------------------------------------------

def _sigint_as_in_a_terminal() -> None:
    """A test run from a background job inherits SIGINT ignored; a terminal delivers it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _cli(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "rstfleet", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=str(ROOT), preexec_fn=_sigint_as_in_a_terminal)


def _interrupt_when_the_probe_runs(proc: subprocess.Popen, bound_s: float = 10.0) -> float:
    """SIGINT once the local probe (a child of the CLI) is running; seconds until the CLI exits."""
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout
        if children.strip():
            break
        time.sleep(0.05)
    time.sleep(0.3)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=15)
    return time.monotonic() - started


def test_ctrl_c_during_a_sweep_exits_130_with_a_partial_report_and_the_banner(tmp_path):
    out = tmp_path / "sweep.json"
    proc = _cli("sweep", "--window", "20", "--format", "json", "-o", str(out))
    try:
        took = _interrupt_when_the_probe_runs(proc)
    finally:
        proc.kill()
    stdout, stderr = proc.communicate()
    report = json.loads(out.read_text())
    assert proc.returncode == 130, stderr
    assert report["partial"] is True and report["exit_code"] == 130
    assert [h["status"] for h in report["hosts"]] == ["cancelled"]
    assert b"PARTIAL: the run was interrupted" in stdout
    assert b"interrupted (Ctrl-C): 0 of 1 host(s) measured, 1 cancelled" in stderr
    assert took < 3, took


def test_ctrl_c_during_a_play_exits_130_and_runs_no_later_play(tmp_path):
    book = tmp_path / "two.yml"
    book.write_text("- name: first\n  hosts: all\n  window: 20\n- name: second\n  hosts: all\n  window: 1\n")
    out = tmp_path / "play.json"
    proc = _cli("run", str(book), "--format", "json", "-o", str(out))
    try:
        _interrupt_when_the_probe_runs(proc)
    finally:
        proc.kill()
    _, stderr = proc.communicate()
    assert proc.returncode == 130, stderr
    first = json.loads((tmp_path / "play-1.json").read_text())
    assert first["partial"] is True and first["exit_code"] == 130
    assert not (tmp_path / "play-2.json").exists()
    assert b"PLAY [second]" not in stderr


# --- the probe's side: --run-id and --stop-run, real processes on this machine -------------------

def _local_probe(*options: str) -> subprocess.Popen:
    from rstfleet.probe import probe_argv, probe_script_for
    argv = [sys.executable] + probe_argv(20, list(options))[1:]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdin.write(probe_script_for(tuple(options)))
    proc.stdin.close()
    proc.stdin = None
    return proc


def _stop_run(run_id: str) -> subprocess.CompletedProcess:
    from rstfleet.probe import probe_script_for
    return subprocess.run([sys.executable, "-I", "-B", "-", "--stop-run", run_id], input=probe_script_for(()),
                          capture_output=True, timeout=10)


def test_stop_run_makes_only_the_probes_of_its_run_finish_early_with_their_document():
    mine, other = _local_probe("--run-id", "ab12"), _local_probe("--run-id", "cd34")
    # The same argv pair in a process that is not this python (as `sudo … --run-id ab12` is):
    # left alone (SIGUSR1 would end a shell).
    decoy = subprocess.Popen(["sh", "-c", "sleep 20; :", "decoy", "--run-id", "ab12"])
    try:
        time.sleep(0.8)
        started = time.monotonic()
        asked = _stop_run("ab12")
        out, _ = mine.communicate(timeout=5)
        took = time.monotonic() - started
        assert asked.returncode == 0 and b"asked 1 probe(s)" in asked.stderr, asked.stderr
        assert mine.returncode == 0 and took < 4.0, took     # its window was 20 s
        document = json.loads(out)
        assert document["window"]["stopped_early"] is True and document["window"]["measured_s"] < 5
        assert other.poll() is None and decoy.poll() is None
        assert _stop_run("ef56").returncode == 3        # nobody of that run here
    finally:
        for proc in (mine, other, decoy):
            proc.kill()
            proc.communicate()
