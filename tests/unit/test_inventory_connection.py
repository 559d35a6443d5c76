"""A host's connection settings, read from its Ansible variables as Ansible + OpenSSH would use them.

The oracle is the real pair: `ansible` builds the ssh command line for every host (its
ssh_executable replaced by a recorder that writes its argv and fails like an unreachable host,
so nothing connects), then the real OpenSSH client resolves that very command line with
`ssh -G`. The port, user, first identity, first known_hosts file and proxy rstfleet put on each
Host must be what ssh would have used.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import run_cli
from rstfleet.inventory import InventoryError, load_inventory
from rstfleet.probe.host import limits
from rstfleet.results import Status
from rstfleet.sweep.pool import SweepSettings, probe_host
from rstfleet.transport.local import LocalTransport

ANSIBLE = Path(sys.executable).parent / "ansible"

# Each host stresses one rule; keys under /keys are created by the test (ssh drops a missing -i).
ORACLE_INVENTORY = """\
[plain]
p1 ansible_host=198.18.9.1
p2 ansible_host=198.18.9.2 ansible_port=2201 ansible_user=ops ansible_ssh_private_key_file={keys}/a

[args]
a1 ansible_host=198.18.9.11 ansible_ssh_common_args='-p 2022 -l carol -i {keys}/b -o UserKnownHostsFile=/kh/one'
a2 ansible_host=198.18.9.12 ansible_port=2222 ansible_user=ops ansible_ssh_common_args='-o Port=22 -o User=root'
a3 ansible_host=198.18.9.13 ansible_ssh_common_args='-o ProxyCommand="ssh -W %h:%p jump@198.18.9.254"'
a4 ansible_host=198.18.9.14 ansible_ssh_common_args='-J ops@198.18.9.253:2200 -o ProxyCommand="nc %h %p"'
a5 ansible_host=198.18.9.15 ansible_ssh_common_args='-o ProxyJump=a@198.18.9.252' ansible_ssh_extra_args='-o ProxyCommand="nc %h %p"'
a6 ansible_host=198.18.9.16 ansible_ssh_args='-o Port=2000' ansible_port=2222
a7 ansible_host=198.18.9.17 ansible_ssh_private_key_file={keys}/a ansible_ssh_common_args='-o IdentityFile={keys}/b -i {keys}/c'
a8 ansible_host=198.18.9.18 ansible_ssh_common_args='-oUserKnownHostsFile="/kh/two /kh/three" -oPort=2300'
a9 ansible_host=198.18.9.19 ansible_ssh_extra_args='-l dave -p2400' ansible_ssh_common_args='-o User=erin'

[grouped]
g1 ansible_host=198.18.9.21
g2 ansible_host=198.18.9.22 ansible_ssh_common_args='-o UserKnownHostsFile=/kh/own'

