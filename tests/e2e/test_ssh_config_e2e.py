"""ssh_config carried out against real lab hosts: what the resolver decides (tests/unit/
test_ssh_config.py proves it equals ssh -G) is what the connection does — tokens in known-hosts
paths, accept-new, IdentitiesOnly, a ProxyCommand run as ssh runs it, and a ProxyJump through
another lab host whose own settings come from the same --ssh-config (an SSH channel of it, no
local ssh)."""

from __future__ import annotations

import pytest

from helpers import hosts_by_name, json_report, run_cli


def _sweep(config, tmp_path, *hosts: str, engine: str = "paramiko"):
    out = tmp_path / "out.json"
    proc = run_cli("sweep", "-i", ",".join(hosts) + ",", "--ssh-config", str(config), "--window", "0.3",
                   "--format", "json", "-o", str(out), "--ssh-engine", engine, timeout=60)
    return proc, hosts_by_name(json_report(out))


@pytest.mark.parametrize("engine", ["paramiko", "asyncssh"])
def test_ssh_config_tokens_accept_new_and_identities_only_reach_the_host(lab5, tmp_path, engine):
    host = lab5.host("h01")
    config = tmp_path / "config"
    config.write_text(f"Host first\n  HostName {host.address}\nMatch host {host.address}\n"
                      f"  User root\n  IdentityFile {lab5.key_path}\n  IdentitiesOnly yes\n"
                      f"  StrictHostKeyChecking accept-new\n  UserKnownHostsFile {tmp_path}/kh_%h_%p\n")
    proc, hosts = _sweep(config, tmp_path, "first", engine=engine)
    assert hosts["first"]["status"] == "ok", hosts["first"]["reason"]
    assert host.address in (tmp_path / f"kh_{host.address}_22").read_text()   # accept-new recorded it
    assert proc.returncode == 0 and b"does not follow" not in proc.stderr


@pytest.mark.parametrize("engine", ["paramiko", "asyncssh"])
def test_proxycommand_runs_in_the_shell_with_its_tokens_expanded(lab5, tmp_path, engine):
    """The ProxyCommand is the real ssh -W through another lab host, with %h and %p (asyncssh:
    the same proxycommand.py on a socket pair)."""
    target, jump = lab5.host("h02"), lab5.host("h03")
    config = tmp_path / "config"
    common = (f"  User root\n  IdentityFile {lab5.key_path}\n  UserKnownHostsFile {lab5.known_hosts_path}\n"
              f"  StrictHostKeyChecking yes\n")
    config.write_text(f"Host target\n  HostName {target.address}\n"
                      f"  ProxyCommand ssh -F {config} -W %h:%p jump 2>{tmp_path}/proxy.err\n"
                      f"Host jump\n  HostName {jump.address}\n  BatchMode yes\n{common}Host *\n{common}")
    proc, hosts = _sweep(config, tmp_path, "target", engine=engine)
    assert hosts["target"]["status"] == "ok", (hosts["target"]["reason"], (tmp_path / "proxy.err").read_text())
    assert (tmp_path / "proxy.err").exists()      # the shell ran it: `2>FILE` is a redirection
    assert proc.returncode == 0


def test_proxyjump_goes_through_the_jump_host_with_the_same_ssh_config(lab5, tmp_path):
    target, jump = lab5.host("h04"), lab5.host("h05")
    config = tmp_path / "config"
    config.write_text(f"Host behind\n  HostName {target.address}\n  ProxyJump root@bastion\n"
                      f"Host bastion\n  HostName {jump.address}\n"
                      f"Host *\n  User root\n  IdentityFile {lab5.key_path}\n"
                      f"  UserKnownHostsFile {lab5.known_hosts_path}\n")
    proc, hosts = _sweep(config, tmp_path, "behind")
    assert hosts["behind"]["status"] == "ok", hosts["behind"]["reason"]
    assert proc.returncode == 0


def test_proxyjump_to_an_unknown_jump_key_fails_without_prompting(lab5, tmp_path):
    """The jump host's key is unknown (its own UserKnownHostsFile, from its own block): refused by
    the same known_hosts check as any host, never asked about, and the host is reported, not hung."""
    target, jump = lab5.host("h01"), lab5.host("h02")
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    config = tmp_path / "config"
    config.write_text(f"Host behind\n  HostName {target.address}\n  ProxyJump bastion\n"
                      f"  UserKnownHostsFile {lab5.known_hosts_path}\n"
                      f"Host bastion\n  HostName {jump.address}\n  UserKnownHostsFile {empty}\n"
                      f"Host *\n  User root\n  IdentityFile {lab5.key_path}\n")
    proc, hosts = _sweep(config, tmp_path, "behind")
    assert hosts["behind"]["status"] == "host_key_rejected", hosts["behind"]["reason"]
    assert hosts["behind"]["reason"].startswith(f"jump host bastion ({jump.address}:22): host key of ")
    assert "not in known_hosts" in hosts["behind"]["reason"]
    assert b"(yes/no" not in proc.stderr and b"(yes/no" not in proc.stdout
    assert proc.returncode == 8
