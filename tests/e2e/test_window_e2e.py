"""One window for the fleet, for real: 60 lab hosts reached ten handshakes at a time by the real
CLI, every probe started at its handshake and waiting for the go, every window starting within
half a second of the others, and the report saying so; a probe that never gets its go leaves
nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import ROOT, json_report, lab_leftovers, require_root_lab, run_cli, wait_until_clean

pytestmark = pytest.mark.lab

HOSTS = 60
WINDOW = 5.0


@pytest.fixture(scope="module")
def lab60():
    require_root_lab()
    from rstfleet_lab import lab_context
    with lab_context(HOSTS, "w" + str(os.getpid() % 10000)) as lab:
        yield lab


def test_sixty_hosts_ten_handshakes_at_a_time_are_measured_in_one_window(lab60, tmp_path):
    out = tmp_path / "window.json"
    started = time.monotonic()
    proc = run_cli("sweep", "-i", str(lab60.inventory_path), "--forks", "10", "--window", str(WINDOW),
                   "--format", "json", "-o", str(out))
    wall = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr.decode()
    report = json_report(out)
    assert {h["status"] for h in report["hosts"]} == {"ok"}
    windows = [(h["probe"]["window"]["started_at"], h["probe"]["window"]["measured_s"]) for h in report["hosts"]]
    common_start = {h["probe"]["window"]["start_at"] for h in report["hosts"]}
    assert len(common_start) == 1                       # every probe was given the same start
    assert max(s for s, _ in windows) < min(s + m for s, m in windows)   # one instant in every window
    # Started at their handshakes, the probes only wait for the go: no exec burst at the start.
    assert max(s for s, _ in windows) - min(s for s, _ in windows) < 0.5, sorted(s for s, _ in windows)
    fleet_window = report["fleet_window"]
    assert (fleet_window["hosts_measured"], fleet_window["overlap"], fleet_window["groups"]) == (HOSTS, True, 1)
    assert fleet_window["start_spread_s"] == pytest.approx(max(s for s, _ in windows) - min(s for s, _ in windows),
                                                           abs=0.002)
    # Six waves of handshakes, one window: not six windows one after another.
    assert wall < 2 * WINDOW + 10, wall
    assert "one window: 60 hosts measured" in proc.stdout.decode()
    # Lab hosts share this machine's kernel: the default sweep does not trace them (--trace-auto).
    assert not any("trace" in h["probe"] for h in report["hosts"])


def test_the_default_sweep_traces_a_host_whose_kernel_is_its_own(tmp_path):
    """This machine, swept locally as root from its first network namespace: a real host."""
    out = tmp_path / "local.json"
    proc = run_cli("sweep", "--window", "0.5", "--format", "json", "-o", str(out), "-q")
    assert proc.returncode in (0, 4), proc.stderr.decode()
    [host] = json_report(out)["hosts"]
    assert host["probe"]["trace"]["available"] is True, host["probe"].get("trace")
    assert host["probe"]["trace"]["errors"] == []


def test_probes_left_without_a_go_exit_and_leave_nothing_behind(lab60, tmp_path):
    """One handshake at a time, so the go cannot come before the sixtieth: the orchestrator is
    SIGKILLed once a few probes wait for theirs. Each sees its stdin end and exits at once."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "rstfleet", "sweep", "-i", str(lab60.inventory_path),
                             "--forks", "1", "--window", "30", "--format", "json", "-o", str(tmp_path / "never.json"),
                             "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=str(ROOT))
    try:
        deadline = time.monotonic() + 60
        while sum("<go reader>" in p for p in lab_leftovers(lab60)) < 3:
            assert proc.poll() is None and time.monotonic() < deadline, lab_leftovers(lab60)
            time.sleep(0.05)
        waiting = [p for p in lab_leftovers(lab60) if "<go reader>" in p]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=5)
    finally:
        proc.kill()
    assert len(waiting) < HOSTS              # killed before the last handshake: before the go
    assert wait_until_clean(lab60, 3.0) == []
    assert not (tmp_path / "never.json").exists()