[grouped:vars]
ansible_ssh_common_args=-o ProxyJump=bastion.lab -o UserKnownHostsFile=/kh/group
ansible_user=grp
"""

RECORDER = """#!/bin/sh
# Stands in for ssh: records the command line Ansible built, then fails like an unreachable host.
f=$(mktemp "{out}/call.XXXXXX")
for a in "$@"; do printf '%s\\0' "$a" >> "$f"; done
exit 255
"""


def ssh_resolves(argv: list[str]) -> dict[str, list[str]]:
    """`ssh -G` on Ansible's own command line (without the remote command), no ssh_config."""
    done = subprocess.run(["ssh", "-G", "-F", "/dev/null", *argv], capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    found: dict[str, list[str]] = {}
    for line in done.stdout.decode().splitlines():
        key, _, value = line.partition(" ")
        found.setdefault(key, []).append(value)
    return found


def test_host_fields_equal_what_ssh_makes_of_ansibles_command_line(tmp_path):
    keys, out = tmp_path / "keys", tmp_path / "calls"
    keys.mkdir()
    out.mkdir()
    for name in "abc":
        (keys / name).write_text("not a key; ssh -G only needs it to exist\n")
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(ORACLE_INVENTORY.format(keys=keys))
    recorder = tmp_path / "ssh"
    recorder.write_text(RECORDER.format(out=out))
    recorder.chmod(0o755)
    (tmp_path / "ansible.cfg").write_text("")
    env = dict(os.environ, ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"), ANSIBLE_HOME=str(tmp_path),
               ANSIBLE_LOCAL_TEMP=str(tmp_path), ANSIBLE_DEPRECATION_WARNINGS="0")
    subprocess.run([str(ANSIBLE), "all", "-i", str(inventory), "-m", "ping", "-e", f"ansible_ssh_executable={recorder}",
                    "-e", "ansible_ssh_retries=0"], capture_output=True, env=env, cwd=tmp_path, timeout=120)
    calls = {}
    for call in out.iterdir():
        argv = [a.decode() for a in call.read_bytes().split(b"\0")[:-1]]
        calls[argv[-2]] = argv[:-1]  # keyed by the address ssh was given; the remote command dropped
    hosts = load_inventory(str(inventory)).hosts
    assert set(calls) == {h.address for h in hosts.values()}
    for host in hosts.values():
        ssh = ssh_resolves(calls[host.address])
        assert (host.port or 22) == int(ssh["port"][0]), host.name
        if host.user:
            assert host.user == ssh["user"][0], host.name
        if host.key_file:
            assert host.key_file == ssh["identityfile"][0], host.name
        if host.known_hosts_file:
            assert host.known_hosts_file == ssh["userknownhostsfile"][0].split()[0], host.name
        jump = re.sub(r"\[([^\]]*)\]", r"\1", ssh.get("proxyjump", [""])[0])  # ssh -G brackets addresses
        assert (host.proxy_jump or "") == jump, host.name
        assert (host.proxy_command or "none") == ssh.get("proxycommand", ["none"])[0], host.name
    # and the cases are the ones meant: the oracle agreeing on defaults only would prove little
    assert (hosts["a2"].port, hosts["a2"].user) == (2222, "ops")          # ansible_* before common args
    assert hosts["a6"].port == 2000                                         # ansible_ssh_args before ansible_port
    assert (hosts["a4"].proxy_jump, hosts["a4"].proxy_command) == ("ops@198.18.9.253:2200", None)
    assert (hosts["a5"].proxy_jump, hosts["a5"].proxy_command) == ("a@198.18.9.252", None)
    assert hosts["a3"].proxy_command == "ssh -W %h:%p jump@198.18.9.254"
    assert (hosts["g1"].proxy_jump, hosts["g1"].known_hosts_file) == ("bastion.lab", "/kh/group")
    assert (hosts["g2"].proxy_jump, hosts["g2"].known_hosts_file) == (None, "/kh/own")  # host's args replace
    assert (hosts["a9"].user, hosts["a9"].port) == ("erin", 2400)


def load_ini(tmp_path: Path, text: str):
    path = tmp_path / "hosts.ini"
    path.write_text(text)
    return load_inventory(str(path))


@pytest.mark.parametrize("line, problem", [
    ("h1 ansible_ssh_common_args='-o ProxyCommand=\"nc %h %p\" -J b1'", "ssh refuses -J after a ProxyCommand"),
    ("h1 ansible_ssh_common_args='-o Port=abc'", "Port in ansible_ssh_common_args of host h1 must be an integer port"),
    ("h1 ansible_ssh_extra_args='-o \"Port 22'", "ansible_ssh_extra_args of host h1: No closing quotation"),
    ("h1 ansible_python_interpreter='/usr/bin/env python3'", "must be one program"),
    ("h1 ansible_host='{{ inventory_hostname | upper }}'", "is a Jinja template rstfleet cannot evaluate"),
    ("h1 ansible_host='{{ undefined_name }}'", "uses {{ undefined_name }}, which is not a plain variable"),
])
def test_ssh_settings_ssh_itself_would_refuse_are_errors_with_file_and_line(tmp_path, line, problem):
    with pytest.raises(InventoryError) as caught:
        load_ini(tmp_path, f"[web]\n{line}\n")
    assert str(caught.value).startswith(f"{tmp_path / 'hosts.ini'}:2: ")
    assert problem in str(caught.value)


def test_plain_variable_references_in_connection_variables_are_filled_in(tmp_path):
    host = load_ini(tmp_path, """\
[web]
web1.lab ansible_host='{{ inventory_hostname_short }}.{{ domain }}' ansible_ssh_common_args='-J {{ jump }}'
[web:vars]
domain=prod.example
jump={{ jump_user }}@198.18.9.254
jump_user=ops
""").hosts["web1.lab"]
    assert (host.address, host.proxy_jump) == ("web1.prod.example", "ops@198.18.9.254")
    assert host.vars["ansible_host"] == "{{ inventory_hostname_short }}.{{ domain }}"  # as ansible-inventory shows it


def test_a_bad_port_in_group_vars_names_that_file_and_line(tmp_path):
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "web.yml").write_text("tier: web\nansible_port: 22a\n")
    with pytest.raises(InventoryError) as caught:
        load_ini(tmp_path, "[web]\nh1\n")
    assert str(caught.value) == (f"{tmp_path / 'group_vars' / 'web.yml'}:2: ansible_port of host h1 must be an "
                                 "integer port, got '22a'")


@pytest.mark.parametrize("value, expected", [
    ("/usr/bin/python3.11", "/usr/bin/python3.11"), ("python3", "python3"), ("auto", None),
    ("auto_silent", None), ("auto_legacy", None), ("auto_legacy_silent", None),
])
def test_python_interpreter_becomes_host_python(tmp_path, value, expected):
    assert load_ini(tmp_path, f"h1 ansible_python_interpreter={value}\n").hosts["h1"].python == expected


