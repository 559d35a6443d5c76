"""Triage's phase 2 covers every host at or over warn up to a stated bound; every host left out
says why and carries the exact, paste-safe command that digs into it.

run_phase is a fake here, deliberately: these tests are about triage's *selection* (who phase 2
digs into, who it leaves out and why), not about SSH or capture, which
tests/e2e/test_expected_e2e.py runs on real lab hosts (six alerting hosts, the printed command
run as printed).
"""

from __future__ import annotations

import json
import shlex
import subprocess

import pytest

from rstfleet.analysis import assess
from rstfleet.cli import build_parser
from rstfleet.inventory import Host
from rstfleet.plan import Plan
from rstfleet.probe.host.limits import PHASE2_QUIET, PHASE2_TOP
from rstfleet.report import render
from rstfleet.results import HostResult, Status, parse_probe_output
from rstfleet.sweep.coverage import dig_argv, dig_command, left_out_notes
from rstfleet.sweep.triage import Phase2, triage, triage_banner

from report_parsers import validate_schema

INVENTORY = "inventories/prod web.yml"          # a space: the command must quote it


def document(out_rsts: int, window: float = 10.0) -> dict:
    return parse_probe_output(json.dumps({
        "schema": 1, "kind": "rstfleet-probe", "window": {"measured_s": window},
        "tcp": {"delta": {"OutRsts": out_rsts}}, "baseline": {"OutRsts_per_s_lifetime": 100.0}}).encode())


def plan_for(hosts, *flags: str) -> Plan:
    args = build_parser().parse_args(["triage", "-i", INVENTORY, *flags])
    return Plan.from_args(dict(vars(args), triage=True), hosts=hosts)


class FakeFleet:
    """Phase 1 answers each host's OutRsts over 10 s; phase 2 (the capture run) answers per host
    as told (ok by default) and records which hosts it was asked to dig into."""

    def __init__(self, out_rsts: dict[str, int], phase2_status: dict[str, Status] | None = None):
        self.out_rsts, self.phase2_status = out_rsts, phase2_status or {}
        self.dug: list[str] | None = None

    def __call__(self, hosts, settings):
        if "--capture" in settings.probe_options:
            self.dug = [h.name for h in hosts]
            return [HostResult(h.name, h.address, self.phase2_status.get(h.name, Status.OK), "no answer",
                               document(self.out_rsts[h.name]) if self.phase2_status.get(h.name, Status.OK)
                               == Status.OK else None) for h in hosts]
        return [HostResult(h.name, h.address, Status.OK, "", document(self.out_rsts[h.name]))
                if self.out_rsts[h.name] >= 0 else HostResult(h.name, h.address, Status.UNREACHABLE, "refused")
                for h in hosts]


def fleet(n_quiet: int, alerting: list[int]) -> tuple[list[Host], dict[str, int]]:
    """Alerting hosts a01.. with the given OutRsts per 10 s (all ≥ 100: ≥ 10/s, warn), then quiet
    hosts q01.. with 1 reset each."""
    hosts = [Host(f"a{i:02d}", f"192.0.2.{i}") for i in range(1, len(alerting) + 1)]
    hosts += [Host(f"q{i:02d}", f"192.0.2.{100 + i}") for i in range(1, n_quiet + 1)]
    out = {h.name: count for h, count in zip(hosts, alerting)}
    out.update({h.name: 1 for h in hosts[len(alerting):]})
    return hosts, out


def test_by_default_phase_2_covers_every_host_at_or_over_warn_not_only_the_old_top_5():
    hosts, out = fleet(30, [600, 500, 400, 300, 200, 150])
    fake = FakeFleet(out)
    results, phase2 = triage(plan_for(hosts), fake)
    assert fake.dug == ["a01", "a02", "a03", "a04", "a05", "a06"]     # the sixth too; no quiet host
    assert phase2.finished == fake.dug and phase2.left_out == {}
    assert PHASE2_TOP >= 6


def test_with_top_3_the_other_alerting_hosts_each_say_why_and_carry_the_command():
    hosts, out = fleet(2, [600, 500, 400, 300, 200, 150])
    plan = plan_for(hosts, "--top", "3", "--capture", "45")
    results, phase2 = triage(plan, FakeFleet(out))
    assert phase2.finished == ["a01", "a02", "a03"]
    notes = left_out_notes(phase2, assess(results, plan.thresholds), plan)
    assert [n.host for n in notes] == ["a04", "a05", "a06"]
    for rank, note in enumerate(notes, start=4):
        assert note.why == (f"phase 2 dug into the 3 worst of 6 hosts at or over warn (--top 3); this one "
                            f"ranked #{rank} in phase 1")
        assert note.line == f"rstfleet triage -i 'inventories/prod web.yml' -l {note.host} --capture 45"
        assert shlex.split(note.line) == list(note.argv)


def test_a_quiet_fleet_still_gets_evidence_from_its_worst_hosts_that_sent_resets():
    hosts = [Host(f"h{i}", f"192.0.2.{i}") for i in range(1, 10)]
    out = {h.name: i for i, h in enumerate(hosts)}                    # h1 sent none, the rest < 10/s
    fake = FakeFleet(out)
    _, phase2 = triage(plan_for(hosts), fake)
    assert fake.dug == ["h9", "h8", "h7", "h6", "h5"][:PHASE2_QUIET]
    assert phase2.left_out == {}                                       # nobody at or over warn left out


