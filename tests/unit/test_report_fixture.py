"""The saved lab sweep that the fast report tests render, and how each format is read back.

tests/fixtures/reports/lab-sweep.json is the JSON of a REAL sweep of the lab (4 hosts, 60 and
20 resets/s injected on h02 and h04, h03's sshd stopped), written by test_report_lab.py with
RSTFLEET_WRITE_REPORT_FIXTURE=1. The helpers below rebuild the exact assessments that sweep
rendered (its saved evidence included), and parse every format back into rows.
"""

from __future__ import annotations

import json

from rstfleet.report import render

from report_parsers import fixture_assessments, load_fixture, validate_schema


def test_fixture_is_a_real_lab_sweep_with_a_down_host_and_two_injected_hosts():
    report = load_fixture()
    assert [h["host"] for h in report["hosts"]][:2] == ["h02", "h04"]
    by_name = {h["host"]: h for h in report["hosts"]}
    assert by_name["h03"]["status"] == "unreachable" and by_name["h03"]["rank"] is None
    for name in ("h01", "h02", "h04"):
        probe = by_name[name]["probe"]
        assert probe["kind"] == "rstfleet-probe" and probe["tcp"]["delta"]["OutRsts"] >= 0
        assert probe["facts"], "a real probe document carries the host's facts"
    assert abs(by_name["h02"]["resets_sent_per_s"] - 60) <= 12
    assert abs(by_name["h04"]["resets_sent_per_s"] - 20) <= 4


def test_fixture_validates_against_the_published_schema():
    validate_schema(load_fixture())


ADDED_HOST_FIELDS = {"rule", "lifetime_verdict", "netdata", "episode"}   # since the fixture was written


def test_fixture_assessments_render_back_to_the_same_hosts_plus_only_the_added_fields():
    report = load_fixture()
    rendered = json.loads(render("json", *fixture_assessments()))
    # next_commands are rebuilt from the evidence by every render (the fixture predates them)
    commands = {h["host"]: h.pop("next_commands") for h in rendered["hosts"]}
    # so are the expected-reset fields: no rule was declared, so nothing is excused
    assert {(h.pop("expected_resets_per_s"), str(h.pop("expected_rules"))) for h in rendered["hosts"]} == {(0.0, "[]")}
    assert {h["evidence"].pop("expected") for h in rendered["hosts"] if h["evidence"]} == {None}
    assert commands["h02"] == [{"argv": ["lsof", "-i:9", "-P", "-n"], "line": "lsof -i:9 -P -n   # on h02: "
                                "is something meant to listen on port 9, a crashed service"}]
    # the fixture predates the received side: its saved evidence has none, and renders without it
    assert [h["evidence"].pop("received") for h in rendered["hosts"] if h["evidence"]] == [None, None, None]
    for old, new in zip(report["hosts"], rendered["hosts"], strict=True):
        assert set(new) - set(old) == ADDED_HOST_FIELDS
        assert {k: new[k] for k in old} == old
        assert new["rule"] == ("lifetime baseline" if old["rank"] is not None else None)
    assert rendered["fleet"].pop("both_ends")["pairs"] == []
    assert rendered["fleet"] == report["fleet"]
    validate_schema(rendered)
