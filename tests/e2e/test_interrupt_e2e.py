"""Ctrl-C and a killed orchestrator: the run stops cleanly and the hosts clean themselves up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import ROOT, wait_until_clean

pytestmark = pytest.mark.lab


def _sigint_as_in_a_terminal() -> None:
    """A test run started as a background job inherits SIGINT ignored (POSIX shells do that), and
    so would the CLI; a person's terminal delivers it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_sweep(lab, out, *extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "rstfleet", "sweep", "-i", str(lab.inventory_path),
                             "--format", "json", "-o", str(out), "-q", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=str(ROOT),
                            preexec_fn=_sigint_as_in_a_terminal)


def _wait_for_probes(lab, n, bound=10.0):
    from helpers import lab_leftovers
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if len([p for p in lab_leftovers(lab) if "--window" in p]) >= n:
            return
        time.sleep(0.05)
    pytest.fail(f"probes did not start on {n} hosts within {bound} s")


def test_ctrl_c_gives_a_partial_report_and_every_probe_stops(lab5, tmp_path):
    out = tmp_path / "partial.json"
    proc = _start_sweep(lab5, out, "--window", "20")
    try:
        _wait_for_probes(lab5, 5)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)
        stop_s = time.monotonic() - started
    finally:
        proc.kill()
    report = json.loads(out.read_text())
    assert proc.returncode == 130
    assert report["partial"] is True and report["exit_code"] == 130
    assert {h["status"] for h in report["hosts"]} == {"cancelled"}
    assert all("Ctrl-C" in h["reason"] for h in report["hosts"])
    assert stop_s < 5, stop_s
    assert wait_until_clean(lab5, 3.0) == []


def test_sigkilled_orchestrator_leaves_no_probe_running(lab5, tmp_path):
    proc = _start_sweep(lab5, tmp_path / "never.json", "--window", "30")
    try:
        _wait_for_probes(lab5, 5)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=5)
    finally:
        proc.kill()
    # Each probe notices its SSH session is gone (stdout reader closed) and stops itself:
    # bounded at a 0.5 s poll, far inside its own hard bound of window + 30 s.
    assert wait_until_clean(lab5, 3.0) == []
    assert not (tmp_path / "never.json").exists()


def _rstfleet_trace_instances() -> list[str]:
    """tracefs instances are kernel-wide: list them from a private mount of tracefs."""
    proc = subprocess.run(["unshare", "-m", "sh", "-c",
                           "mount -t tracefs nodev /sys/kernel/tracing && ls /sys/kernel/tracing/instances"],
                          capture_output=True, text=True, timeout=10)
    assert proc.returncode == 0, proc.stderr
    return [name for name in proc.stdout.split() if name.startswith("rstfleet-")]


def test_sigkilled_orchestrator_mid_capture_leaves_no_tcpdump_probe_or_trace_instance(lab5, tmp_path):
    """The host side must not trust the orchestrator: within a stated bound (3 s: the capture
    watchdog polls every second) the probe stops tcpdump, removes its tracefs instance and exits."""
    from helpers import lab_leftovers
    before = set(_rstfleet_trace_instances())
    proc = _start_sweep(lab5, tmp_path / "never.json", "--capture", "30", "--run-dir", str(tmp_path / "runs"))
    try:
        deadline = time.monotonic() + 15
        while sum("tcpdump" in p for p in lab_leftovers(lab5)) < 5:
            if time.monotonic() > deadline:
                pytest.fail("captures did not start on all 5 hosts: " + str(lab_leftovers(lab5)))
            time.sleep(0.1)
        assert len(set(_rstfleet_trace_instances()) - before) >= 5     # the tracepoint tier is on
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=5)
    finally:
        proc.kill()
    assert wait_until_clean(lab5, 3.0) == []
    assert set(_rstfleet_trace_instances()) - before == set()
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.pcap"))


def _tcpdump_count(pcap: str) -> int:
    """tcpdump itself reads the kept capture back (the oracle for 'packets kept')."""
    done = subprocess.run(["tcpdump", "-r", pcap, "-n"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return len(done.stdout.splitlines())


def test_ctrl_c_during_triage_phase_2_keeps_the_packets_so_far_and_says_so(lab5, tmp_path):
    """Resets injected on two hosts make them phase 2's; Ctrl-C a few seconds into their 30 s
    captures: the probes are asked to finish early (≤ 3 s), their packets come back and are
    stored, the report is partial and names no host as having finished phase 2."""
    from helpers import lab_leftovers
    from rstfleet_lab import inject_closed_port
    out, runs = tmp_path / "triage.json", tmp_path / "runs"
    loud = [lab5.hosts[1], lab5.hosts[3]]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with inject_closed_port(loud[0].address, rate=20, duration=25), \
            inject_closed_port(loud[1].address, rate=20, duration=25):
        proc = subprocess.Popen(
            [sys.executable, "-m", "rstfleet", "triage", "-i", str(lab5.inventory_path), "--window", "2",
             "--capture", "30", "--top", "2", "--format", "json", "-o", str(out), "--run-dir", str(runs), "-q"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=str(ROOT),
            preexec_fn=_sigint_as_in_a_terminal)
        try:
            deadline = time.monotonic() + 30
            while sum("tcpdump" in p for p in lab_leftovers(lab5)) < 2:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("phase 2 captures did not start: " + str(lab_leftovers(lab5)))
                time.sleep(0.1)
            time.sleep(3)                                 # packets accumulate in the captures
            started = time.monotonic()
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=20)
            stop_s = time.monotonic() - started
        finally:
            proc.kill()
    report = json.loads(out.read_text())
    assert proc.returncode == 130, stderr
    assert report["partial"] is True and report["exit_code"] == 130
    assert report["phase2_hosts"] == []                  # none finished its 30 s
    assert stop_s < 6, stop_s                            # 0.2 s to notice + ≤ 3 s for the probes + the report
    hosts = {h["host"]: h for h in report["hosts"]}
    for host in loud:
        entry = hosts[host.name]
        assert entry["status"] == "ok"                   # phase 1 measured it
        capture = entry["probe"]["capture"]
        assert capture["stopped_by"] == "stop_request", capture
        assert entry["probe"]["phase2_window"]["stopped_early"] is True
        assert 2 < entry["probe"]["phase2_window"]["measured_s"] < 15
        assert capture["packets_hint"] > 0
        assert _tcpdump_count(capture["path"]) == capture["packets_hint"]
        assert any(note.startswith("phase 2: interrupted (Ctrl-C) after") for note in entry["evidence"]["notes"])
        assert "capture" in entry["evidence"]["evidence_used"]    # the packets were analysed
    assert "phase 2 stopped early, the packets so far kept, on" in stderr.decode(), stderr
    assert wait_until_clean(lab5, 3.0) == []
