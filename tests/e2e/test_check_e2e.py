"""`rstfleet check` on a real lab where hosts are broken on purpose: every row says exactly what
is missing, the healthy hosts say ready, and the whole check takes seconds (no window).

    h01, h06  healthy                          -> ready
    h02       tcpdump and lsof hidden           -> no: tcpdump, lsof
    h03       no python3 on the session's PATH  -> no: python
    h04       sshd stopped                      -> no: reach
    h05       unknown host key                  -> no: host key
    h07       a key sshd does not accept        -> no: auth
and a non-root user without -b                  -> no: root (tracefs not tried)
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time

import pytest

from rstfleet_lab import lab_context

from helpers import broken_access_lines, hosts_by_name, require_root_lab, run_cli

pytestmark = pytest.mark.lab

BOUND_S = 8.0      # measured ≈ 1.5 s for 7 hosts (process start-up and paramiko included)
EXPECTED = {
    "h01": ("ready", []), "h06": ("ready", []),
    "h02": ("no: tcpdump, lsof", ["tcpdump", "lsof"]),
    "h03": ("no: python", ["python"]),
    "h04": ("no: reach", ["reach"]),
    "h05": ("no: host key", ["host key"]),
    "h07": ("no: auth", ["auth"]),
}


@pytest.fixture(scope="module")
def broken_lab(tmp_path_factory):
    require_root_lab()
    tmp = tmp_path_factory.mktemp("check")
    with lab_context(7, "c" + str(os.getpid() % 10000)) as lab:
        lab.set_faults("h02", hide=("/usr/bin/tcpdump", "/usr/bin/lsof"))
        lab.set_faults("h03", force_command='PATH=/nonexistent; export PATH; eval "$SSH_ORIGINAL_COMMAND"')
        lab.stop_sshd("h04")
        lines = broken_access_lines(lab, tmp, wrong_key="h07", unknown_key="h05")
        inventory = tmp / "inv.ini"
        inventory.write_text("[fleet]\n" + "\n".join(lines) + "\n[fleet:vars]\nansible_user=root\n")
        yield lab, inventory, tmp


def _check(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    proc = run_cli("check", *args, timeout=60)
    return proc, time.monotonic() - started


def test_each_row_says_exactly_what_is_missing_in_seconds(broken_lab):
    lab, inventory, tmp = broken_lab
    out = tmp / "check.json"
    proc, wall = _check("-i", str(inventory), "--connect-timeout", "3", "--format", "json", "-o", str(out))
    print(f"rstfleet check of {len(lab.hosts)} lab hosts: {wall:.2f} s wall\n{proc.stdout.decode()}")
    assert wall < BOUND_S, wall
    assert proc.returncode == 8, proc.stderr
    report = json.loads(out.read_text())
    by_name = hosts_by_name(report)
    assert set(by_name) == set(EXPECTED)
    rows = proc.stdout.decode().split("\n\n")[1].splitlines()[2:]     # the table, below its header
    table = {line.split()[0]: line for line in rows}
    for name, (verdict, missing) in EXPECTED.items():
        assert by_name[name]["missing"] == missing, (name, by_name[name])
        assert table[name].rstrip().endswith(verdict), table[name]
    assert report["summary"] == {"hosts": 7, "ready": 2, "not_ready": 5}


def test_reasons_say_what_to_do(broken_lab):
    lab, inventory, _ = broken_lab
    proc, _ = _check("-i", str(inventory), "--connect-timeout", "3", "--format", "json")
    checks = {h["host"]: h["checks"] for h in json.loads(proc.stdout)["hosts"]}
    assert "apt-get install tcpdump" in checks["h02"]["tcpdump"]["detail"]
    assert "install python3" in checks["h03"]["python"]["detail"]
    assert "refused" in checks["h04"]["reach"]["detail"].lower()
    assert "ssh-keyscan" in checks["h05"]["host key"]["detail"]
    assert checks["h07"]["auth"]["detail"].startswith("auth_failed")
    healthy = checks["h01"]
    assert [healthy[name]["shown"] for name in ("reach", "host key", "auth", "root", "tcpdump", "lsof")] == \
        ["ok", "ok", "ok", "yes", "yes", "yes"]
    # lab hosts run in `ip netns exec`, whose /sys has no tracefs: the probe mounts it privately
    assert healthy["tracefs"]["shown"] == "mountable", healthy["tracefs"]
    assert "tcp:tcp_send_reset with its reason field" in healthy["tracefs"]["detail"]
    for name in ("h04", "h05", "h07"):               # nothing after the failure is guessed
        assert checks[name]["python"]["state"] == "untried"


def test_the_check_left_no_tracefs_mount_or_instance_behind(broken_lab):
    lab, inventory, _ = broken_lab
    _check("-i", str(inventory), "-l", "h01", "--connect-timeout", "3")
    mounts = lab.run_in("h01", ["cat", "/proc/self/mounts"], capture_output=True, text=True).stdout
    assert "tracefs" not in mounts
    with open("/proc/self/mounts") as own:
        assert "tracefs" not in own.read() or os.path.isdir("/sys/kernel/tracing/instances")
    if os.path.isdir("/sys/kernel/tracing/instances"):
        assert not [n for n in os.listdir("/sys/kernel/tracing/instances") if n.startswith("rstfleet-")]


@pytest.fixture()
def plain_user():
    name = "rck" + secrets.token_hex(3)
    subprocess.run(["useradd", "-M", "-s", "/bin/bash", "-d", "/nonexistent", name], check=True)
    try:     # with UsePAM no, sshd refuses a locked account (no password set): give it one
        subprocess.run(["chpasswd"], input=f"{name}:pw-{secrets.token_urlsafe(12)}\n".encode(), check=True)
        yield name
    finally:
        subprocess.run(["userdel", "-f", name], capture_output=True)


def test_a_user_without_root_is_told_to_use_become(broken_lab, plain_user, tmp_path):
    lab, _, _ = broken_lab
    host = lab.host("h01")
    inventory = tmp_path / "inv.ini"
    inventory.write_text(f"h01 ansible_host={host.address} ansible_user={plain_user} "
                         f"ansible_ssh_private_key_file={lab.key_path} "
                         f"'ansible_ssh_common_args=-o UserKnownHostsFile={lab.known_hosts_path}'\n")
    proc, _ = _check("-i", str(inventory), "--format", "json")
    entry = json.loads(proc.stdout)["hosts"][0]
    assert proc.returncode == 8 and entry["missing"] == ["root"], entry
    assert "-b" in entry["checks"]["root"]["detail"] and entry["checks"]["tracefs"]["state"] == "untried"
    assert entry["checks"]["tcpdump"]["state"] == "ok"
