"""The shell probe on real lab hosts: a host without python3 is still measured, `--host-probe shell`
measures what the Python probe measures, and a killed orchestrator leaves no shell probe behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import ROOT, hosts_by_name, json_report, run_cli, wait_until_clean
from rstfleet_lab import inject_closed_port

pytestmark = pytest.mark.lab
RATE = 40.0


def test_a_host_without_python3_is_measured_by_the_shell_probe(lab5, tmp_path):
    lab5.set_faults("h02", hide=("/usr/bin/python3",))      # a minimal image: no python3
    try:
        out = tmp_path / "r.json"
        with inject_closed_port(lab5.host("h02").address, RATE, duration=8):
            time.sleep(0.5)
            proc = run_cli("sweep", "-i", str(lab5.inventory_path), "--window", "3", "--format", "json",
                           "-o", str(out), "-q")
        hosts = hosts_by_name(json_report(out))
    finally:
        lab5.clear_faults("h02")
    h02 = hosts["h02"]
    assert h02["status"] == "ok", h02["reason"]
    assert proc.returncode in (0, 4), proc.stderr
    assert any("shell probe" in note for note in h02["probe"]["notes"])
    assert abs(h02["resets_sent_per_s"] - RATE) <= 0.2 * RATE
    assert hosts["h01"]["probe"]["facts"].get("probe") != "shell"


def test_the_shell_probe_measures_what_the_python_probe_measures(lab5, tmp_path):
    rates = {}
    for engine in ("python", "shell"):
        out = tmp_path / f"{engine}.json"
        with inject_closed_port(lab5.host("h03").address, RATE, duration=7):
            time.sleep(0.5)
            proc = run_cli("sweep", "-i", str(lab5.inventory_path), "--window", "3", "--host-probe", engine,
                           "--format", "json", "-o", str(out), "-q")
        assert proc.returncode in (0, 4), proc.stderr
        hosts = hosts_by_name(json_report(out))
        assert all(h["status"] == "ok" for h in hosts.values())
        rates[engine] = hosts["h03"]["resets_sent_per_s"]
        assert hosts["h01"]["resets_sent_per_s"] < 1
    assert abs(rates["shell"] - RATE) <= 0.2 * RATE and abs(rates["python"] - RATE) <= 0.2 * RATE, rates


def test_a_sigkilled_orchestrator_leaves_no_shell_probe_running(lab5, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "rstfleet", "sweep", "-i", str(lab5.inventory_path),
                             "--host-probe", "shell", "--window", "30", "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=str(ROOT))
    try:
        deadline = time.monotonic() + 10
        from helpers import lab_leftovers
        while time.monotonic() < deadline and len([p for p in lab_leftovers(lab5) if "rstfleet-shell" in p]) < 5:
            time.sleep(0.05)
        assert len([p for p in lab_leftovers(lab5) if "rstfleet-shell" in p]) >= 5   # a pipeline may fork a subshell
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=5)
    finally:
        proc.kill()
    assert wait_until_clean(lab5, 3.0) == []
