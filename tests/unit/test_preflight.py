"""`rstfleet check`: each host's row says which check failed, which passed before it and which
were not tried; the probe's real `--check` mode on this machine; the check document is checked
like a probe document; input errors exit 2 before any host."""

from __future__ import annotations

import json
import os

import pytest

from rstfleet.inventory import Host
from rstfleet.preflight import (CHECKS, EXIT_INTERRUPTED, MISSING, OK, UNTRIED, exit_code, readiness,
                                render_json, render_table)
from rstfleet.probe.host.facts import find_tool
from rstfleet.results import CHECK_KIND, PROBE_KIND, HostResult, ProbeOutputError, Status, parse_probe_output
from rstfleet.sweep.pool import SweepSettings, probe_host
from rstfleet.transport.local import LocalTransport

from helpers import run_cli

SSH_HOST = Host("h01", "198.18.0.2")
GOOD = {"kind": CHECK_KIND, "schema": 1, "euid": 0,
        "facts": {"python": "3.11.2", "python_executable": "/usr/bin/python3", "uid": 0,
                  "tcpdump": "/usr/bin/tcpdump", "lsof": "/usr/bin/lsof"},
        "tracefs": {"available": True, "path": "/sys/kernel/tracing", "mounted": False, "reason_field": True}}


def _row(status=Status.OK, reason="", document=None, host=SSH_HOST, become=False):
    probe = document if document is not None else (GOOD if status == Status.OK else None)
    return readiness(host, HostResult(host.name, host.address, status, reason, probe, 0.1), become)


def _states(row) -> dict[str, str]:
    return {c.name: c.state for c in row.checks}


def test_a_host_with_everything_is_ready_and_every_check_is_ok():
    row = _row()
    assert list(_states(row)) == list(CHECKS)
    assert set(_states(row).values()) == {OK} and row.ready and row.missing == []
    assert [c.shown for c in row.checks] == ["ok", "ok", "ok", "3.11.2", "yes", "yes", "yes", "mountable"]
    assert exit_code([row]) == 0


@pytest.mark.parametrize("status, reason, failed, passed", [
    (Status.UNREACHABLE, "cannot connect to 198.18.0.2:22: Connection refused", "reach", []),
    (Status.TIMEOUT, "198.18.0.2:22 accepted TCP but sent no SSH banner", "reach", []),
    (Status.HOST_KEY_REJECTED, "host key for 198.18.0.2 is unknown", "host key", ["reach"]),
    (Status.AUTH_FAILED, "198.18.0.2 refused authentication", "auth", ["reach", "host key"]),
    (Status.NO_PYTHON, "python3 is not installed", "python", ["reach", "host key", "auth"]),
    (Status.PROBE_ERROR, "probe exited with 1: SyntaxError", "python", ["reach", "host key", "auth"]),
    (Status.TIMEOUT, "probe did not finish within its deadline (13 s)", "python", ["reach", "host key", "auth"]),
    (Status.BECOME_FAILED, "sudo needs a password on this host: rerun with -K", "root",
     ["reach", "host key", "auth"]),
])
def test_the_failed_check_carries_the_reason_the_ones_before_passed_the_rest_were_not_tried(
        status, reason, failed, passed):
    row = _row(status, reason)
    states = _states(row)
    assert [name for name, state in states.items() if state == MISSING] == [failed]
    assert [name for name, state in states.items() if state == OK] == passed
    assert all(state == UNTRIED for name, state in states.items() if name not in passed + [failed])
    detail = next(c.detail for c in row.checks if c.name == failed)
    assert detail == f"{status}: {reason}"
    assert not row.ready and exit_code([_row(), row]) == 8


def test_missing_tools_tracefs_and_root_are_named_with_what_to_do():
    no_tools = dict(GOOD, facts=dict(GOOD["facts"], tcpdump=None, lsof=None),
                    tracefs={"available": False, "path": None, "mounted": False,
                             "reason": "tracefs is not mounted and cannot be: unshare(CLONE_NEWNS) failed"})
    row = _row(document=no_tools)
    assert row.missing == ["tcpdump", "lsof", "tracefs"]
    details = {c.name: c.detail for c in row.checks}
    assert "apt-get install tcpdump" in details["tcpdump"] and "/proc" in details["lsof"]
    assert "unshare" in details["tracefs"]
    not_root = dict(GOOD, euid=1000, facts=dict(GOOD["facts"], uid=1000),
                    tracefs={"available": False, "reason": "not root"})
    row = _row(document=not_root)
    assert row.missing == ["root"] and "-b" in row.checks[4].detail
    assert _states(row)["tracefs"] == UNTRIED            # unknown without root: not reported missing


