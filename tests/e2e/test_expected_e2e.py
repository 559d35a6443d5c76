"""Expected resets and phase 2's coverage, for real: the CLI, SSH to six lab hosts, the real probe,
tracepoint, tcpdump and lsof, and real resets from bounded injectors.

(a) a host whose resets on one port are declared expected in the inventory, while another port's
    are not: its verdict comes from the rest only, and the report says how much was excluded;
(b) six hosts over warn: with default settings phase 2 digs into all six (ports and owners); with
    --top 3 the other three each carry a note and a command which, run as printed by a real
    shell, digs into exactly that host.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import subprocess
import sys

import pytest
import yaml

from rstfleet_lab import inject_closed_port, lab_context

from helpers import ROOT, hosts_by_name, json_report, require_root_lab, run_cli
from report_parsers import parse_table

pytestmark = pytest.mark.lab

WINDOW, CAPTURE = "3", "4"
RATES = {"h01": 80.0, "h02": 70.0, "h03": 60.0, "h04": 50.0, "h05": 40.0, "h06": 30.0}  # all ≥ warn 10/s


@pytest.fixture(scope="module")
def lab6():
    require_root_lab()
    with lab_context(6, "x" + str(os.getpid() % 10000)) as lab:
        yield lab


@contextlib.contextmanager
def injecting(lab, rates: dict[str, float], duration: float, port: int = 9):
    """Bounded closed-port resets on each named host, stopped on the way out whatever happens."""
    injectors = [inject_closed_port(lab.host(name).address, rate, duration, port=port)
                 for name, rate in rates.items()]
    try:
        yield
    finally:
        for injector in injectors:
            injector.stop()
        for injector in injectors:
            injector.wait()


def test_resets_declared_expected_in_the_inventory_leave_the_verdict_to_the_rest(lab6, tmp_path):
    inventory = yaml.safe_load(lab6.inventory_path.read_text())
    inventory["lab"]["hosts"]["h01"]["rstfleet_expected_resets"] = [
        {"port": 8080, "reason": "LB health check"}]
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory))
    out = tmp_path / "sweep.json"
    # h01 and h02 get the same traffic: 40/s to 8080 (declared expected on h01 only) and 5/s to 9
    with injecting(lab6, {"h01": 40.0, "h02": 40.0}, 12, port=8080), \
            injecting(lab6, {"h01": 5.0, "h02": 5.0}, 12, port=9):
        done = run_cli("sweep", "-i", str(path), "-l", "h01:h02", "--trace", "--window", "4",
                       "--format", "json", "-o", str(out))
    report = json_report(out)
    by_name = hosts_by_name(report)
    h01, h02 = by_name["h01"], by_name["h02"]
    assert done.returncode == 4, done.stderr.decode()            # h02: nothing of it is expected
    assert h02["verdict"] == "warn" and h02["expected_resets_per_s"] == 0.0
    assert h01["verdict"] == "ok", h01["score_explained"]         # 5/s on port 9 is under warn
    assert h01["resets_sent_per_s"] == pytest.approx(45.0, rel=0.2)     # still counted
    assert h01["expected_resets_per_s"] == pytest.approx(40.0, rel=0.2)
    assert [h["host"] for h in report["hosts"]] == ["h02", "h01"]       # ranked by what counts
    [match] = h01["evidence"]["expected"]["matches"]
    assert match["described"] == "LB health check on 8080"
    assert match["rule"]["source"] == f"{path}:{_line_of(path, 'rstfleet_expected_resets')} (rstfleet_expected_resets)"
    table = done.stdout.decode()
    assert re.search(r"expected\s+\d+\.\d of \d+\.\d resets/s expected fleet-wide, left out of verdicts: "
                     r"LB health check on 8080 \d+\.\d/s \(h01\)", table), table
    assert re.search(r"expected\s+\d+\.\d of \d+\.\d resets/s expected, left out of verdict, score and exit code: "
                     r"LB health check on 8080", table), table


def _line_of(path, key: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if key in line)


def triage(lab, tmp_path, *flags: str) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / f"triage{len(flags)}.json"
    with injecting(lab, RATES, 25):
        done = run_cli("triage", "-i", str(lab.inventory_path), "--window", WINDOW, "--capture", CAPTURE,
                       "--run-dir", str(tmp_path / "runs"), "--format", "json", "-o", str(out), *flags)
    assert done.returncode == 4, done.stderr.decode()
    return done, json_report(out)


def dug_into(entry: dict) -> bool:
    """Phase 2 evidence: the tracepoint's ports, and owners looked up (here: nothing listens on 9)."""
    ports = {p["port"]: p for p in entry["evidence"]["top_ports"]}
    return (entry["probe"].get("phase2_window") is not None and 9 in ports
            and ports[9]["listening"] is False and "capture" in entry["evidence"]["evidence_used"])


def test_with_default_settings_phase_2_digs_into_all_six_alerting_hosts(lab6, tmp_path):
    _, report = triage(lab6, tmp_path)
    by_name = hosts_by_name(report)
    assert {name: by_name[name]["verdict"] for name in RATES} == {name: "warn" for name in RATES}
    assert sorted(report["phase2_hosts"]) == sorted(RATES)
    assert report["phase2_left_out"] == []
    for name in RATES:
        assert dug_into(by_name[name]), (name, by_name[name]["evidence"])


def test_with_top_3_the_others_say_why_and_their_printed_command_digs_into_exactly_them(lab6, tmp_path):
    done, report = triage(lab6, tmp_path, "--top", "3")
    by_name = hosts_by_name(report)
    assert len(report["phase2_hosts"]) == 3
    left = {note["host"]: note for note in report["phase2_left_out"]}
    assert set(left) == set(RATES) - set(report["phase2_hosts"])
    for name, note in left.items():
        assert "(--top 3)" in note["why"] and not dug_into(by_name[name])
        assert shlex.split(note["line"]) == ["rstfleet", "triage", "-i", str(lab6.inventory_path), "-l", name,
                                             "--window", WINDOW, "--run-dir", str(tmp_path / "runs"),
                                             "--capture", CAPTURE]
        assert note["line"] in done.stdout.decode()            # the table shows it as it is in the JSON
    # Run one as printed, by a real shell, with `rstfleet` on PATH as an installed CLI would be.
    name, note = sorted(left.items())[-1]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "rstfleet").write_text(f"#!/bin/sh\nexec {sys.executable} -m rstfleet \"$@\"\n")
    (bin_dir / "rstfleet").chmod(0o755)
    with injecting(lab6, {name: RATES[name]}, 20):
        dig = subprocess.run(["bash", "-c", note["line"]], capture_output=True, timeout=120, cwd=str(ROOT),
                             env=dict(os.environ, PYTHONPATH=str(ROOT), PATH=f"{bin_dir}:{os.environ['PATH']}"))
    assert dig.returncode == 4, dig.stderr.decode()
    table = dig.stdout.decode()
    ranked, missed = parse_table(table)
    assert [row[1] for row in ranked] == [name] and missed == []           # exactly that host
    assert re.search(rf"phase 2\s+capture and owners on {name}$", table, re.M), table
    assert "not dug" not in table
    assert re.search(r"port\s+9: \d+ resets, nothing listens on 9", table), table   # port and owner lookup
