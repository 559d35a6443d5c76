"""Each format, rendered from the saved real lab sweep and read back: what a person, a CI system
or a Prometheus server gets out of it."""

from __future__ import annotations

import dataclasses
import json
import re
import time
import xml.etree.ElementTree as ET

import pytest

from rstfleet.report import FORMATS, render
from rstfleet.report.chart import nice_max

from report_parsers import (fixture_assessments, load_fixture, parse_html, parse_markdown,
                                 parse_prometheus, parse_table, validate_schema)

RANKED = ["h02", "h04", "h01"]
DOWN = "h03"
# Expected values come from the saved sweep itself, so regenerating the fixture keeps these valid.
SAVED = {h["host"]: h for h in load_fixture()["hosts"]}
WORST, SECOND, MISSED = SAVED["h02"], SAVED["h04"], SAVED[DOWN]
WORST_PORT = WORST["evidence"]["top_ports"][0]
WORST_PEER = WORST["evidence"]["top_peers"][0]
WORST_CAUSE = WORST["evidence"]["causes"][0]
README_FIELDS = ["schema", "generated_at", "window_s", "thresholds", "summary", "exit_code", "hosts"]
README_HOST_FIELDS = ["rank", "host", "address", "groups", "status", "reason", "resets_sent_per_s",
                      "baseline_per_s", "verdict", "spike", "window_s", "elapsed_s", "score",
                      "score_explained", "evidence", "next_commands", "expected_resets_per_s",
                      "expected_rules", "probe", "rule", "lifetime_verdict", "netdata", "episode"]


def rendered(fmt: str, **meta_overrides) -> str:
    assessments, thresholds, meta = fixture_assessments()
    return render(fmt, assessments, thresholds, {**meta, **meta_overrides})


def with_owners(listening: bool | None, owners: list[dict]):
    """The fixture, with h02's and h04's top port given an owner lookup result."""
    assessments, thresholds, meta = fixture_assessments()
    for a in assessments[:2]:
        a.evidence.top_ports[0].listening = listening
        a.evidence.top_ports[0].owners = owners
    return assessments, thresholds, meta


def test_the_cli_offers_every_format_and_an_unknown_one_is_refused():
    assert FORMATS == ("table", "json", "markdown", "html", "junit", "prometheus")
    with pytest.raises(ValueError, match="choose one of table, json"):
        render("yaml", *fixture_assessments())


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_renders_an_empty_fleet_and_a_fleet_where_nobody_answered(fmt):
    assessments, thresholds, meta = fixture_assessments()
    assert render(fmt, [], thresholds, {"window_s": None, "exit_code": 0})
    down = [a for a in assessments if a.rank is None]
    assert DOWN in render(fmt, down, thresholds, meta)


def test_table_puts_the_fleet_summary_before_the_ranked_table_then_details_then_missed_hosts():
    text = rendered("table")
    ranked, missed = parse_table(text)
    assert [row[1] for row in ranked] == RANKED
    assert ranked[0][2:6] == [f"{WORST['resets_sent_per_s']:.2f}", f"{WORST['baseline_per_s']:.2f}",
                              "warn (spike)", f"{WORST['score']:.1f}"]
    assert missed == [[DOWN, "unreachable", MISSED["reason"]]] and "refused" in MISSED["reason"]
    order = [text.index(s) for s in ("Fleet", "198.18.0.1 got resets from 2 hosts: h02, h04",
                                     "port 9 resets on 2 hosts of group lab", "rank    host",
                                     "#1 h02", "#2 h04", "Not checked:")]
    assert order == sorted(order)
    assert "#3 h01" not in text                   # no detail block for a host without resets
    detail = text[text.index("#1 h02"):text.index("#2 h04")]
    evidence = WORST["evidence"]
    for expected in (f"closed_port {WORST_CAUSE['share']:.0%} ({WORST_CAUSE['resets']} resets)",
                     f"9: {WORST_PORT['resets']} resets", f"{WORST_PEER[0]} ({WORST_PEER[1]})",
                     f"tier {evidence['tier']} ({', '.join(evidence['evidence_used'])})",
                     "h02.pcap", "lsof -i:9 -P -n"):
        assert expected in detail


def test_table_has_no_colour_unless_the_cli_asks_for_it():
    assert "\x1b" not in rendered("table")
    coloured = rendered("table", color=True)
    assert "\x1b[33mwarn (spike)\x1b[0m" in coloured
    assert parse_table(re.sub(r"\x1b\[[0-9;]*m", "", coloured))[0] == parse_table(rendered("table"))[0]


