"""-b/-K for real: a non-root lab user whose sudo asks for a password.

The user exists machine-wide (lab hosts share /etc/passwd), so the fixture creates it with a
random name and password and always removes it and its sudoers entry.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import threading
import time
from pathlib import Path

import pytest

from helpers import json_report, run_cli

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def sudo_user():
    if subprocess.run(["sh", "-c", "command -v sudo"], capture_output=True).returncode:
        pytest.fail("these tests need sudo: apt-get install sudo (scripts/test.sh does)")
    name = "rst" + secrets.token_hex(3)
    password = "pw-" + secrets.token_urlsafe(12)
    sudoers = Path(f"/etc/sudoers.d/{name}")
    subprocess.run(["useradd", "-M", "-s", "/bin/bash", "-d", "/nonexistent", name], check=True)
    try:
        subprocess.run(["chpasswd"], input=f"{name}:{password}\n".encode(), check=True)
        sudoers.write_text(f"{name} ALL=(ALL) ALL\n")
        sudoers.chmod(0o440)
        yield name, password
    finally:
        sudoers.unlink(missing_ok=True)
        subprocess.run(["userdel", "-f", name], capture_output=True)


def _inventory(tmp_path, lab, user):
    host = lab.host("h01")
    path = tmp_path / "inv.ini"
    path.write_text(f"h01 ansible_host={host.address} ansible_user={user} "
                    f"ansible_ssh_private_key_file={lab.key_path} "
                    f"'ansible_ssh_common_args=-o UserKnownHostsFile={lab.known_hosts_path}'\n")
    return path


def test_unprivileged_user_runs_the_probe_without_become(lab5, sudo_user, tmp_path):
    user, _ = sudo_user
    out = tmp_path / "plain.json"
    proc = run_cli("sweep", "-i", str(_inventory(tmp_path, lab5, user)), "--capture", "1",
                   "--format", "json", "-o", str(out))
    entry = json_report(out)["hosts"][0]
    assert entry["status"] == "ok", entry["reason"]
    assert entry["probe"]["facts"]["uid"] != 0
    assert proc.returncode == 0
    notes = " ".join(entry["evidence"]["notes"])          # what could not be done, and what to do
    assert "not root" in notes and "-b" in notes, notes
    assert entry["evidence"]["tier"] in ("counters", "none")


def test_become_without_password_says_to_use_K(lab5, sudo_user, tmp_path):
    user, _ = sudo_user
    out = tmp_path / "b.json"
    proc = run_cli("sweep", "-i", str(_inventory(tmp_path, lab5, user)), "-b", "--window", "0.5",
                   "--format", "json", "-o", str(out))
    entry = json_report(out)["hosts"][0]
    assert entry["status"] == "become_failed"
    assert "-K" in entry["reason"]
    assert proc.returncode == 8


def _scan_processes_for(secret: bytes, found: list, stop: threading.Event) -> None:
    """Every process's argv and environment, on this machine (which hosts the lab hosts too)."""
    while not stop.is_set():
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            for part in ("cmdline", "environ"):
                try:
                    if secret in Path(f"/proc/{pid}/{part}").read_bytes():
                        found.append((pid, part))
                except OSError:
                    pass
        time.sleep(0.05)


def test_become_password_from_K_works_and_never_shows_in_argv_env_or_output(lab5, sudo_user, tmp_path):
    user, password = sudo_user
    out = tmp_path / "k.json"
    found: list = []
    stop = threading.Event()
    scanner = threading.Thread(target=_scan_processes_for, args=(password.encode(), found, stop))
    scanner.start()
    try:
        proc = run_cli("sweep", "-i", str(_inventory(tmp_path, lab5, user)), "-b", "-K",
                       "--window", "2", "--format", "json", "-o", str(out), "-v",
                       input=(password + "\n").encode())
    finally:
        stop.set()
        scanner.join()
    entry = json_report(out)["hosts"][0]
    assert entry["status"] == "ok", entry["reason"]
    assert entry["probe"]["facts"]["uid"] == 0          # the probe really ran as root
    assert found == []
    assert password.encode() not in proc.stdout + proc.stderr
    assert password not in out.read_text()