def test_hosts_phase_1_could_not_check_and_hosts_whose_phase_2_failed_are_not_silent():
    hosts, out = fleet(0, [600, 500, 400])
    out["a03"] = -1                                                    # unreachable in phase 1
    plan = plan_for(hosts)
    results, phase2 = triage(plan, FakeFleet(out, {"a02": Status.TIMEOUT}))
    assert phase2.finished == ["a01"]                                  # a timeout is no finished phase 2
    assert phase2.failed == {"a02": "timeout: no answer"}
    notes = {n.host: n for n in left_out_notes(phase2, assess(results, plan.thresholds), plan)}
    assert notes["a02"].why == "phase 2 failed: timeout: no answer"
    assert notes["a03"].why == "phase 1 could not check it (unreachable: refused)"
    assert all(n.line.startswith("rstfleet triage -i 'inventories/prod web.yml' -l a0") for n in notes.values())


def test_the_dig_command_carries_this_runs_values_and_never_its_outputs_limit_or_shard():
    argv = dig_argv(vars(build_parser().parse_args([
        "triage", "-i", "inv.yml", "-l", "web*", "--shard", "1/2", "--top", "2", "-o", "r.json",
        "--format", "json", "-u", "ops", "--known-hosts", "kh 1", "--known-hosts", "kh2", "-b",
        "--warn", "5", "--expected", "exp.yml", "--capture", "90", "--window", "30",
        "--connect-timeout", "4.5", "--run-dir", "runs"])))
    assert argv == ("rstfleet", "triage", "-i", "inv.yml", "-u", "ops", "--expected", "exp.yml",
                    "--known-hosts", "kh 1", "--known-hosts", "kh2", "-b", "--window", "30", "--warn", "5",
                    "--connect-timeout", "4.5", "--run-dir", "runs", "--capture", "90")


@pytest.mark.parametrize("host, groups, expected", [
    ("web1", (), ("rstfleet", "triage", "-l", "web1", "--capture", "60")),
    ("-rf", (), ("rstfleet", "triage", "--limit=-rf", "--capture", "60")),   # not an option
    ("web[1]", (), ()),                                                      # a subscript pattern
    ("db,web", (), ()),
    ("web1", ("web1",), ()),                                                 # also a group's name
    ("web\x1b]0;x\x07", (), ()),
])
def test_a_dig_command_selects_exactly_its_host_or_is_not_printed(host, groups, expected):
    argv, problem = dig_command(("rstfleet", "triage", "--capture", "60"), host, groups)
    assert argv == expected
    assert bool(problem) == (not expected)


def test_hostile_paths_are_quoted_so_a_real_shell_runs_exactly_the_argv(tmp_path):
    """bash is the oracle: the printed line, run by bash with a stand-in `rstfleet` that prints
    its arguments, gives back exactly the argv, and nothing else runs."""
    hostile = "inv $(touch {0}/x); `touch {0}/y` 'q'\".yml".format(tmp_path)
    hosts, out = fleet(0, [600, 500])
    args = build_parser().parse_args(["triage", "-i", hostile, "--top", "1"])
    plan = Plan.from_args(dict(vars(args), triage=True), hosts=hosts)
    results, phase2 = triage(plan, FakeFleet(out))
    [note] = left_out_notes(phase2, assess(results, plan.thresholds), plan)
    stand_in = tmp_path / "bin" / "rstfleet"
    stand_in.parent.mkdir()
    stand_in.write_text("#!/bin/sh\nprintf '%s\\0' \"$@\"\n")
    stand_in.chmod(0o755)
    ran = subprocess.run(["bash", "-c", note.line], capture_output=True, timeout=10,
                         env={"PATH": f"{stand_in.parent}:/usr/bin:/bin"})
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.decode().split("\0")[:-1] == ["triage", "-i", hostile, "-l", "a02", "--capture", "60"]
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_the_banner_states_the_bound():
    hosts, _ = fleet(1, [600])
    assert "on every host at or over warn, worst first, at most 7 (--top)" in triage_banner(plan_for(hosts, "--top", "7"))


@pytest.mark.parametrize("fmt, shown", [
    ("table", "a03: phase 2 dug into the 2 worst of 3 hosts at or over warn (--top 2)"),
    ("markdown", "`rstfleet triage -i 'inventories/prod web.yml' -l a03 --capture 60`"),
    ("html", "rstfleet triage -i &#x27;inventories/prod web.yml&#x27; -l a03 --capture 60"),
    ("junit", "rstfleet triage -i 'inventories/prod web.yml' -l a03 --capture 60"),
    ("prometheus", 'rstfleet_phase2_covered{host="a03"} 0'),
    ("json", '"line": "rstfleet triage -i \'inventories/prod web.yml\' -l a03 --capture 60"'),
])
def test_every_format_shows_the_hosts_left_out_with_why_and_command(fmt, shown):
    hosts, out = fleet(0, [600, 500, 400])
    plan = plan_for(hosts, "--top", "2")
    results, phase2 = triage(plan, FakeFleet(out))
    assessments = assess(results, plan.thresholds)
    meta = {"window_s": 10.0, "exit_code": 4, "phase2_hosts": phase2.finished, "phase2_bound": 2,
            "phase2_left_out": left_out_notes(phase2, assessments, plan)}
    text = render(fmt, assessments, plan.thresholds, meta)
    assert shown in text
    if fmt == "json":
        document_ = json.loads(text)
        validate_schema(document_)
        assert [n["host"] for n in document_["phase2_left_out"]] == ["a03"]
        assert document_["phase2_bound"] == 2


def test_phase2_records_no_left_out_host_when_everyone_at_warn_was_dug_into():
    assert Phase2.of([], {}) == Phase2()
