"""Bounded resources: a scheduled loop does not leak, a low open-file limit slows a big sweep but
never breaks it, and captures land only inside a private run folder."""

from __future__ import annotations

import os
import time
import stat
import threading
from pathlib import Path

import pytest

from rstfleet.inventory import load_inventory
from rstfleet_lab import lab_context
from rstfleet.sweep.pool import SweepSettings, sweep
from rstfleet.sweep.sessions import FDS_RESERVED
from rstfleet.transport import SSHSettings, transport_factory
from rstfleet.transport.ssh import SSHTransport

from helpers import json_report, require_root_lab, run_cli

pytestmark = pytest.mark.lab


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_twenty_sweeps_in_one_process_grow_no_threads_fds_or_memory(lab5):
    hosts = load_inventory(str(lab5.inventory_path)).select(None)
    settings = SweepSettings(window_s=0.2, connect_timeout_s=5)
    ssh = SSHSettings()

    def one_sweep():
        results = sweep(hosts, lambda h: SSHTransport(h, ssh), settings)
        assert [r.status for r in results] == ["ok"] * len(hosts)

    def settled_threads() -> int:
        """Workers and paramiko threads finish just after their last result: give them a moment."""
        import time
        deadline = time.monotonic() + 3
        while threading.active_count() > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        return threading.active_count()

    for _ in range(3):      # warm up: imports, caches, first-use allocations
        one_sweep()
    threads, fds, rss = settled_threads(), _fds(), _rss_kb()
    for _ in range(20):
        one_sweep()
    assert settled_threads() <= threads
    assert _fds() <= fds
    assert _rss_kb() - rss < 8 * 1024, (rss, _rss_kb())


def test_a_200_host_sweep_under_ulimit_n_256_completes_with_every_host(tmp_path):
    require_root_lab()
    with lab_context(200, "u" + str(os.getpid() % 10000)) as lab:
        out = tmp_path / "big.json"
        import subprocess, sys
        from helpers import ROOT
        proc = subprocess.run(
            ["bash", "-c", f"ulimit -n 256 && exec {sys.executable} -m rstfleet sweep -i "
                           f"{lab.inventory_path} --window 1 --format json -o {out} -q"],
            capture_output=True, timeout=180, cwd=str(ROOT), env=dict(os.environ, PYTHONPATH=str(ROOT)))
        report = json_report(out)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert len(report["hosts"]) == 200
    assert {h["status"] for h in report["hosts"]} == {"ok"}
    assert b"open-file limit 256" in proc.stderr          # said why it went slower
    window = report["fleet_window"]                          # and the report says it was split, and why
    held = 256 - FDS_RESERVED                                # one descriptor an SSH session (sessions.py)
    assert window["groups"] == -(-200 // held) == 2 and "open-file limit 256" in window["split_reason"], window


def test_captures_are_private_and_host_names_cannot_escape_the_run_folder(lab5, tmp_path):
    inventory = tmp_path / "evil.yml"
    inventory.write_text(
        "all:\n  hosts:\n"
        f"    '../../escape': {{ansible_host: {lab5.host('h01').address}}}\n"
        "  vars:\n    ansible_user: root\n"
        f"    ansible_ssh_private_key_file: {lab5.key_path}\n"
        f"    ansible_ssh_common_args: -o UserKnownHostsFile={lab5.known_hosts_path}\n")
    runs = tmp_path / "runs"
    proc = run_cli("sweep", "-i", str(inventory), "--capture", "1", "--run-dir", str(runs),
                   "--format", "json", "-o", str(tmp_path / "r.json"))
    assert proc.returncode == 0, proc.stderr.decode()
    [run_dir] = list(runs.iterdir())
    files = list(run_dir.iterdir())
    assert len(files) == 1 and files[0].suffix == ".pcap"
    assert files[0].resolve().parent == run_dir.resolve()
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    assert not (tmp_path / "escape.pcap").exists() and not Path("/escape.pcap").exists()
    entry = json_report(tmp_path / "r.json")["hosts"][0]
    assert entry["evidence"]["capture_path"] == str(files[0])
    assert "pcap_b64" not in entry["probe"]["capture"]            # the report stays small


@pytest.mark.parametrize("engine", ["paramiko", "asyncssh"])
def test_a_command_that_exits_before_reading_its_stdin_gives_its_exit_status_not_a_dead_session(lab5, engine):
    """A missing interpreter (`/nonexistent/python3`: the shell's exit 127) ends before the probe
    on stdin is sent; paramiko then fails sendall with "Socket is closed". The exit status and
    stderr already received are the answer (no_python), not "unreachable". 4 MB of stdin is
    past the channel window, so the remote's close always lands during sendall."""
    host = load_inventory(str(lab5.inventory_path)).select(None)[0]
    with transport_factory(SSHSettings(engine=engine)) as transports:
        transport = transports(host)
        try:
            run = transport.run(["sh", "-c", "echo gone >&2; exit 127"], b"#" * (4 << 20), time.monotonic() + 20)
        finally:
            transport.close()
    assert (run.exit_code, run.stderr.strip()) == (127, b"gone")
