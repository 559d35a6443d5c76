"""Expected resets: declared rules excuse the resets they match from verdicts, scores, ranking
and exit codes, while every report still counts and shows them. Matching and exclusion are pure
(hand-made probe documents, validated as live output); rules are checked before any host, each
problem named where the operator wrote it (file:line, or the inventory's file:line)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rstfleet.analysis import EXIT_OK, EXIT_OVER_THRESHOLD, assess, exit_code
from rstfleet.cli import build_parser
from rstfleet.expected import ExpectedError, rule_from_mapping, rules_for_hosts
from rstfleet.inventory import load_inventory
from rstfleet.plan import Plan
from rstfleet.playbook import PlaybookError, load_expected, load_playbook
from rstfleet.report import render
from rstfleet.results import HostResult, Status, parse_probe_output
from rstfleet.saved import load_merged, saved_expected

from helpers import ansible_inventory, plain, run_cli
from pcap_builders import pcap_file, v4_rst
from report_parsers import validate_schema

LOCAL, LB, OTHER = "192.0.2.1", "198.51.100.7", "203.0.113.5"


def document(out_rsts, flows=None, tcpext=None, window=10.0):
    doc = {"schema": 1, "kind": "rstfleet-probe", "window": {"measured_s": window},
           "tcp": {"delta": {"OutRsts": out_rsts}}, "tcpext_delta": tcpext or {},
           "facts": {"addresses": [LOCAL]}, "baseline": {"OutRsts_per_s_lifetime": 1.0}}
    if flows is not None:
        doc["trace"] = {"available": True, "events": sum(f[3] for f in flows), "flows": [list(f) for f in flows]}
    return parse_probe_output(json.dumps(doc).encode())


def host(name, doc, pcap_bytes=None):
    return HostResult(name, name, Status.OK, "", doc, pcap=pcap_bytes)


def rule(source="test:1", **fields):
    return rule_from_mapping(fields, lambda key: f"{source}:{key}", source)


# An LB health check on 8080 aborting 400 connections, and 50 SYNs to closed port 9, in 10 s.
LB_AND_CLOSED = [[8080, LB, "TCP_ABORT_ON_CLOSE", 400], [9, OTHER, "NO_SOCKET", 50]]
HEALTH_CHECK = rule(port=8080, peers="198.51.100.0/24", cause="aborted_connection", reason="LB health check")


# --- matching and exclusion (analysis is pure: the rules are data) -------------------------------

def test_a_rule_on_one_port_takes_its_resets_out_of_the_verdict_and_the_rest_decide():
    result = host("web1", document(450, LB_AND_CLOSED))
    [without] = assess([result])
    assert without.verdict == "warn" and exit_code([without]) == EXIT_OVER_THRESHOLD
    [a] = assess([result], expected={"web1": (HEALTH_CHECK,)})
    assert a.resets_sent_per_s == 45.0                      # still counted: the alert's figure
    assert a.expected_per_s == pytest.approx(40.0)
    assert a.counted_per_s == pytest.approx(5.0)
    assert a.verdict == "ok" and exit_code([a]) == EXIT_OK
    assert a.score == pytest.approx(5.0)                    # closed_port's severity is 1.0
    assert "5.0/s not expected (45.0 − 40.0 expected)" in a.score_explained
    [match] = a.evidence.expected.matches
    assert (match.described, match.resets) == ("LB health check on 8080 from 198.51.100.0/24 "
                                               "(aborted_connection)", 400)


def test_expected_resets_leave_the_ranking():
    noisy_but_expected = host("lb1", document(1000, [[8080, LB, "TCP_ABORT_ON_CLOSE", 1000]]))
    smaller_real_problem = host("db1", document(200, [[5432, OTHER, "NO_SOCKET", 200]]))
    rules = {"lb1": (HEALTH_CHECK,)}
    assert [a.host for a in assess([noisy_but_expected, smaller_real_problem])] == ["lb1", "db1"]
    ranked = assess([noisy_but_expected, smaller_real_problem], expected=rules)
    assert [a.host for a in ranked] == ["db1", "lb1"]
    assert [a.verdict for a in ranked] == ["warn", "ok"]


@pytest.mark.parametrize("flow, matched", [
    ([8080, LB, "TCP_ABORT_ON_CLOSE", 10], True),
    ([8080, "::ffff:198.51.100.9", "TCP_ABORT_ON_CLOSE", 10], True),   # an IPv4-mapped peer is IPv4
    ([8080, OTHER, "TCP_ABORT_ON_CLOSE", 10], False),                  # peer outside the range
    ([8081, LB, "TCP_ABORT_ON_CLOSE", 10], False),                     # another port
    ([8080, LB, "NO_SOCKET", 10], False),                              # another cause
    ([8080, "0.0.0.0", "TCP_ABORT_ON_CLOSE", 10], False),              # a listener's RST names no peer
])
def test_every_field_a_rule_gives_must_match(flow, matched):
    [a] = assess([host("web1", document(10, [flow]))], expected={"web1": (HEALTH_CHECK,)})
    assert a.expected_per_s == (1.0 if matched else 0.0)


def test_the_first_matching_rule_claims_a_reset_so_nothing_is_excused_twice():
    rules = (rule(port=8080, reason="health check"), rule(cause="aborted_connection", reason="lingering app"))
    [a] = assess([host("web1", document(450, LB_AND_CLOSED))], expected={"web1": rules})
    assert [(m.described, m.resets) for m in a.evidence.expected.matches] == [("health check on 8080", 400)]
    assert a.expected_per_s == pytest.approx(40.0)


def test_the_score_weighs_only_the_causes_left_after_the_expected_ones():
    scan = [[port, OTHER, "NO_SOCKET", 10] for port in range(20000, 20010)]    # port_scan, severity 1.5
    doc = document(150, scan + [[9, LB, "NO_SOCKET", 50]])
    [plain] = assess([host("h", doc)])
    [a] = assess([host("h", doc)], expected={"h": (rule(cause="port_scan", reason="our scanner"),)})
    assert plain.evidence.causes[0].key == "port_scan"
    assert a.expected_per_s == pytest.approx(10.0) and a.score == pytest.approx(5.0 * 1.0)


def test_a_counters_only_host_matches_by_cause_and_says_which_rules_it_cannot_check():
    doc = document(50, tcpext={"TCPAbortOnClose": 30})           # no trace: counters tier
    rules = (rule(port=8080, reason="LB health check"), rule(cause="aborted_connection", reason="linger"))
    [a] = assess([host("h", doc)], expected={"h": rules})
    assert a.evidence.tier == "counters"
    assert [m.described for m in a.evidence.expected.matches] == ["linger (aborted_connection)"]
    assert a.expected_per_s == pytest.approx(3.0)                 # 30 of 50 resets, of 5/s
    [unchecked] = a.evidence.expected.unchecked
    assert "LB health check on 8080" in unchecked and "no port or peer" in unchecked


def test_a_capture_without_the_tracepoint_matches_ports_and_peers_but_no_cause():
    capture = pcap_file([*[v4_rst(LOCAL, 8080, LB, 40000 + i) for i in range(3)], v4_rst(LOCAL, 9, OTHER, 1)],
                        linktype=101)
    doc = document(4, tcpext={})
    rules = (rule(port=8080, reason="LB"), rule(port=9, cause="closed_port", reason="needs a cause"))
    [a] = assess([host("h", doc, capture)], expected={"h": rules})
    assert [(m.described, m.resets) for m in a.evidence.expected.matches] == [("LB on 8080", 3)]
    assert a.expected_per_s == pytest.approx(0.4 * 3 / 4)
    assert "gives no cause per reset" in a.evidence.expected.unchecked[0]


def test_resets_the_tracepoint_did_not_keep_match_cause_rules_from_the_counters():
    doc = document(100, [[9, OTHER, "NO_SOCKET", 40]], tcpext={"TCPAbortOnClose": 60})
    [a] = assess([host("h", doc)], expected={"h": (rule(cause="aborted_connection", reason="linger"),)})
    assert a.evidence.expected.total == 100 and a.evidence.expected.resets == 60
    assert a.expected_per_s == pytest.approx(6.0)


# --- rules: validation, inventory variables, files, plays -----------------------------------------

@pytest.mark.parametrize("fields, problem", [
    ({"port": 8080}, "test:1:None: a rule needs a reason"),
    ({"reason": "x"}, "a rule needs port, peers or cause"),
    ({"port": "8080", "reason": "x"}, "test:1:port: port must be a whole number 1..65535, not '8080'"),
    ({"port": True, "reason": "x"}, "port must be a whole number"),
    ({"port": [80, 443], "reason": "x"}, "one port per rule"),
    ({"peers": "198.51.100.7/24", "reason": "x"}, "did you mean 198.51.100.0/24?"),
    ({"peers": "lb.example.com", "reason": "x"}, "is no address or CIDR range"),
    ({"cause": "aborted_conection", "reason": "x"}, "did you mean 'aborted_connection'?"),
    ({"port": 80, "reasn": "x"}, "test:1:reasn: unknown key 'reasn' (did you mean 'reason'?)"),
    ({"port": 80, "reason": "a\x1b[2Jb"}, "must not contain control characters"),
    ({"port": 80, "reason": "x", "hosts": "~("}, "invalid host pattern"),
])
def test_a_bad_rule_is_refused_naming_where_it_was_written(fields, problem):
    with pytest.raises(ExpectedError) as raised:
        rule(**fields)
    assert problem in str(raised.value)


INVENTORY = """\
lb:
  hosts:
    lb1: {ansible_host: 192.0.2.11}
    lb2:
      ansible_host: 192.0.2.12
      rstfleet_expected_resets:
        - {port: 9000, reason: "lb2's own agent"}
  vars:
    rstfleet_expected_resets:
      - {port: 8080, peers: 198.51.100.0/24, cause: aborted_connection, reason: LB health check}