def test_become_shows_sudo_and_an_old_python_is_missing():
    assert _row(become=True).checks[4].shown == "sudo"
    old = dict(GOOD, facts=dict(GOOD["facts"], python="3.5.2"))
    assert _row(document=old).missing == ["python"]


def test_a_local_host_has_no_ssh_checks_and_an_interrupted_check_exits_130():
    row = _row(host=Host("localhost", "localhost", connection="local"))
    assert [c.shown for c in row.checks[:3]] == ["n/a"] * 3 and row.ready
    assert exit_code([_row(), _row(Status.CANCELLED, "run interrupted")]) == EXIT_INTERRUPTED


def test_table_and_json_say_what_is_missing_and_keep_host_text_inert():
    hostile = Host("h\x1b]0;pwn\x07", "198.18.0.3")
    rows = [_row(), _row(Status.UNREACHABLE, "refused \x1b[2J", host=hostile)]
    table = render_table(rows, 1.25)
    assert "\x1b" not in table and "\\x1b]0;pwn\\x07" in table and "no: reach" in table
    assert table.startswith("rstfleet check: 2 host(s), 1 ready, 1 not ready (1.2 s)")
    assert "What is missing:" in table and "unreachable: refused \\x1b[2J" in table
    document = json.loads(render_json(rows, 1.25))
    assert document["hosts"][1]["host"] == "h\x1b]0;pwn\x07" and document["exit_code"] == 8
    assert document["hosts"][1]["missing"] == ["reach"] and document["hosts"][0]["ready"] is True
    assert document["hosts"][1]["checks"]["auth"]["state"] == UNTRIED


def test_the_real_probe_check_mode_on_this_machine_reports_its_tools():
    """The probe payload as a sweep ships it, run by the local transport (no SSH, nothing faked)."""
    settings = SweepSettings(window_s=0.0, margin_s=10.0, probe_options=("--check",), document_kind=CHECK_KIND)
    result = probe_host(Host("localhost", "localhost", connection="local"), LocalTransport(), settings)
    assert result.status == Status.OK, result.reason
    facts = result.probe["facts"]
    assert facts["tcpdump"] == find_tool("tcpdump") and facts["lsof"] == find_tool("lsof")
    assert result.probe["euid"] == os.geteuid()
    assert result.elapsed_s < 5.0
    tracefs = result.probe["tracefs"]
    if os.geteuid() != 0:
        assert tracefs == {"available": False, "reason": "not root: the tracepoint needs root (rerun with -b)"}
    else:
        assert tracefs["available"] is True, tracefs
        assert tracefs["path"] in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
        with open("/proc/self/mounts") as mounts:      # the private mount went with the probe
            assert tracefs["mounted"] or "tracefs" not in mounts.read()


@pytest.mark.parametrize("document, message", [
    (dict(GOOD, tracefs={"available": "yes"}), "tracefs.available"),
    (dict(GOOD, facts={"uid": "0"}), "facts.uid"),
    (dict(GOOD, tracefs={"available": False, "mounted": 1}), "tracefs.mounted"),
    ({k: v for k, v in GOOD.items() if k != "tracefs"}, "tracefs"),
    (dict(GOOD, kind=PROBE_KIND), "not an rstfleet check document"),
])
def test_a_broken_or_hostile_check_document_is_refused(document, message):
    with pytest.raises(ProbeOutputError, match=message):
        parse_probe_output(json.dumps(document).encode(), kind=CHECK_KIND)


def test_a_check_document_is_never_taken_for_a_sweep_result():
    with pytest.raises(ProbeOutputError, match="not an rstfleet probe document"):
        parse_probe_output(json.dumps(GOOD).encode())


def test_check_on_the_local_host_prints_the_table_and_json():
    proc = run_cli("check")
    assert proc.returncode in (0, 8), proc.stderr
    assert "localhost" in proc.stdout.decode() and "tracefs" in proc.stdout.decode()
    document = json.loads(run_cli("check", "--format", "json").stdout)
    assert document["schema"] == "rstfleet.check/1" and document["hosts"][0]["host"] == "localhost"
    assert document["hosts"][0]["checks"]["tcpdump"]["state"] == (OK if find_tool("tcpdump") else MISSING)


@pytest.mark.parametrize("args, words", [
    (["-i", "/nonexistent/inventory.ini"], "/nonexistent/inventory.ini"),
    (["--forks", "0"], "--forks"),
    (["--connect-timeout", "-5"], "--connect-timeout"),
    (["--window", "3"], "unrecognized arguments: --window"),
    (["--format", "html"], "invalid choice"),
])
def test_input_errors_exit_2_before_any_host(args, words):
    proc = run_cli("check", *args)
    assert proc.returncode == 2 and words in proc.stderr.decode(), proc.stderr
    assert proc.stdout == b""
