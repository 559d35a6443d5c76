"""Bastions for real: lab hosts on a subnet only the bastion reaches, swept through SSH channels of
the bastion (ProxyJump, chains of jumps) or through a local ssh that never prompts (ProxyCommand).
The bastion's own TCP counters (PassiveOpens: connections it accepted) prove the sharing."""

from __future__ import annotations

import errno
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import time

import pytest

from rstfleet.inventory import load_inventory
from rstfleet.sweep.pool import SweepSettings, sweep
from rstfleet.transport import SSHSettings
from rstfleet.transport.jump import JumpPool
from rstfleet.transport.ssh import SSHTransport
from rstfleet.transport.ssh_config import load_client_config
from rstfleet_lab import inject_closed_port, lab_context, load
from rstfleet_lab.bastion import inner_gateway, inner_subnet

from helpers import ROOT, hosts_by_name, json_report, require_root_lab, run_cli

pytestmark = pytest.mark.lab

N_INNER = 20      # hosts behind the bastion; as many outer hosts besides it, for the direct baseline


@pytest.fixture(scope="module")
def lab():
    require_root_lab()
    started = time.monotonic()
    with lab_context(N_INNER + 1, "j" + str(os.getpid() % 10000), inner=N_INNER) as built:
        print(f"\nlab of {N_INNER + 1} hosts + {N_INNER} behind the bastion up in "
              f"{time.monotonic() - started:.2f} s")
        yield built


def tcp_counter(lab, host, name: str) -> int:
    """One `Tcp:` counter of a lab host's own namespace, by header name."""
    text = lab.run_in(host, ["cat", "/proc/net/snmp"], check=True).stdout
    header, values = (line.split() for line in text.splitlines() if line.startswith("Tcp:"))
    return int(dict(zip(header, values))[name])


