"""One window for the fleet, for real: 60 lab hosts reached ten handshakes at a time by the real
CLI, every window overlapping one common instant, and the report saying so."""

from __future__ import annotations

import os
import time

import pytest

from helpers import json_report, require_root_lab, run_cli

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