def test_settings_rstfleet_does_not_honour_are_named_in_one_warning(tmp_path):
    inventory = load_ini(tmp_path, """\
[web]
w1 ansible_password=secret ansible_ssh_common_args='-o StrictHostKeyChecking=no -F /etc/other -o ControlPersist=60s'
w2 ansible_password=secret ansible_become_method=su ansible_become_user=postgres
w3 ansible_host_key_checking=false ansible_become_pass=x ansible_ssh_executable=/opt/ssh
w4 ansible_become_method=sudo ansible_become_user=root ansible_ssh_common_args='-C -o ServerAliveInterval=5'
""")
    (warning,) = inventory.warnings
    assert warning.startswith(f"{tmp_path / 'hosts.ini'}: not honoured: ")
    for expected in ("ansible_password on 2 host(s), e.g. w1 (rstfleet logs in with keys and the SSH agent only",
                     "-o StrictHostKeyChecking=no in ansible_ssh_common_args on 1 host(s)",
                     "-F in ansible_ssh_common_args", "ansible_become_method=su", "ansible_become_user=postgres",
                     "ansible_host_key_checking=false", "ansible_become_pass", "ansible_ssh_executable"):
        assert expected in warning, expected
    assert "w4" not in warning and "ControlPersist" not in warning and "secret" not in warning


def test_a_clean_inventory_has_no_warning(tmp_path):
    assert load_ini(tmp_path, "h1 ansible_port=2222 ansible_ssh_common_args='-o ProxyJump=b -C'\n").warnings == []


def test_vaulted_values_are_left_out_with_a_warning(tmp_path):
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "all.yml").write_text(
        "plain: 1\nansible_become_pass: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6162\n")
    (tmp_path / "group_vars" / "web.yml").write_text("$ANSIBLE_VAULT;1.1;AES256\n61626364\n")
    inventory = load_ini(tmp_path, "[web]\nh1\n")
    assert inventory.hosts["h1"].vars == {"plain": 1}
    assert any("all.yml:2: ansible_become_pass is encrypted with ansible-vault" in w for w in inventory.warnings)
    assert any("web.yml: encrypted with ansible-vault: not read" in w for w in inventory.warnings)


def test_the_probe_runs_with_the_inventory_python(tmp_path):
    """Real local transport, real interpreters: the inventory's python is the one started."""
    settings = SweepSettings(window_s=0.2, forks=1, connect_timeout_s=5, margin_s=20,
                             max_output=limits.MAX_OUTPUT, probe_options=())
    inventory = load_ini(tmp_path, f"good ansible_connection=local ansible_python_interpreter={sys.executable}\n"
                                   "bad ansible_connection=local ansible_python_interpreter=/nonexistent/python3.99\n")
    good = probe_host(inventory.hosts["good"], LocalTransport(), settings)
    assert good.status == Status.OK, good.reason
    bad = probe_host(inventory.hosts["bad"], LocalTransport(), settings)
    assert bad.status == Status.NO_PYTHON
    assert "/nonexistent/python3.99" in bad.reason


def test_list_hosts_prints_each_plan_and_touches_no_host(tmp_path):
    marker = tmp_path / "proxy-ran"
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(f"""\
[web]
w1 ansible_host=198.18.9.31 ansible_port=2222 ansible_user=ops ansible_ssh_private_key_file=/keys/w1
w2 ansible_host=198.18.9.32 ansible_ssh_common_args='-o ProxyCommand="touch {marker}" -o UserKnownHostsFile=/kh/web'
local ansible_connection=local ansible_python_interpreter=/usr/bin/python3 ansible_become=yes
""")
    done = run_cli("sweep", "-i", str(inventory), "--list-hosts", "--ssh-config", "none",
                   "--window", "1", timeout=30)
    assert done.returncode == 0, done.stderr.decode()
    lines = done.stdout.decode().splitlines()
    assert lines[0] == "hosts (3):"
    assert lines[1].split() == ["w1", "connection=ssh", "address=198.18.9.31", "port=2222", "user=ops",
                                "keys=/keys/w1", lines[1].split()[6], "proxy=-", "python=python3", "become=no"]
    assert "known_hosts=/kh/web" in lines[2] and "port=22 " in lines[2]
    assert lines[3].split() == ["local", "connection=local", "python=/usr/bin/python3", "become=sudo"]
    assert not marker.exists()


def test_list_hosts_shows_the_inventorys_proxy(tmp_path):
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("w1 ansible_host=198.18.9.41 ansible_ssh_common_args='-J ops@198.18.9.254'\n")
    done = run_cli("sweep", "-i", str(inventory), "--list-hosts", "--ssh-config", "none")
    assert "proxy_jump=ops@198.18.9.254" in done.stdout.decode()


def test_list_hosts_of_a_playbook_prints_each_play_and_asks_no_password():
    done = run_cli("run", "-i", "tests/fixtures/inventory/fleet.yml", "playbooks/sweep.yml", "--list-hosts", "-K",
                   timeout=30)
    assert done.returncode == 0, done.stderr.decode()
    out = done.stdout.decode()
    assert out.startswith("PLAY [") and " hosts (12):\n  bastion  connection=ssh  address=198.18.1.1  port=2200" in out
    assert b"password" not in done.stderr.lower()