def run_cli_on_a_terminal(*args: str, bound_s: float) -> tuple[int | None, str, float]:
    """The CLI with a terminal as its controlling tty and stdin, as a person runs it — where
    OpenSSH's "(yes/no)?" prompt can appear and wait forever. Killed past bound_s (exit None)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(ROOT)
        os.execve(sys.executable, [sys.executable, "-m", "rstfleet", *args], dict(os.environ, PYTHONPATH=str(ROOT)))
    started, output, code = time.monotonic(), bytearray(), None
    try:
        while time.monotonic() - started < bound_s:
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:       # EIO: the CLI exited and closed the terminal
                    chunk = b""
                output += chunk
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                code = os.waitstatus_to_exitcode(status)
                while select.select([fd], [], [], 0.2)[0]:     # what it wrote last
                    try:
                        chunk = os.read(fd, 65536)
                    except OSError:
                        chunk = b""
                    if not chunk:
                        break
                    output += chunk
                break
    finally:
        if code is None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    return code, output.decode("utf-8", "replace"), time.monotonic() - started


def _login(lab) -> str:
    return (f"  User root\n  IdentityFile {lab.key_path}\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {lab.known_hosts_path}\n")


def test_the_inner_subnet_is_reachable_only_through_the_bastions_ssh(lab):
    bastion, inner = lab.hosts[0], lab.inner[0]
    started = time.monotonic()
    with pytest.raises(OSError) as refused, socket.socket() as sock:
        sock.settimeout(3)
        sock.connect((inner.address, 22))
    assert refused.value.errno == errno.EHOSTUNREACH and time.monotonic() - started < 1
    assert lab.run_in(bastion, ["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout.strip() == "0"
    # Even routed at the bastion, a packet for the inner subnet is not forwarded.
    subnet = str(inner_subnet(lab))
    subprocess.run(["ip", "route", "replace", subnet, "via", bastion.address], check=True)
    try:
        with pytest.raises(OSError), socket.socket() as sock:
            sock.settimeout(1.0)
            sock.connect((inner.address, 22))
    finally:
        subprocess.run(["ip", "route", "replace", "unreachable", subnet], check=True)
    # OpenSSH itself, with the lab's ssh_config, goes through the bastion's inner address.
    proc = subprocess.run(["ssh", "-F", str(lab.ssh_config_path), "-o", "BatchMode=yes", inner.address,
                           "echo $SSH_CLIENT; hostname -I"], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    client, addresses = proc.stdout.splitlines()
    assert client.split()[0] == inner_gateway(lab) and addresses.split() == [inner.address]


def test_hosts_behind_the_bastion_are_swept_with_their_own_counters_over_one_bastion_connection(lab, tmp_path):
    bastion, target = lab.hosts[0], lab.host("i03")
    out = tmp_path / "inner.json"
    opens = tcp_counter(lab, bastion, "PassiveOpens")
    injector = inject_closed_port(target.address, rate=50, duration=8, source_namespace=bastion.namespace)
    try:
        time.sleep(1.0)
        proc = run_cli("sweep", "-i", str(lab.inventory_path), "-l", "inner", "--ssh-config",
                       str(lab.ssh_config_path), "--window", "3", "--format", "json", "-o", str(out))
    finally:
        injector.stop()
    report = json_report(out)
    by_name = hosts_by_name(report)
    assert sorted(by_name) == sorted(h.name for h in lab.inner), proc.stderr.decode()
    assert {h["status"] for h in report["hosts"]} == {"ok"}, [h["reason"] for h in report["hosts"]]
    assert report["hosts"][0]["host"] == "i03"
    assert abs(by_name["i03"]["resets_sent_per_s"] - 50) <= 10, by_name["i03"]
    assert all(h["resets_sent_per_s"] < 1 for h in report["hosts"][1:])
    assert tcp_counter(lab, bastion, "PassiveOpens") - opens == 1


def test_an_unknown_bastion_key_rejects_every_host_behind_it_once_and_never_prompts(lab, tmp_path):
    bastion = lab.hosts[0]
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    config = tmp_path / "ssh_config"
    config.write_text(f"Host bastion\n  HostName {bastion.address}\n  User root\n  IdentityFile {lab.key_path}\n"
                      f"  UserKnownHostsFile {empty}\nHost 198.18.*\n  ProxyJump bastion\n")
    out = tmp_path / "rejected.json"
    opens = tcp_counter(lab, bastion, "PassiveOpens")
    code, screen, wall = run_cli_on_a_terminal(
        "sweep", "-i", str(lab.inventory_path), "-l", "inner", "--ssh-config", str(config),
        "--window", "1", "--connect-timeout", "3", "--format", "json", "-o", str(out), bound_s=15)
    assert code is not None and wall < 10, (wall, screen[-2000:])
    assert "yes/no" not in screen and "continue connecting" not in screen
    hosts = json_report(out)["hosts"]
    assert len(hosts) == N_INNER and {h["status"] for h in hosts} == {"host_key_rejected"}
    for host in hosts:
        assert host["reason"].startswith(f"jump host bastion ({bastion.address}:22): "), host["reason"]
        assert "known_hosts" in host["reason"]
    assert tcp_counter(lab, bastion, "PassiveOpens") - opens == 1    # refused once, not per host


def test_a_chain_of_two_jumps_reaches_hosts_behind_the_second_jump(lab, tmp_path):
    bastion, second = lab.hosts[0], lab.host("i01")
    explicit, nested = lab.host("i02"), lab.host("i03")
    config = tmp_path / "ssh_config"
    # i02 names both hops; i03 names one whose own ssh_config entry jumps through the bastion first.
    config.write_text(f"Host {explicit.address}\n  ProxyJump bastion,root@{second.address}:22\n"
                      f"Host {nested.address}\n  ProxyJump inner-jump\n"
                      f"Host inner-jump\n  HostName {second.address}\n  ProxyJump bastion\n{_login(lab)}"
                      + lab.ssh_config_path.read_text())
    before = {(h.name, c): tcp_counter(lab, h, c) for h in (bastion, second) for c in ("PassiveOpens", "ActiveOpens")}
    out = tmp_path / "chain.json"
    proc = run_cli("sweep", "-i", str(lab.inventory_path), "-l", "i02:i03", "--ssh-config", str(config),
                   "--window", "1", "--format", "json", "-o", str(out))
    hosts = hosts_by_name(json_report(out))
    assert {n: h["status"] for n, h in hosts.items()} == {"i02": "ok", "i03": "ok"}, proc.stderr.decode()
    delta = {k: tcp_counter(lab, lab.host(k[0]), k[1]) - v for k, v in before.items()}
    # One bastion connection carries both chains' channels to i01; each chain is its own SSH
    # connection to i01 (two), and i01 opens one connection to each target.
    assert delta == {("h01", "PassiveOpens"): 1, ("h01", "ActiveOpens"): 2,
                     ("i01", "PassiveOpens"): 2, ("i01", "ActiveOpens"): 2}, delta


def test_a_host_whose_sshd_is_down_behind_the_bastion_gets_the_bastions_reason(lab, tmp_path):
    down = lab.host("i04")
    lab.stop_sshd(down)
    try:
        out = tmp_path / "refused.json"
        run_cli("sweep", "-i", str(lab.inventory_path), "-l", "i04:i05", "--ssh-config",
                str(lab.ssh_config_path), "--window", "0.5", "--format", "json", "-o", str(out))
    finally:
        lab.start_sshd(down)
    hosts = hosts_by_name(json_report(out))
    assert (hosts["i04"]["status"], hosts["i04"]["reason"]) == (
        "unreachable", f"via bastion: cannot reach {down.address}:22: connect failed (Connection refused)")
    assert hosts["i05"]["status"] == "ok"


def test_a_jump_host_that_refuses_the_login_or_is_down_is_named_with_the_status_of_a_direct_host(lab, tmp_path):
    stranger = tmp_path / "stranger_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    bastion, stopped = lab.hosts[0], lab.hosts[1]
    config = tmp_path / "ssh_config"
    config.write_text(f"Host {lab.host('i07').address}\n  ProxyJump wrong-key\n"
                      f"Host {lab.host('i08').address}\n  ProxyJump stopped\n"
                      f"Host wrong-key\n  HostName {bastion.address}\n  User root\n  IdentityFile {stranger}\n"
                      f"  UserKnownHostsFile {lab.known_hosts_path}\n"
                      f"Host stopped\n  HostName {stopped.address}\n" + _login(lab))
    lab.stop_sshd(stopped)
    try:
        out = tmp_path / "jump-failures.json"
        run_cli("sweep", "-i", str(lab.inventory_path), "-l", "i07:i08", "--ssh-config", str(config),
                "--window", "0.5", "--format", "json", "-o", str(out))
    finally:
        lab.start_sshd(stopped)
    hosts = hosts_by_name(json_report(out))
    assert hosts["i07"]["status"] == "auth_failed", hosts["i07"]["reason"]
    assert hosts["i07"]["reason"].startswith(f"jump host wrong-key ({bastion.address}:22): ")
    assert (hosts["i08"]["status"], hosts["i08"]["reason"]) == (
        "unreachable", f"jump host stopped ({stopped.address}:22): cannot connect to {stopped.address}:22: "
                       f"Connection refused")


def _proxycommand_config(lab, tmp_path, bastion_known_hosts) -> str:
    path = tmp_path / "ssh_config"
    path.write_text(f"Host bastion\n  HostName {lab.hosts[0].address}\n  User root\n  IdentityFile {lab.key_path}\n"
                    f"  UserKnownHostsFile {bastion_known_hosts}\n"
                    f"Host {lab.inner[0].address.rsplit('.', 1)[0]}.*\n  ProxyCommand ssh -F {path} -W %h:%p bastion\n"
                    + _login(lab))
    return str(path)


@pytest.mark.parametrize("engine", ["paramiko", "asyncssh"])
def test_proxycommand_ssh_relays_to_hosts_behind_the_bastion(lab, tmp_path, engine):
    out = tmp_path / "proxycommand.json"
    config = _proxycommand_config(lab, tmp_path, lab.known_hosts_path)
    proc = run_cli("sweep", "-i", str(lab.inventory_path), "-l", "i05:i06", "--ssh-config", config,
                   "--window", "0.5", "--format", "json", "-o", str(out), "--ssh-engine", engine)
    assert {h["status"] for h in json_report(out)["hosts"]} == {"ok"}, proc.stderr.decode()


@pytest.mark.parametrize("engine", ["paramiko", "asyncssh"])
def test_proxycommand_ssh_with_an_unknown_bastion_key_says_sshs_own_words_and_never_prompts(lab, tmp_path, engine):
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    out = tmp_path / "proxycommand.json"
    code, screen, wall = run_cli_on_a_terminal(
        "sweep", "-i", str(lab.inventory_path), "-l", "i05:i06", "--ssh-config",
        _proxycommand_config(lab, tmp_path, empty), "--window", "0.5", "--connect-timeout", "3",
        "--format", "json", "-o", str(out), "--ssh-engine", engine, bound_s=15)
    assert code is not None and wall < 10, (wall, screen[-2000:])
    assert "yes/no" not in screen and "continue connecting" not in screen
    for host in json_report(out)["hosts"]:
        assert host["status"] == "host_key_rejected", host["reason"]
        assert "ProxyCommand exited with 255" in host["reason"]
        assert "Host key verification failed." in host["reason"]
        assert "tarpit" not in host["reason"]
    # Not even a pipe that nobody writes to can make it wait.
    proc = subprocess.Popen([sys.executable, "-m", "rstfleet", "sweep", "-i", str(lab.inventory_path),
                             "-l", "i05", "--ssh-config", _proxycommand_config(lab, tmp_path, empty),
                             "--window", "0.5", "--connect-timeout", "3", "-q"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        _, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode == 8 and b"yes/no" not in err, err


def test_a_sweep_through_one_bastion_takes_about_as_long_as_a_direct_one(lab, tmp_path):
    bastion, walls = lab.hosts[0], {}
    opens = tcp_counter(lab, bastion, "PassiveOpens")
    for label, limit, extra in (("direct", "lab:!h01", ()), ("bastion", "inner", ("--ssh-config", str(lab.ssh_config_path)))):
        out = tmp_path / f"{label}.json"
        started = time.monotonic()
        run_cli("sweep", "-i", str(lab.inventory_path), "-l", limit, *extra, "--window", "1",
                "--format", "json", "-o", str(out))
        walls[label] = time.monotonic() - started
        hosts = json_report(out)["hosts"]
        assert len(hosts) == N_INNER and {h["status"] for h in hosts} == {"ok"}, label
    print(f"\n{N_INNER} hosts, window 1 s: direct {walls['direct']:.2f} s, "
          f"through one bastion {walls['bastion']:.2f} s")
    assert tcp_counter(lab, bastion, "PassiveOpens") - opens == 1
    assert walls["bastion"] < walls["direct"] + 2.0, walls


def test_one_jump_connection_carries_at_most_its_bound_of_channels(lab):
    """In-process sweep so the pool's bound can be set small: 20 hosts at once, 8 channels per
    connection -> exactly three bastion connections."""
    bastion = lab.hosts[0]
    hosts = load_inventory(str(lab.inventory_path)).select("inner")
    ssh = SSHSettings(ssh_config_path=str(lab.ssh_config_path))
    config, jumps = load_client_config(ssh.ssh_config_path), JumpPool(channels_per_connection=8)
    opens = tcp_counter(lab, bastion, "PassiveOpens")
    try:
        results = sweep(hosts, lambda h: SSHTransport(h, ssh, config, jumps=jumps),
                        SweepSettings(window_s=1.5, forks=N_INNER, connect_timeout_s=5))
        assert jumps.connections(("bastion",)) == 3
    finally:
        jumps.close()
    assert [r.status for r in results] == ["ok"] * N_INNER, [r.reason for r in results]
    assert tcp_counter(lab, bastion, "PassiveOpens") - opens == 3
    assert jumps.connections(("bastion",)) == 0


def test_inventory_proxyjump_in_ansible_ssh_common_args_is_honoured(lab, tmp_path):
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        "inner:\n  hosts:\n" + "".join(f"    {h.name}: {{ansible_host: {h.address}}}\n" for h in lab.inner[:3])
        + f"  vars:\n    ansible_user: root\n    ansible_ssh_private_key_file: {lab.key_path}\n"
        f"    ansible_ssh_common_args: -o UserKnownHostsFile={lab.known_hosts_path} "
        f"-o ProxyJump=root@{lab.hosts[0].address}\n")
    assert load_inventory(str(inventory)).hosts["i01"].proxy_jump == f"root@{lab.hosts[0].address}"
    out = tmp_path / "inventory.json"
    # The jump host's key and login come from the command line (ssh passes no -o to the jump).
    proc = run_cli("sweep", "-i", str(inventory), "--ssh-config", "/dev/null", "--known-hosts",
                   str(lab.known_hosts_path), "--private-key", str(lab.key_path), "--window", "0.5",
                   "--format", "json", "-o", str(out))
    assert {h["status"] for h in json_report(out)["hosts"]} == {"ok"}, proc.stderr.decode()


def test_a_bastion_lab_comes_down_completely():
    require_root_lab()
    name = "k" + str(os.getpid() % 10000)
    with lab_context(1, name, inner=2) as small:
        assert load(name) == small and [h.name for h in small.inner] == ["i01", "i02"]
        namespaces, subnet = [h.namespace for h in small.hosts + small.inner], str(inner_subnet(small))
        assert subprocess.run(["ip", "route", "show", "type", "unreachable", subnet],
                              capture_output=True, text=True).stdout.strip()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    assert [ns for ns in namespaces if ns in listed] == []
    routes = subprocess.run(["ip", "route", "show", "type", "unreachable", subnet], capture_output=True, text=True)
    assert routes.stdout.strip() == ""
    assert not small.state_dir.exists()
