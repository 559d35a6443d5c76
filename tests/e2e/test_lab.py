"""End-to-end tests of the network-namespace lab fleet (root and /usr/sbin/sshd required).

Each run uses its own lab names (pid-based), so two runs of this module can share the machine.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import paramiko
import pytest
import yaml

from rstfleet_lab import cli as lab_cli
from rstfleet_lab import fleet as labmod
from rstfleet_lab import Lab, LabError, inject_closed_port, inject_port_scan, lab_context

pytestmark = pytest.mark.lab


def _lab_name(prefix: str) -> str:
    pid, digits = os.getpid(), ""
    while pid:
        pid, d = divmod(pid, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[d] + digits
    return f"{prefix}{digits}"[:8]


NAME = _lab_name("tl")


def _require_root_and_sshd() -> None:
    if os.geteuid() != 0:
        pytest.fail("lab tests need root (network namespaces, bridge, sshd): run pytest as root")
    if not os.access("/usr/sbin/sshd", os.X_OK):
        pytest.fail("lab tests need /usr/sbin/sshd: apt-get install openssh-server")


@pytest.fixture(scope="module")
def lab():
    _require_root_and_sshd()
    with lab_context(3, NAME) as created:
        yield created


def out_rsts(lab: Lab, host) -> int:
    """``Tcp: OutRsts`` of one host, parsed by header name."""
    text = lab.run_in(host, ["cat", "/proc/net/snmp"], check=True).stdout
    header, values = (line.split() for line in text.splitlines() if line.startswith("Tcp:"))
    return int(dict(zip(header, values))["OutRsts"])


def known_hosts(lab: Lab) -> dict[str, str]:
    lines = lab.known_hosts_path.read_text().splitlines()
    return {addr: key for addr, key in (line.split(" ", 1) for line in lines)}


def presented_key(address: str) -> str:
    with socket.create_connection((address, 22), timeout=5) as sock:
        transport = paramiko.Transport(sock)
        try:
            transport.start_client(timeout=10)
            key = transport.get_remote_server_key()
            return f"{key.get_name()} {key.get_base64()}"
        finally:
            transport.close()


def ssh(lab: Lab, address: str, command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ssh", "-F", "/dev/null", "-i", str(lab.key_path), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
         "-o", f"UserKnownHostsFile={lab.known_hosts_path}", "-o", "StrictHostKeyChecking=yes",
         "-o", "ConnectTimeout=5", f"root@{address}", command],
        capture_output=True, text=True, timeout=30)


def test_closed_port_injection_raises_only_the_target_hosts_outrsts_by_the_attempts(lab):
    h1, h2 = lab.hosts[0], lab.hosts[1]
    before1, before2 = out_rsts(lab, h1), out_rsts(lab, h2)
    with inject_closed_port(h1.address, rate=50, duration=2) as injector:
        attempts = injector.wait()
    assert attempts == 100 and injector.result["refused"] == 100
    assert abs(out_rsts(lab, h1) - before1 - attempts) <= 2
    assert out_rsts(lab, h2) - before2 <= 2


def test_injection_from_another_lab_host_counts_at_the_target_not_the_source(lab):
    h1, h3 = lab.hosts[0], lab.hosts[2]
    before1, before3 = out_rsts(lab, h1), out_rsts(lab, h3)
    injector = inject_port_scan(h1.address, range(1000, 1010), rate=200, duration=0.25,
                                source_namespace=h3.namespace)
    assert injector.wait() == 50
    assert abs(out_rsts(lab, h1) - before1 - 50) <= 2
    assert out_rsts(lab, h3) - before3 <= 2


def test_injection_refuses_targets_outside_the_lab_range():
    for address in ("192.0.2.1", "198.51.100.1", "203.0.113.1", "198.20.0.1", "2001:db8::1", "::1", "lab"):
        with pytest.raises(ValueError):
            inject_closed_port(address, rate=1, duration=1)


def test_stopped_injection_reports_the_attempts_made_so_far(lab):
    injector = inject_closed_port(lab.hosts[1].address, rate=20, duration=30)
    with injector:
        pass  # leaving the block stops it
    assert injector.result["stopped"] and injector.wait() < 20


def test_up_gives_each_host_its_namespace_address_and_inventory_entry(lab):
    assert [h.name for h in lab.hosts] == ["h01", "h02", "h03"]
    assert lab.gateway == str(labmod.LAB_NETWORK.network_address + lab.index * 1024 + 1)
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    for i, host in enumerate(lab.hosts, 1):
        assert host.namespace == f"rf{lab.index}-h{i}" and host.namespace in listed
        addrs = subprocess.run(["ip", "-n", host.namespace, "-4", "-o", "addr", "show", "dev", "eth0"],
                               capture_output=True, text=True).stdout
        assert f"{host.address}/22" in addrs
    inventory = yaml.safe_load(lab.inventory_path.read_text())["lab"]
    assert {n: v["ansible_host"] for n, v in inventory["hosts"].items()} == {h.name: h.address for h in lab.hosts}
    assert inventory["vars"]["ansible_ssh_private_key_file"] == str(lab.key_path)
    assert str(lab.known_hosts_path) in inventory["vars"]["ansible_ssh_common_args"]
    assert labmod.load(NAME) == lab


def test_each_sshd_presents_the_key_recorded_in_known_hosts(lab):
    recorded = known_hosts(lab)
    for host in lab.hosts:
        assert presented_key(host.address) == recorded[host.address]
    assert len(set(recorded.values())) == len(lab.hosts)  # one key per host


def test_ssh_session_runs_system_python_with_the_hosts_own_counters(lab):
    proc = ssh(lab, lab.hosts[0].address,
               "command -v python3; readlink -f $(command -v python3); cat /proc/net/snmp | head -2")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "/usr/bin/python3"  # root's ~/.bashrc (pyenv) was not read
    assert lines[1].startswith("/usr/bin/python3") and lines[2].startswith("Ip: Forwarding")


def test_status_reports_every_host_up(lab, capsys):
    st = labmod.status(NAME)
    assert st["index"] == lab.index and st["bridge_exists"]
    assert all(h["namespace_exists"] and h["sshd_running"] and h["port22_open"] for h in st["hosts"])
    assert lab_cli.main(["status", "--name", NAME]) == 0
    assert "h03" in capsys.readouterr().out


def test_stop_sshd_makes_port_22_refuse_and_start_sshd_brings_it_back(lab):
    host = lab.hosts[2]
    lab.stop_sshd(host)
    try:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((host.address, 22), timeout=2).close()
        assert not labmod.status(NAME)["hosts"][2]["sshd_running"]
    finally:
        lab.start_sshd(host)
    assert presented_key(host.address) == known_hosts(lab)[host.address]


def test_regenerated_host_key_differs_from_known_hosts(lab):
    host = lab.hosts[2]
    old = known_hosts(lab)[host.address]
    lab.regenerate_host_key(host)
    assert known_hosts(lab)[host.address] == old
    assert presented_key(host.address) != old
    proc = ssh(lab, host.address, "true")
    assert proc.returncode != 0 and "IDENTIFICATION HAS CHANGED" in proc.stderr


def test_up_refuses_an_existing_lab_name(lab):
    with pytest.raises(LabError, match="already exists"):
        labmod.up(1, NAME)
    assert labmod.status(NAME)["hosts"][0]["port22_open"]  # the refusal did not touch the lab


def test_second_lab_gets_its_own_index_and_subnet_and_down_removes_everything(lab):
    name = _lab_name("t2")
    other = labmod.up(2, name)
    try:
        assert other.index != lab.index and other.bridge != lab.bridge
        assert other.hosts[0].address.split(".")[:3] != lab.hosts[0].address.split(".")[:3]
        assert presented_key(other.hosts[1].address) == known_hosts(other)[other.hosts[1].address]
    finally:
        labmod.down(name)
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    assert not [h for h in other.hosts if h.namespace in listed]
    assert f" {other.bridge}:" not in links and f"rf{other.index}v" not in links
    assert not other.state_dir.exists()
    assert subprocess.run(["pgrep", "-f", str(other.state_dir)], capture_output=True).returncode == 1
    labmod.down(name)  # already gone: no error


def test_lab_context_removes_the_lab_when_the_body_fails():
    _require_root_and_sshd()
    name = _lab_name("t3")
    with pytest.raises(RuntimeError, match="boom"):
        with lab_context(1, name) as created:
            raise RuntimeError("boom")
    assert not created.state_dir.exists()
    assert not Path(f"/run/netns/{created.hosts[0].namespace}").exists()
