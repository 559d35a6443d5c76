"""An ordinary Ansible layout against real sshd: an inventory directory whose group_vars/ carry
the connection settings and whose host_vars/ change one host's port and others' python.
Before, rstfleet refused the directory and would have ignored every one of those files."""

from __future__ import annotations

import pytest

from helpers import hosts_by_name, json_report, run_cli

pytestmark = pytest.mark.lab


def test_group_vars_and_host_vars_of_an_inventory_directory_reach_the_hosts(lab5, tmp_path):
    inv = tmp_path / "inventory"
    (inv / "group_vars").mkdir(parents=True)
    (inv / "host_vars").mkdir()
    (inv / "hosts.ini").write_text("[lab]\n" + "".join(
        f"{name} ansible_host={lab5.host(name).address}\n" for name in ("h01", "h02", "h03")))
    (inv / "group_vars" / "lab.yml").write_text(
        f"ansible_user: root\nansible_ssh_private_key_file: {lab5.key_path}\n"
        f"ansible_ssh_common_args: -o UserKnownHostsFile={lab5.known_hosts_path}\n")
    (inv / "host_vars" / "h01.yml").write_text("ansible_port: 2222\n")            # nothing listens there
    (inv / "host_vars" / "h02").mkdir()
    (inv / "host_vars" / "h02" / "python.yml").write_text("ansible_python_interpreter: /nonexistent/python3\n")
    (inv / "host_vars" / "h03.yml").write_text("ansible_python_interpreter: /usr/bin/python3\n")
    out = tmp_path / "r.json"
    proc = run_cli("sweep", "-i", str(inv), "--window", "0.5", "--format", "json", "-o", str(out))
    hosts = hosts_by_name(json_report(out))
    assert hosts["h01"]["status"] == "unreachable" and ":2222" in hosts["h01"]["reason"], hosts["h01"]["reason"]
    assert hosts["h02"]["status"] == "no_python", hosts["h02"]["reason"]
    assert hosts["h03"]["status"] == "ok", hosts["h03"]["reason"]
    assert proc.returncode == 8
