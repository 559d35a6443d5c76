"""known_hosts on the real lab, with the real OpenSSH client as the oracle: the lines that used to
break every host (@cert-authority, @revoked, a malformed hashed entry) now decide only their own
host, and `ssh -o BatchMode=yes` accepts and refuses the same hosts rstfleet does — except a host
that proves itself with a host certificate, which OpenSSH verifies and paramiko cannot: rstfleet
refuses that one, saying so. Every test runs with both SSH engines: they decide host keys with the
same code (host_keys.HostKeyGate), and here with the same outcome as OpenSSH."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT, hosts_by_name, json_report, run_cli

pytestmark = pytest.mark.lab
ENGINES = pytest.mark.parametrize("engine", ["paramiko", "asyncssh"])


def host_key(lab, name: str) -> str:
    return " ".join((lab.host_dir(name) / "ssh_host_ed25519_key.pub").read_text().split()[:2])


def inventory_without_known_hosts(lab, path: Path) -> Path:
    """The lab's hosts, key and user, but no UserKnownHostsFile: the test names the files."""
    path.write_text("".join(f"{h.name} ansible_host={h.address} ansible_user=root "
                            f"ansible_ssh_private_key_file={lab.key_path}\n" for h in lab.hosts))
    return path


def openssh_accepts(lab, address: str, known_hosts: Path, global_file: str = "/dev/null",
                    wrap: list[str] = ()) -> tuple[bool, str]:
    argv = [*wrap, "ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={known_hosts}", "-o", f"GlobalKnownHostsFile={global_file}",
            "-o", "ConnectTimeout=5", "-o", "IdentitiesOnly=yes", "-i", str(lab.key_path), f"root@{address}", "true"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    return proc.returncode == 0, proc.stderr


@pytest.fixture
def h05_with_certificate(lab5, tmp_path):
    """h05's sshd presents a host certificate signed by a CA of this test (restored afterwards)."""
    ca = tmp_path / "ca"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ca)], check=True)
    host = lab5.host("h05")
    key = lab5.host_dir(host) / "ssh_host_ed25519_key"
    subprocess.run(["ssh-keygen", "-q", "-s", str(ca), "-I", "h05", "-h", "-n", host.address, f"{key}.pub"],
                   check=True)
    config = lab5.host_dir(host) / "sshd_config"
    original = config.read_text()
    base, marker, faults = original.partition("# faults\n")
    config.write_text(f"{base}HostCertificate {key}-cert.pub\n{marker}{faults}")
    lab5.stop_sshd(host)
    lab5.start_sshd(host)
    try:
        yield " ".join(Path(f"{ca}.pub").read_text().split()[:2])
    finally:
        config.write_text(original)
        Path(f"{key}-cert.pub").unlink(missing_ok=True)
        lab5.stop_sshd(host)
        lab5.start_sshd(host)


@ENGINES
def test_markers_and_a_malformed_line_decide_only_their_own_host_as_openssh_does(
        lab5, tmp_path, h05_with_certificate, engine):
    by_address = {h.name: h.address for h in lab5.hosts}
    bad_salt = base64.b64encode(b"short").decode()
    known = tmp_path / "known_hosts"
    known.write_text("\n".join([
        f"@cert-authority {by_address['h05']} {h05_with_certificate}",
        f"|1|{bad_salt}|{base64.b64encode(bytes(20)).decode()} {host_key(lab5, 'h01')}",
        *(f"{by_address[n]} {host_key(lab5, n)}" for n in ("h01", "h02", "h03", "h04")),
        f"@revoked {by_address['h03']} {host_key(lab5, 'h03')}",
    ]) + "\n")
    out = tmp_path / "sweep.json"
    proc = run_cli("sweep", "-i", str(inventory_without_known_hosts(lab5, tmp_path / "inv")),
                   "--known-hosts", str(known), "--window", "0.5", "--format", "json", "-o", str(out),
                   "--ssh-engine", engine)
    stderr = proc.stderr.decode()
    hosts = hosts_by_name(json_report(out))
    assert proc.returncode == 8, stderr
    assert [n for n in sorted(hosts) if hosts[n]["status"] == "ok"] == ["h01", "h02", "h04"], hosts
    assert hosts["h03"]["status"] == "host_key_rejected" and "REVOKED" in hosts["h03"]["reason"]
    assert f"{known}:7" in hosts["h03"]["reason"]
    assert hosts["h05"]["status"] == "host_key_rejected"
    assert "cannot verify host certificates" in hosts["h05"]["reason"]
    assert f"{known}:1" in hosts["h05"]["reason"] and "ssh-keyscan" in hosts["h05"]["reason"]
    assert stderr.count(f"{known}:2: malformed hashed host field") == 1, stderr
    assert "internal error" not in stderr + out.read_text() and "Traceback" not in stderr

    openssh = {n: openssh_accepts(lab5, by_address[n], known) for n in sorted(hosts)}
    assert {n for n, (ok, _) in openssh.items() if ok} == {"h01", "h02", "h04", "h05"}, openssh
    assert "REVOKED HOST KEY" in openssh["h03"][1]
    # the one difference: OpenSSH verified h05's certificate against the CA line
    verbose = subprocess.run(["ssh", "-v", "-F", "/dev/null", "-o", "BatchMode=yes",
                              "-o", f"UserKnownHostsFile={known}", "-o", "GlobalKnownHostsFile=/dev/null",
                              "-o", "IdentitiesOnly=yes", "-i", str(lab5.key_path),
                              f"root@{by_address['h05']}", "true"],
                             capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL).stderr
    assert "Host certificate authority" in verbose or "ED25519-CERT" in verbose, verbose[-2000:]