web:
  hosts:
    web1: {ansible_host: 192.0.2.21}
"""


def test_inventory_rules_follow_ansibles_precedence_with_ansible_inventory_as_the_oracle(tmp_path):
    """A host's own variable replaces its group's, as Ansible merges variables: the real
    ansible-inventory says which value each host holds."""
    source = tmp_path / "inventory.yml"
    source.write_text(INVENTORY)
    hosts = load_inventory(str(source)).select("all")
    rules, warnings = rules_for_hosts(hosts, ())
    assert warnings == [] and set(rules) == {"lb1", "lb2"}
    for name in ("lb1", "lb2"):
        oracle = ansible_inventory(tmp_path, "-i", str(source), "--host", name)
        declared = plain(json.loads(oracle.stdout))["rstfleet_expected_resets"]
        assert [r.to_json()["reason"] for r in rules[name]] == [d["reason"] for d in declared]
    assert rules["lb1"][0].source == f"{source}:9 (rstfleet_expected_resets)"


def test_a_bad_inventory_rule_names_the_inventory_line_and_no_host_is_touched(tmp_path):
    source = tmp_path / "inventory.yml"
    source.write_text(INVENTORY.replace("port: 9000", "port: 90000"))
    args = build_parser().parse_args(["sweep", "-i", str(source)])
    with pytest.raises(ExpectedError) as raised:
        Plan.from_args(vars(args))
    assert str(raised.value).startswith(f"{source}:6: host lb2: rstfleet_expected_resets[0].port: "
                                        f"port must be a whole number 1..65535, not 90000")
    with pytest.raises(ExpectedError, match="an inventory variable applies to its own host or group"):
        rule_from_mapping({"port": 1, "reason": "x", "hosts": "a"}, lambda key: "inv:1", "inv", allow_hosts=False)


@pytest.mark.parametrize("text, problem", [
    ("- port: '8080'\n  reason: x\n", ":1: port must be a whole number 1..65535, not '8080'"),
    ("- port: 8080\n  reason: x\n- port: 9\n  peers: 198.51.100.7/24\n  reason: y\n", ":4: peers:"),
    ("- {port: 8080, reason: x}\n- {port: 8080, reason: x, port: 9}\n", ":2: duplicate key 'port'"),
    ("- port: 8080\n  reason: x\n  why: y\n", ":3: unknown key 'why'"),
    ("rstfleet_expected_resets:\n  - {cause: closed_prot, reason: x}\n", ":2: cause must be one of"),
    ("port: 8080\n", ":1: unknown key 'port'"),
    ("- port: 8080\n  reason: [x\n", ":3: YAML syntax error: while parsing a flow sequence started on line 2"),
    ("", ":1: empty file"),
])
def test_an_expected_file_problem_is_named_at_its_line(tmp_path, text, problem):
    path = tmp_path / "expected.yml"
    path.write_text(text)
    with pytest.raises(ValueError) as raised:
        load_expected(str(path))
    assert f"{path}{problem}" in str(raised.value)


def test_an_expected_file_is_a_list_or_a_group_vars_style_mapping(tmp_path):
    listed, mapped = tmp_path / "list.yml", tmp_path / "group_vars.yml"
    listed.write_text("- port: 8080\n  hosts: lb\n  reason: LB health check\n")
    mapped.write_text("rstfleet_expected_resets:\n  - {port: 8080, hosts: lb, reason: LB health check}\n")
    [first], [second] = load_expected(str(listed)), load_expected(str(mapped))
    assert (first.port, first.hosts, first.reason, first.source) == (8080, "lb", "LB health check", f"{listed}:1")
    assert (second.port, second.hosts, second.source) == (8080, "lb", f"{mapped}:2")


def test_file_rules_apply_to_the_hosts_their_pattern_selects_and_a_pattern_selecting_none_is_said(tmp_path):
    source, rules_file = tmp_path / "inventory.yml", tmp_path / "expected.yml"
    source.write_text(INVENTORY)
    rules_file.write_text("- {port: 22, hosts: 'web*', reason: bastion}\n- {port: 1, hosts: dbs, reason: typo}\n")
    plan = Plan.from_args(vars(build_parser().parse_args(["sweep", "-i", str(source), "--expected", str(rules_file)])))
    assert [r.reason for r in plan.expected["web1"]] == ["bastion"]
    assert [r.reason for r in plan.expected["lb1"]] == ["LB health check"]
    assert any("hosts 'dbs' matches none of the 3 host(s)" in w for w in plan.warnings)


def test_a_play_declares_expected_resets_checked_at_their_line(tmp_path):
    book = tmp_path / "book.yml"
    book.write_text("- hosts: all\n  expected_resets:\n    - {port: 8080, reason: LB health check}\n")
    [play] = load_playbook(str(book)).plays
    assert [(r.port, r.source) for r in play.expected_resets] == [(8080, f"{book}:3")]
    book.write_text("- hosts: all\n  expected_resets:\n    - port: 8080\n      reason: x\n      cause: nope\n")
    with pytest.raises(ValueError, match=rf"{book}:5: cause must be one of"):
        load_playbook(str(book))
    book.write_text("- hosts: all\n  expected_resets: {port: 8080}\n")
    with pytest.raises(PlaybookError, match=rf"{book}:2: expected resets must be a list"):
        load_playbook(str(book))


def test_the_cli_refuses_a_bad_expected_file_before_any_host(tmp_path):
    bad = tmp_path / "expected.yml"
    bad.write_text("- port: 8080\n")
    done = run_cli("sweep", "-i", "192.0.2.1,", "--expected", str(bad), timeout=30)
    assert done.returncode == 2
    assert done.stderr.decode().strip() == f"rstfleet: {bad}:1: a rule needs a reason (shown in every report), " \
                                            f"e.g. reason: LB health check"


# --- every report says it; saved reports keep their rules ---------------------------------------

def _assessed(rules=(HEALTH_CHECK,)):
    results = [host("web1", document(450, LB_AND_CLOSED)), host("db1", document(30, [[5432, OTHER, "NO_SOCKET", 30]]))]
    expected = {"web1": tuple(rules)}
    return assess(results, expected=expected), expected


@pytest.mark.parametrize("fmt, shown", [
    ("table", "40.0 of 48.0 resets/s expected fleet-wide"),
    ("markdown", "40.0 of 48.0 resets/s expected fleet-wide"),
    ("html", "40.0 of 48.0 resets/s expected fleet-wide"),
    ("junit", "40.0 of 45.0 resets/s expected, left out of verdict, score and exit code"),
    ("prometheus", 'rstfleet_expected_resets_per_second{host="web1"} 40'),
    ("json", '"summary": "40.0 of 48.0 resets/s expected fleet-wide'),
])
def test_every_format_says_how_much_was_expected(fmt, shown):
    assessments, expected = _assessed()
    text = render(fmt, assessments, assess.__defaults__[0], {"window_s": 10.0, "exit_code": 0,
                                                              "expected_rules": expected})
    assert shown in text
    if fmt in ("table", "markdown", "html"):
        assert "LB health check on 8080" in text and "expected/s" in text


def test_a_saved_report_keeps_its_rules_and_report_expected_adds_more(tmp_path):
    assessments, expected = _assessed()
    saved = tmp_path / "run.json"
    document_ = json.loads(render("json", assessments, assess.__defaults__[0],
                                  {"window_s": 10.0, "exit_code": 0, "expected_rules": expected}))
    validate_schema(document_)
    saved.write_text(json.dumps(document_))
    merged = load_merged([str(saved)])
    again = assess(merged.results, expected=saved_expected(merged, ()))
    assert {a.host: a.verdict for a in again} == {"web1": "ok", "db1": "ok"}
    more = tmp_path / "more.yml"
    more.write_text("- {port: 5432, hosts: db1, reason: migration}\n")
    done = run_cli("report", str(saved), "--expected", str(more), "--format", "json", "-q", "-o",
                   str(tmp_path / "again.json"), timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    rerendered = json.loads((tmp_path / "again.json").read_text())
    by_host = {h["host"]: h for h in rerendered["hosts"]}
    assert by_host["web1"]["expected_resets_per_s"] == pytest.approx(40.0)
    assert by_host["db1"]["expected_resets_per_s"] == pytest.approx(3.0)
    assert [r["reason"] for r in by_host["db1"]["expected_rules"]] == ["migration"]


def test_a_plays_rules_add_to_the_files_and_its_dig_command_says_it_does_not_carry_them(tmp_path):
    source, rules_file, book = tmp_path / "inventory.yml", tmp_path / "expected.yml", tmp_path / "book.yml"
    source.write_text(INVENTORY)
    rules_file.write_text("- {port: 22, reason: bastion}\n")
    book.write_text("- hosts: web\n  steps: [sweep, capture]\n  expected_resets:\n    - {port: 9, reason: probe}\n")
    [play] = load_playbook(str(book)).plays
    options = vars(build_parser().parse_args(["run", "-i", str(source), "--expected", str(rules_file), str(book)]))
    hosts = load_inventory(str(source)).select("web")
    plan = Plan.from_play(play, hosts, options)
    assert [r.reason for r in plan.expected["web1"]] == ["probe", "bastion"]
    assert plan.dig[:4] == ("rstfleet", "triage", "-i", str(source)) and "--expected" in plan.dig
    assert plan.dig_note == "the play's expected_resets are not applied by this command"