def test_top_port_shows_its_owner_or_that_nothing_listens():
    owner = [{"pid": 812, "command": "nginx", "user": "www-data"}]
    text = render("table", *with_owners(True, owner))
    assert "9 (nginx)" in text
    assert f"9: {WORST_PORT['resets']} resets, owned by nginx (pid 812, www-data)" in text
    text = render("table", *with_owners(False, []))
    assert "9 (nothing listens)" in text and "nothing listens on 9" in text
    assert "port 9 resets on 2 hosts of group lab, nothing listens: h02, h04" in text


def test_json_keeps_the_documented_fields_and_adds_fleet_and_partial():
    document = json.loads(rendered("json"))
    assert list(document)[:6] == README_FIELDS[:6]
    assert set(README_FIELDS) | {"fleet", "partial"} == set(document)
    for host in document["hosts"]:
        assert list(host) == README_HOST_FIELDS
    assert document["partial"] is False
    assert document["fleet"]["shared_peers"][0]["hosts"] == ["h02", "h04"]
    assert document["summary"]["hosts"] == document["fleet"]["hosts"] == 4
    validate_schema(document)


def test_json_of_a_partial_triage_records_it_and_still_validates():
    document = json.loads(rendered("json", partial=True, phase2_hosts=["h02", "h04"]))
    assert document["partial"] is True and document["phase2_hosts"] == ["h02", "h04"]
    validate_schema(document)


WINDOW = {"hosts_measured": 3, "earliest_start": 100.0, "latest_start": 100.2, "earliest_end": 110.0,
          "latest_end": 110.3, "overlap": True, "groups": 1, "split_reason": "", "span_s": 10.3,
          "start_spread_s": 0.2}


def test_the_fleet_window_is_in_the_json_and_one_line_of_every_human_format():
    document = json.loads(rendered("json", fleet_window=WINDOW))
    assert document["fleet_window"] == WINDOW
    validate_schema(document)
    line = "one window: 3 hosts measured within 10.3 s, starts 0.2 s apart, every window overlaps a common instant"
    for fmt in ("table", "markdown", "html"):
        assert line in rendered(fmt, fleet_window=WINDOW), fmt
    split = dict(WINDOW, groups=4, split_reason="open-file limit 256 (raise it: ulimit -n)")
    assert "split into 4 successive windows (open-file limit 256" in rendered("table", fleet_window=split)
    assert "fleet_window" not in json.loads(rendered("json"))       # a re-rendered report has none


def test_schema_rejects_a_report_without_the_fleet_or_with_a_ranked_host_lacking_a_rate():
    import jsonschema
    document = load_fixture()
    del document["fleet"]
    with pytest.raises(jsonschema.ValidationError, match="fleet"):
        validate_schema(document)
    document = load_fixture()
    document["hosts"][0]["resets_sent_per_s"] = None
    with pytest.raises(jsonschema.ValidationError):
        validate_schema(document)


def test_markdown_tables_keep_their_columns_and_rank_order():
    text = rendered("markdown")
    tables = parse_markdown(text)
    assert [row[1] for row in tables["Ranked hosts"]] == RANKED
    assert all(len(row) == 9 and row[8] == "lifetime baseline" for row in tables["Ranked hosts"])
    assert tables["Not checked"] == [[DOWN, "unreachable", MISSED["reason"]]]
    assert "closed\\_port" in text                       # underscores cannot start emphasis
    assert "- `lsof -i:9 -P -n   # on h02: is something meant to listen on port 9, a crashed service`" in text
    assert text.index("## Fleet summary") < text.index("## Ranked hosts") < text.index("### 1. h02")


def test_partial_runs_say_so_in_every_human_format():
    assert "PARTIAL" in rendered("table", partial=True)
    assert "Partial results" in rendered("markdown", partial=True)
    assert "Partial results" in rendered("html", partial=True)
    root = ET.fromstring(rendered("junit", partial=True))
    assert root.find(".//property[@name='partial']").get("value") == "true"
    assert "PARTIAL" not in rendered("table")


def test_html_is_self_contained_and_draws_one_bar_segment_per_cause():
    text = rendered("html")
    assert not re.search(r"https?:|<script|<link|<img|<iframe|\ssrc=|url\(|@import", text, re.I)
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    page = parse_html(text)
    assert [row[1] for row in page.tables["ranked"]] == RANKED
    assert page.tables["not-checked"][0][:2] == [DOWN, "unreachable"]
    segments = re.findall(r'<rect class="segment" [^>]*width="([\d.]+)"[^>]*><title>(\w+):', text)
    widths = {host: float(width) for width, host in segments}
    assert page.svg_rects == 2 and set(widths) == {"h02", "h04"}
    ratio = WORST["resets_sent_per_s"] / SECOND["resets_sent_per_s"]
    assert widths["h02"] / widths["h04"] == pytest.approx(ratio, rel=0.02)
    assert '<g class="legend">' in text and ">closed_port</text>" in text


