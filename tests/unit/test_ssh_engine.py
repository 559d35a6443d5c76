"""`--ssh-engine asyncssh` is a supported engine that decides host keys with the paramiko engine's
own code (host_keys.HostKeyGate): both engines' adapters hand the same presented key to the same
gate and get the same decision, with the same words; the engine needs only its optional package,
and hosts behind a jump host, which it cannot reach, are refused before any connection."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import asyncssh
import paramiko
import pytest

from helpers import ROOT, options, run_cli
from rstfleet.inventory import Host
from rstfleet.transport import SSHSettings, TransportError
from rstfleet.transport.asyncssh_engine import HOST_KEY_TYPES, AsyncSSHTransport, Credentials, _HostKeyCheck
from rstfleet.transport.host_keys import KnownHostsStore
from rstfleet.transport.ssh import HostKeyRefused, VerifyHostKey, _preferring
from rstfleet.transport.ssh_config import load_client_config
from rstfleet.transport.target import resolve_target
from rstfleet.plan import Plan

KEY_TYPES = (("ed25519", "256"), ("ecdsa", "256"), ("ecdsa", "384"), ("ecdsa", "521"), ("rsa", "2048"))


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Host keys of every type sshd makes, written by ssh-keygen and loaded by each library."""
    folder = tmp_path_factory.mktemp("hostkeys")
    made = {}
    for kind, bits in KEY_TYPES:
        for copy in ("a", "b"):
            path = folder / f"{kind}{bits}{copy}"
            subprocess.run(["ssh-keygen", "-q", "-t", kind, "-b", bits, "-N", "", "-f", str(path)], check=True)
            made[f"{kind}{bits}{copy}"] = path
    return made


def public_line(path) -> str:
    return " ".join(path.with_suffix(".pub").read_text().split()[:2])


def paramiko_decides(store, host, settings, key_path) -> str | None:
    target = resolve_target(host, settings, load_client_config(settings.ssh_config_path))
    try:
        VerifyHostKey(store, target, settings.accept_new_host_keys).missing_host_key(
            None, target.hostname, paramiko.PKey.from_path(str(key_path)))
    except HostKeyRefused as refused:
        return str(refused)
    return None


def asyncssh_decides(store, host, settings, key_path) -> str | None:
    transport = AsyncSSHTransport(host, settings, load_client_config(settings.ssh_config_path), _credentials(store))
    check = _HostKeyCheck(transport)
    key = asyncssh.read_private_key(str(key_path)).convert_to_public()
    accepted = check.validate_host_public_key(transport.target.hostname, None, transport.target.port, key)
    assert accepted is (check.refused is None)
    return check.refused


def _credentials(store):
    credentials = Credentials()
    credentials.host_keys = store
    return credentials


def test_both_engines_take_the_same_decision_with_the_same_words_for_every_key_type(keys, tmp_path):
    """trusted, changed, revoked, CA only, unknown, [host]:port, HostKeyAlias, and accept-new's
    line: each engine's adapter on its own run store (as in two runs), verdicts and file compared."""
    decisions = {}
    config = tmp_path / "ssh_config"
    config.write_text("".join(f"Host alias-{kind}{bits}\n  HostKeyAlias trusted-{kind}{bits}\n"
                              for kind, bits in KEY_TYPES))
    for engine, decide in (("paramiko", paramiko_decides), ("asyncssh", asyncssh_decides)):
        known = tmp_path / f"known_hosts_{engine}"
        lines = []
        for kind, bits in KEY_TYPES:
            name = f"{kind}{bits}"
            lines += [f"trusted-{name} {public_line(keys[name + 'a'])}",
                      f"changed-{name} {public_line(keys[name + 'b'])}",
                      f"@revoked revoked-{name} {public_line(keys[name + 'a'])}",
                      f"revoked-{name} {public_line(keys[name + 'a'])}",
                      f"@cert-authority ca-{name} {public_line(keys[name + 'b'])}",
                      f"[ported-{name}]:2222 {public_line(keys[name + 'a'])}"]
        known.write_text("\n".join(lines) + "\n")
        store = KnownHostsStore()
        settings = SSHSettings(user="u", known_hosts_files=(str(known),), ssh_config_path=str(config))
        accepting = SSHSettings(user="u", known_hosts_files=(str(known),), ssh_config_path=str(config),
                                accept_new_host_keys=True)

        def decided(host, with_settings, key):     # the file's own name aside, the words compared
            reason = decide(store, host, with_settings, key)
            return reason and reason.replace(str(known), "KNOWN_HOSTS")
        for kind, bits in KEY_TYPES:
            name, key = f"{kind}{bits}", keys[f"{kind}{bits}a"]
            for case in ("trusted", "changed", "revoked", "ca", "unknown", "alias"):
                decisions[engine, name, case] = decided(Host(case, f"{case}-{name}"), settings, key)
            decisions[engine, name, "port"] = decided(Host("p", f"ported-{name}", port=2222), settings, key)
            decisions[engine, name, "accept-new"] = decided(Host("n", f"new-{name}"), accepting, key)
            decisions[engine, name, "recorded"] = decided(Host("n", f"new-{name}"), settings, key)
        decisions[engine, "file"] = known.read_text()
    for (engine, *case), decision in decisions.items():
        if engine == "paramiko" and case != ["file"]:
            assert decisions[("asyncssh", *case)] == decision, case
    assert decisions["paramiko", "file"] == decisions["asyncssh", "file"]
    outcome = {case: decisions["paramiko", "ed25519256", case] for case in
               ("trusted", "changed", "revoked", "ca", "unknown", "alias", "port", "accept-new", "recorded")}
    assert [case for case, reason in outcome.items() if reason is None] == \
           ["trusted", "alias", "port", "accept-new", "recorded"]
    assert "CHANGED" in outcome["changed"] and "REVOKED" in outcome["revoked"]
    assert "cannot verify host certificates" in outcome["ca"] and "ssh-keyscan" in outcome["unknown"]