@ENGINES
def test_the_global_file_is_read_by_default_like_openssh(lab5, tmp_path, engine):
    """/etc/ssh/ssh_known_hosts is replaced by a bind mount in a private mount namespace of this
    test only (unshare -m), never on the machine."""
    etc_ssh = tmp_path / "etc-ssh"
    etc_ssh.mkdir()
    (etc_ssh / "ssh_known_hosts").write_text(lab5.known_hosts_path.read_text())
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    out = tmp_path / "global.json"
    inventory = inventory_without_known_hosts(lab5, tmp_path / "inv")
    wrap = ["unshare", "-m", "--propagation", "private", "sh", "-c",
            'mount --bind "$0" /etc/ssh && exec "$@"', str(etc_ssh)]
    proc = subprocess.run([*wrap, sys.executable, "-m", "rstfleet", "sweep", "-i", str(inventory),
                           "--known-hosts", str(empty), "--window", "0.5", "--format", "json", "-o", str(out),
                           "--ssh-engine", engine],
                          capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr
    assert all(h["status"] == "ok" for h in json_report(out)["hosts"])
    assert all(openssh_accepts(lab5, h.address, empty, "/etc/ssh/ssh_known_hosts", wrap)[0] for h in lab5.hosts)
    # and without the global file both refuse
    refused = run_cli("sweep", "-i", str(inventory), "--known-hosts", str(empty), "--window", "0.5",
                      "--ssh-engine", engine)
    assert refused.returncode == 8
    assert not openssh_accepts(lab5, lab5.hosts[0].address, empty)[0]


@ENGINES
def test_host_key_alias_is_the_name_looked_up_as_openssh_looks_it_up(lab5, tmp_path, engine):
    host = lab5.host("h02")
    known = tmp_path / "known_hosts"
    known.write_text(f"db-primary {host_key(lab5, 'h02')}\n{host.address} {host_key(lab5, 'h01')}\n")
    config = tmp_path / "ssh_config"
    config.write_text(f"Host second\n  HostName {host.address}\n  User root\n  IdentityFile {lab5.key_path}\n"
                      f"  IdentitiesOnly yes\n  UserKnownHostsFile {known}\n  GlobalKnownHostsFile /dev/null\n"
                      f"  BatchMode yes\n  HostKeyAlias db-primary\n")
    out = tmp_path / "alias.json"
    proc = run_cli("sweep", "-i", "second,", "--ssh-config", str(config), "--window", "0.5",
                   "--format", "json", "-o", str(out), "--ssh-engine", engine)
    assert json_report(out)["hosts"][0]["status"] == "ok", proc.stderr.decode()
    ssh = subprocess.run(["ssh", "-F", str(config), "second", "true"], capture_output=True, text=True,
                         timeout=30, stdin=subprocess.DEVNULL)
    assert ssh.returncode == 0, ssh.stderr
    # without the alias both look up the address, whose line holds another key: changed
    config.write_text(config.read_text().replace("  HostKeyAlias db-primary\n", ""))
    proc = run_cli("sweep", "-i", "second,", "--ssh-config", str(config), "--window", "0.5",
                   "--format", "json", "-o", str(out), "--ssh-engine", engine)
    entry = json_report(out)["hosts"][0]
    assert (entry["status"], "CHANGED" in entry["reason"]) == ("host_key_rejected", True), entry
    ssh = subprocess.run(["ssh", "-F", str(config), "second", "true"], capture_output=True, text=True,
                         timeout=30, stdin=subprocess.DEVNULL)
    assert ssh.returncode != 0 and "REMOTE HOST IDENTIFICATION HAS CHANGED" in ssh.stderr, ssh.stderr