def test_html_chart_shows_the_unattributed_part_of_a_host_rate():
    assessments, thresholds, meta = fixture_assessments()
    assessments[0].evidence.causes[0].share = 0.5
    text = render("html", assessments, thresholds, meta)
    assert parse_html(text).svg_rects == 3 and ">unattributed</text>" in text
    samples = parse_prometheus(render("prometheus", assessments, thresholds, meta))
    key = ("rstfleet_cause_resets_per_second", frozenset({("host", "h02"), ("cause", "unattributed")}))
    assert samples[key] == pytest.approx(WORST["resets_sent_per_s"] / 2, rel=0.01)


def test_html_says_so_when_no_host_sent_resets():
    assessments, thresholds, meta = fixture_assessments()
    quiet = [a for a in assessments if a.host in ("h01", DOWN)]
    text = render("html", quiet, thresholds, meta)
    assert "No host sent resets in the window." in text and "<svg" not in text


def test_chart_scale_ends_on_a_round_number_just_above_the_worst_rate():
    assert [nice_max(v) for v in (59.9, 61, 99, 101, 0.4, 0)] == [60, 80, 100, 120, 0.4, 1.0]


def test_junit_has_a_testcase_per_host_failures_for_warn_and_an_error_for_the_missed_host():
    root = ET.fromstring(rendered("junit"))
    suite = root.find("testsuite")
    assert {k: suite.get(k) for k in ("tests", "failures", "errors", "skipped")} == \
        {"tests": "4", "failures": "2", "errors": "1", "skipped": "0"}
    assert float(suite.get("time")) > 0
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [("lab", h) for h in RANKED + [DOWN]]
    failure = cases[0].find("failure")
    assert failure.get("type") == "warn"
    assert failure.get("message").startswith(f"{WORST['resets_sent_per_s']:.1f} resets/s (warn ≥ 10/s; spike")
    assert failure.get("message").endswith("top cause closed_port 100%")
    assert f"peers: {WORST_PEER[0]} ({WORST_PEER[1]})" in cases[0].find("system-out").text
    assert cases[2].find("failure") is None and cases[2].find("system-out") is not None
    error = cases[3].find("error")
    assert error.get("message") == f"unreachable: {MISSED['reason']}"


def test_junit_classname_falls_back_to_rstfleet_without_a_group():
    assessments, thresholds, meta = fixture_assessments()
    for a in assessments:
        a.result = dataclasses.replace(a.result, groups=("all", "ungrouped"))
    root = ET.fromstring(render("junit", assessments, thresholds, meta))
    assert {c.get("classname") for c in root.iter("testcase")} == {"rstfleet"}


def test_prometheus_textfile_has_help_and_type_for_every_metric_and_parses():
    text = rendered("prometheus")
    names = re.findall(r"^# TYPE (\S+) gauge$", text, re.M)
    assert names == re.findall(r"^# HELP (\S+) ", text, re.M)
    assert set(names) == {"rstfleet_resets_sent_per_second", "rstfleet_baseline_resets_per_second",
                          "rstfleet_host_up", "rstfleet_cause_resets_per_second", "rstfleet_score",
                          "rstfleet_verdict", "rstfleet_verdict_rule", "rstfleet_last_run_timestamp_seconds",
                          "rstfleet_expected_resets_per_second", "rstfleet_phase2_covered",
                          "rstfleet_resets_received_per_second", "rstfleet_resets_not_sent_by_kernel"}
    samples = parse_prometheus(text)
    h02 = frozenset({("host", "h02")})
    assert samples[("rstfleet_resets_sent_per_second", h02)] == pytest.approx(WORST["resets_sent_per_s"])
    assert samples[("rstfleet_score", h02)] == pytest.approx(WORST["score"])
    assert samples[("rstfleet_host_up", frozenset({("host", DOWN), ("status", "unreachable")}))] == 0
    verdicts = {dict(labels)["verdict"]: value for (name, labels), value in samples.items()
                if name == "rstfleet_verdict" and dict(labels)["host"] == DOWN}
    assert verdicts == {"unknown": 1, "ok": 0, "warn": 0, "crit": 0}
    assert samples[("rstfleet_verdict_rule", frozenset({("host", "h02"), ("rule", "lifetime baseline")}))] == 1
    stamp = samples[("rstfleet_last_run_timestamp_seconds", frozenset())]
    assert abs(stamp - time.time()) < 60
