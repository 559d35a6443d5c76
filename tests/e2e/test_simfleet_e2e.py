"""The simulated fleet (rstfleet_lab/simfleet.py) swept by the real CLI, with either SSH engine:
every healthy host measured at its modelled rate and ranked by it, every broken host with the
status its fault calls for, and nothing of the simulator left running or listening afterwards,
even when the process that started it is killed with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import ROOT, hosts_by_name, json_report, run_cli
from rstfleet_lab.simfleet import simfleet_context

WINDOW = 3.0
SCENARIO = {"hosts": 200, "seed": 13, "first_address": "127.3.0.1", "port": 2222,
            "spiking": {"count": 8}, "broken": {"auth_refused": 3, "unknown_key": 3, "slow_banner": 2}}
EXPECTED_STATUS = {"ok": "ok", "auth_refused": "auth_failed", "unknown_key": "host_key_rejected",
                   "slow_banner": "timeout"}


def listening_on(addresses: set[str]) -> list[str]:
    """`ss -ltnH` (the kernel's own listing) lines for any of these addresses."""
    out = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if any(f" {a}:" in line for a in addresses)]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"


@pytest.fixture(scope="module")
def fleet():
    with simfleet_context(SCENARIO, lifetime_s=300) as running:
        yield running
    assert not listening_on({h.address for h in running.hosts})


@pytest.mark.parametrize("engine", ["paramiko", "asyncssh"])
def test_every_simulated_host_gets_its_modelled_status_rate_and_rank(fleet, tmp_path, engine):
    out = tmp_path / "report.json"
    proc = run_cli("sweep", "-i", str(fleet.inventory_path), "--window", str(WINDOW), "-f", "200",
                   "--connect-timeout", "4", "--ssh-engine", engine, "--format", "json", "-o", str(out),
                   "--fail-on", "never", timeout=180)
    assert proc.returncode == 8, proc.stderr.decode()[-2000:]      # 8: hosts not checked (the broken)
    report = json_report(out)
    hosts = hosts_by_name(report)
    assert len(hosts) == 200
    for sim in fleet.hosts:
        assert hosts[sim.name]["status"] == EXPECTED_STATUS[sim.kind], (sim, hosts[sim.name]["reason"])
    ranked = [h for h in report["hosts"] if h["rank"] is not None]
    assert len(ranked) == 200 - 8
    for entry in ranked:
        sim = fleet.host(entry["host"])
        window = entry["window_s"]
        # The counters advance by the modelled rate over the real window, read as whole resets.
        assert abs(entry["resets_sent_per_s"] - sim.rate) <= 1.0 / window + 0.01, (entry["host"], sim.rate)
        assert entry["spike"] == sim.spiking
    spiking = {h.name for h in fleet.hosts if h.spiking and h.kind == "ok"}
    assert {h["host"] for h in ranked[:len(spiking)]} == spiking
    modelled = [fleet.host(h["host"]).rate for h in ranked]
    for better, worse in zip(modelled, modelled[1:]):
        assert better >= worse - 2.0 / WINDOW - 0.02        # ranked by the modelled rate


def test_the_shell_probe_reads_the_modelled_counters(fleet, tmp_path):
    out = tmp_path / "report.json"
    proc = run_cli("sweep", "-i", str(fleet.inventory_path), "--window", "2", "-f", "200", "-l", "sim0000*",
                   "--host-probe", "shell", "--format", "json", "-o", str(out), "--fail-on", "never")
    assert proc.returncode in (0, 8), proc.stderr.decode()[-2000:]
    for name, entry in hosts_by_name(json_report(out)).items():
        sim = fleet.host(name)
        assert entry["status"] == EXPECTED_STATUS[sim.kind], entry["reason"]
        if sim.kind == "ok":
            assert entry["probe"]["facts"]["probe"] == "shell"
            assert abs(entry["resets_sent_per_s"] - sim.rate) <= 1.0 / entry["window_s"] + 0.05


def test_a_killed_parent_leaves_nothing_listening(tmp_path):
    """SIGKILL gives no finally and no atexit: the workers must notice their stdin closing, and
    take the fleet's private keys with them."""
    scenario = dict(SCENARIO, hosts=20, first_address="127.4.0.1", spiking={"count": 1}, broken={})
    starter = subprocess.Popen(
        [sys.executable, "-c", "import json, sys, time\n"
         "from rstfleet_lab.simfleet import start\n"
         f"fleet = start(json.loads({json.dumps(json.dumps(scenario))}), lifetime_s=120)\n"
         "print(json.dumps([fleet.pids(), str(fleet.workdir)]), flush=True)\n"
         "time.sleep(120)\n"], stdout=subprocess.PIPE, text=True, cwd=str(ROOT),
        env=dict(os.environ, PYTHONPATH=str(ROOT)))
    pids, workdir = json.loads(starter.stdout.readline())
    addresses = {f"127.4.0.{i}" for i in range(1, 21)}
    assert len(listening_on(addresses)) == 20
    starter.send_signal(signal.SIGKILL)
    starter.wait()
    end = time.monotonic() + 10
    while time.monotonic() < end and (any(alive(p) for p in pids) or listening_on(addresses)):
        time.sleep(0.2)
    assert not [p for p in pids if alive(p)]
    assert not listening_on(addresses)
    assert not os.path.exists(workdir)             # keys and plan removed by the last worker


@pytest.mark.parametrize("engine", ["paramiko", "asyncssh"])
def test_host_keys_are_checked_as_openssh_checks_them(fleet, tmp_path, engine):
    """A changed key is refused even with --accept-new-host-keys; an unknown one is recorded, and
    the next sweep verifies against what was recorded."""
    ok_hosts = [h for h in fleet.hosts if h.kind == "ok"][:2]
    unknown = [h for h in fleet.hosts if h.kind == "unknown_key"]
    lines = fleet.known_hosts_path.read_text().splitlines()
    first, second = (next(l for l in lines if l.startswith(f"[{h.address}]:")) for h in ok_hosts)
    known = tmp_path / "known_hosts"
    known.write_text("\n".join(l if l != first else first.split()[0] + " " + " ".join(second.split()[1:])
                               for l in lines) + "\n")
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(fleet.inventory_path.read_text().replace(str(fleet.known_hosts_path), str(known)))
    limit = ":".join(h.name for h in [ok_hosts[0]] + unknown)
    out = tmp_path / "r.json"
    sweep = ("sweep", "-i", str(inventory), "-l", limit, "--window", "1", "--ssh-engine", engine,
             "--format", "json", "-o", str(out), "--fail-on", "never")
    run_cli(*sweep, "--accept-new-host-keys")
    hosts = hosts_by_name(json_report(out))
    assert hosts[ok_hosts[0].name]["status"] == "host_key_rejected"
    assert "CHANGED" in hosts[ok_hosts[0].name]["reason"]
    assert all(hosts[h.name]["status"] == "ok" for h in unknown), [hosts[h.name]["reason"] for h in unknown]
    recorded = known.read_text()
    assert all(f"[{h.address}]:2222 ssh-ed25519 " in recorded for h in unknown)
    run_cli(*sweep)
    assert all(hosts_by_name(json_report(out))[h.name]["status"] == "ok" for h in unknown)