def test_both_engines_ask_for_the_same_host_key_types_known_ones_first(keys, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text(f"db {public_line(keys['rsa2048a'])}\ndb {public_line(keys['ecdsa384a'])}\n")
    settings = SSHSettings(user="u", known_hosts_files=(str(known),), ssh_config_path="none")
    store = KnownHostsStore()
    transport = AsyncSSHTransport(Host("db", "db"), settings, None, _credentials(store))
    asked = transport._host_key_algs()
    left, right = socket.socketpair()
    paramiko_transport = _preferring(VerifyHostKey(store, transport.target, False).gate)(left)
    try:
        assert list(paramiko_transport.get_security_options().key_types) == asked
    finally:
        paramiko_transport.close()
        right.close()
    assert set(asked[:3]) == {"ecdsa-sha2-nistp384", "rsa-sha2-512", "rsa-sha2-256"}
    assert not [name for name in asked if "cert" in name] and set(asked) <= HOST_KEY_TYPES


def test_the_asyncssh_engine_is_accepted_without_any_switch(monkeypatch):
    monkeypatch.delenv("RSTFLEET_PROTOTYPE_ENGINES", raising=False)
    plan = Plan.from_args(options("sweep", "--ssh-engine", "asyncssh", "--ssh-config", "none"),
                          hosts=[Host("web1", "192.0.2.1")])
    assert plan.ssh.engine == "asyncssh"


def test_without_the_asyncssh_package_the_engine_is_refused_with_the_pip_command():
    """The package cannot be uninstalled for a test: `sys.modules["asyncssh"] = None` is Python's
    own way to make an import find nothing (importlib documents it), set before rstfleet runs."""
    code = ("import sys; sys.modules['asyncssh'] = None; from rstfleet.cli import main; "
            "sys.exit(main(['sweep', '-i', '192.0.2.9,', '--ssh-engine', 'asyncssh', '--ssh-config', 'none']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2, done.stderr
    assert "--ssh-engine: the asyncssh engine needs the asyncssh package" in done.stderr
    assert "pip install 'rstfleet[fleet]'" in done.stderr and "192.0.2.9" not in done.stderr


def test_hosts_behind_a_jump_host_are_refused_by_the_asyncssh_engine_before_any_connection(tmp_path):
    config = tmp_path / "ssh_config"
    config.write_text("Host 192.0.2.*\n  ProxyJump ops@bastion.example\n")
    inventory = tmp_path / "inv.ini"
    inventory.write_text("".join(f"web{i} ansible_host=192.0.2.{i}\n" for i in range(1, 8))
                         + "direct ansible_host=198.51.100.1\n")
    done = run_cli("sweep", "-i", str(inventory), "--ssh-config", str(config), "--ssh-engine", "asyncssh",
                   "--window", "0.1", timeout=60)
    stderr = done.stderr.decode()
    assert done.returncode == 2, stderr
    assert "--ssh-engine: asyncssh does not go through jump hosts (ProxyJump), and web1, web2, web3, " \
           "web4, web5 and 2 more are reached through one" in stderr
    assert "--ssh-engine paramiko" in stderr and "direct" not in stderr
    one = run_cli("sweep", "-i", str(inventory), "-l", "web3", "--ssh-config", str(config),
                  "--ssh-engine", "asyncssh", "--window", "0.1", timeout=60)
    assert one.returncode == 2 and b"and web3 is reached through one; sweep it with" in one.stderr


def test_a_jump_host_in_the_inventory_is_refused_the_same_way(tmp_path):
    inventory = tmp_path / "inv.ini"
    inventory.write_text("web1 ansible_host=192.0.2.1 ansible_ssh_common_args='-J ops@bastion.example'\n")
    done = run_cli("sweep", "-i", str(inventory), "--ssh-config", "none", "--ssh-engine", "asyncssh",
                   "--window", "0.1", timeout=60)
    assert done.returncode == 2 and b"(ProxyJump), and web1 is reached through one" in done.stderr


def test_a_transport_built_for_a_jumped_host_refuses_it_rather_than_connecting_around_the_jump():
    settings = SSHSettings(user="u", ssh_config_path="none")
    host = Host("web1", "192.0.2.1", proxy_jump="bastion.example")
    with pytest.raises(TransportError, match=r"asyncssh does not go through jump hosts .* web1 is reached"):
        AsyncSSHTransport(host, settings, None)


def _auto_plan(hosts, *argv):
    return Plan.from_args(options("sweep", "--ssh-config", "none", *argv), hosts=hosts)


def test_auto_the_default_picks_the_event_loop_for_large_fleets_and_paramiko_below(monkeypatch):
    """--ssh-engine auto: asyncssh from ASYNCSSH_FROM_HOSTS SSH hosts (where paramiko's thread per
    connection was measured dearer, docs/benchmarks.md); the local host does not count."""
    from rstfleet.probe.host.limits import ASYNCSSH_FROM_HOSTS as n
    fleet = [Host(f"h{i}", f"192.0.2.{i % 250 + 1}", port=2000 + i) for i in range(n)]
    assert _auto_plan(fleet).ssh.engine == "asyncssh"
    assert _auto_plan(fleet[:-1] + [Host("me", "localhost", connection="local")]).ssh.engine == "paramiko"
    assert _auto_plan(fleet, "--ssh-engine", "paramiko").ssh.engine == "paramiko"     # asked for: kept
    assert _auto_plan(fleet[:5], "--ssh-engine", "asyncssh").ssh.engine == "asyncssh"


def test_auto_keeps_paramiko_when_a_host_needs_a_jump_host_or_asyncssh_is_missing(monkeypatch):
    from rstfleet.probe.host.limits import ASYNCSSH_FROM_HOSTS as n
    fleet = [Host(f"h{i}", f"192.0.2.{i % 250 + 1}", port=2000 + i) for i in range(n)]
    jumped = fleet[:-1] + [Host("inner", "198.51.100.7", proxy_jump="bastion.example")]
    assert _auto_plan(jumped).ssh.engine == "paramiko"           # not refused: the jump host is honoured
    # `sys.modules["asyncssh"] = None` makes find_spec find nothing (importlib's documented way).
    monkeypatch.setitem(sys.modules, "asyncssh", None)
    assert _auto_plan(fleet).ssh.engine == "paramiko"


def test_the_json_report_says_which_engine_the_run_used(tmp_path):
    """Against a closed loopback port (refused at once: no traffic leaves the machine)."""
    out, inventory = tmp_path / "r.json", tmp_path / "inv.ini"
    inventory.write_text("closed ansible_host=127.0.0.1 ansible_port=9\n")
    for engine in ("auto", "asyncssh"):
        run_cli("sweep", "-i", str(inventory), "--ssh-config", "none", "--window", "0.1", "--ssh-engine", engine,
                "--format", "json", "-o", str(out), timeout=60)
        report = json.loads(out.read_text())
        assert report["ssh_engine"] == {"auto": "paramiko"}.get(engine, engine)
        assert report["hosts"][0]["status"] == "unreachable"


def test_auto_says_why_a_large_fleet_stays_on_paramiko(monkeypatch):
    from rstfleet.probe.host.limits import ASYNCSSH_FROM_HOSTS as n
    fleet = [Host(f"h{i}", f"192.0.2.{i % 250 + 1}", port=2000 + i) for i in range(n)]
    jumped = fleet[:-1] + [Host("inner", "198.51.100.7", proxy_jump="bastion.example")]
    assert any("inner and others are behind a jump host" in w and "window groups" in w
               for w in _auto_plan(jumped).warnings)
    assert not [w for w in _auto_plan(fleet).warnings if "paramiko engine" in w]       # asyncssh chosen
    assert not [w for w in _auto_plan(fleet[:-1]).warnings if "paramiko engine" in w]  # small: as intended
    monkeypatch.setitem(sys.modules, "asyncssh", None)
    assert any("asyncssh is not installed (pip install 'rstfleet[fleet]')" in w for w in _auto_plan(fleet).warnings)
