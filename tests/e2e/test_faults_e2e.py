"""The fault matrix: one sweep over a lab where most hosts are broken on purpose, for real.

Every row: the run finishes within its stated bound, the host is in the report with a status
and a reason that says what to do next, the healthy hosts' figures are unharmed, and the exit
code says hosts were missed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from rstfleet_lab import lab_context, namespace_pids
from rstfleet_lab import inject_closed_port

from helpers import ROOT, broken_access_lines, hosts_by_name, lab_leftovers, require_root_lab

pytestmark = pytest.mark.lab

WINDOW, CONNECT_TIMEOUT = 4.0, 3.0
BOUND_S = CONNECT_TIMEOUT + WINDOW + 15 + 5     # the host budget plus process start-up
INJECTED = 40.0

FORCE = {   # host -> what its sshd runs instead of the probe
    "h07": 'PATH=/nonexistent; export PATH; eval "$SSH_ORIGINAL_COMMAND"',   # no python3
    "h08": 'cat >/dev/null; echo "{not json"',
    "h09": "cat >/dev/null; head -c 60000000 /dev/zero | tr '\\0' a",
    "h10": "cat >/dev/null; printf '\\033]0;pwned\\007\\033[2Jboom\\n' >&2; exit 3",
    "h11": "cat >/dev/null; head -c 200000 /dev/zero | tr '\\0' '['",
    "h12": "cat >/dev/null; printf '{\"kind\": \"rstfleet-probe\"\\000}'",
    "h13": "cat >/dev/null; printf '\\377\\376{}'",
}


def _kill_probe(lab, name, everything=False):
    ns = lab.host(name).namespace
    for pid in namespace_pids([ns])[ns]:
        try:
            argv = open(f"/proc/{pid}/cmdline", "rb").read()
        except OSError:
            continue
        if (b"sshd" in argv) == everything and (everything or b"--window" in argv):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    require_root_lab()
    tmp = tmp_path_factory.mktemp("faults")
    with lab_context(15, "f" + str(os.getpid() % 10000)) as lab:
        lab.stop_sshd("h03")
        lab.regenerate_host_key("h04")
        for name, command in FORCE.items():
            lab.set_faults(name, force_command=command)
        lines = broken_access_lines(lab, tmp, wrong_key="h05", unknown_key="h06")
        noroute = lab.hosts[0].address.rsplit(".", 1)[0] + ".250"
        lines.append(f"h16 ansible_host={noroute} ansible_ssh_private_key_file={lab.key_path}")
        inventory = tmp / "inv.ini"
        inventory.write_text("[fleet]\n" + "\n".join(lines) + "\n[fleet:vars]\nansible_user=root\n")
        out = tmp / "report.json"
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        with inject_closed_port(lab.host("h01").address, INJECTED, duration=WINDOW + 15):
            time.sleep(1.0)
            started = time.monotonic()
            proc = subprocess.Popen(
                [sys.executable, "-m", "rstfleet", "sweep", "-i", str(inventory), "--window", str(WINDOW),
                 "--connect-timeout", str(CONNECT_TIMEOUT), "--format", "json", "-o", str(out)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=str(ROOT))
            time.sleep(WINDOW / 2 + 1)
            _kill_probe(lab, "h14")                       # the probe dies mid-window
            _kill_probe(lab, "h15", everything=True)      # the whole host dies mid-window:
            _kill_probe(lab, "h15")                       # its sshd first, then the probe
            stdout, stderr = proc.communicate(timeout=120)
            wall = time.monotonic() - started
        leftovers = lab_leftovers(lab)
        yield {"report": json.loads(out.read_text()), "code": proc.returncode, "wall": wall,
               "stdout": stdout.decode(), "stderr": stderr.decode(), "leftovers": leftovers}


def test_the_run_finishes_within_its_bound_and_exit_code_says_hosts_were_missed(matrix):
    assert matrix["wall"] < BOUND_S, matrix["wall"]
    assert matrix["code"] == 4 | 8, matrix["stderr"]
    assert len(matrix["report"]["hosts"]) == 16          # every host accounted for


def test_healthy_hosts_figures_are_unharmed(matrix):
    by_name = hosts_by_name(matrix["report"])
    assert by_name["h01"]["status"] == "ok"
    assert abs(by_name["h01"]["resets_sent_per_s"] - INJECTED) <= 0.2 * INJECTED
    assert by_name["h02"]["status"] == "ok" and by_name["h02"]["resets_sent_per_s"] < 1
    assert [h["host"] for h in matrix["report"]["hosts"][:1]] == ["h01"]


@pytest.mark.parametrize("host, status, words", [
    ("h03", "unreachable", "refused"),
    ("h04", "host_key_rejected", "CHANGED"),
    ("h05", "auth_failed", "authorized_keys"),
    ("h06", "host_key_rejected", "ssh-keyscan"),
    ("h07", "no_python", "install python3"),
    ("h08", "probe_error", "not JSON"),
    ("h09", "probe_error", "--max-output"),
    ("h10", "probe_error", "\\x1b]0;pwned\\x07"),
    ("h11", "probe_error", "JSON items"),
    ("h12", "probe_error", "NUL"),
    ("h13", "probe_error", "UTF-8"),
    ("h14", "probe_error", "killed"),
    ("h15", "unreachable", "connection lost"),
    ("h16", "unreachable", "198.18."),
])
def test_each_broken_host_has_its_status_and_an_actionable_reason(matrix, host, status, words):
    entry = hosts_by_name(matrix["report"])[host]
    assert (entry["status"], entry["rank"]) == (status, None), entry["reason"]
    assert words in entry["reason"]


def test_host_text_never_reaches_the_terminal_raw(matrix):
    assert "\x1b" not in matrix["stdout"] and "\x07" not in matrix["stdout"]
    assert "\x1b" not in matrix["stderr"]
    assert "pwned" in matrix["stdout"]          # shown, but escaped


def test_nothing_of_rstfleet_is_left_running_on_the_hosts(matrix):
    assert matrix["leftovers"] == []
