"""Every format says which rule produced each verdict, shows Netdata's verdict beside rstfleet's,
when the resets started, their peak and whether they go on, with a sparkline (unicode in the
table and Markdown, inline SVG in HTML); host text in those sections stays data.

The hosts are assessed by the real pipeline from probe documents whose netdata sections the probe
builds out of real Netdata 1.37.1 answers (tests/netdata_docs.py)."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

from rstfleet.analysis import Thresholds, assess
from rstfleet.report import render
from rstfleet.report.view import sparkline
from rstfleet.results import HostResult, Status, parse_probe_output

from report_parsers import PAYLOAD, RAW_DANGER, SHOWN, parse_html, parse_markdown, parse_prometheus, parse_table, validate_schema
from netdata_docs import NO_AGENT, agent_section, document

META = {"window_s": 10.0, "wall_s": 10.4, "exit_code": 4}


def fleet(reason: str = NO_AGENT["reason"]):
    docs = {"h02": document(90.0, netdata_section=agent_section("1.37.1-alarms_values-warning.http")),
            "h01": document(20.0, netdata_section=agent_section("1.37.1-alarms_values-clear.http")),
            "h03": document(12.0, netdata_section=dict(NO_AGENT, reason=reason))}
    results = [HostResult(name, f"198.18.0.{i}", Status.OK, "", parse_probe_output(json.dumps(doc).encode()))
               for i, (name, doc) in enumerate(docs.items(), start=2)]
    return assess(results), Thresholds(), META


def test_the_sparkline_keeps_a_short_burst_visible_and_is_empty_without_history():
    history = [[t, 0.0] for t in range(100)] + [[100, 90.0]] + [[t, 0.0] for t in range(101, 120)]
    line = sparkline(history, width=12)
    assert len(line) == 12 and line.count("█") == 1 and set(line) == {"▁", "█"}
    assert sparkline([[0, 0.0], [1, 0.0]]) == "▁▁" and sparkline([]) == ""


def test_the_table_names_the_rule_and_shows_netdata_beside_the_lifetime_verdict():
    text = render("table", *fleet())
    header = next(line for line in text.splitlines() if line.startswith("rank "))
    assert re.split(r"\s{2,}", header.strip())[-4:] == ["rule", "Netdata", "lifetime", "OutRsts history"]
    rows = {row[1]: row for row in parse_table(text)[0]}
    assert rows["h02"][4:5] + rows["h02"][8:11] == ["warn (spike)", "netdata agent", "WARNING", "warn"]
    assert rows["h01"][4:5] + rows["h01"][8:11] == ["ok", "netdata agent", "CLEAR", "warn"]
    assert rows["h03"][8:11] == ["lifetime baseline", "-", "warn"]
    assert re.fullmatch(r"[▁▂▃▄▅▆▇█]+", rows["h02"][11]) and rows["h03"][11] == "-"
    detail = text[text.index("#2 h01"):]
    assert "the lifetime baseline says warn (baseline 0.10/s): DISAGREES" in detail
    assert "ok by the netdata agent: 10s_ipv4_tcp_resets_sent CLEAR" in detail
    assert "netdata        agent 1.37.1: 10s_ipv4_tcp_resets_sent CLEAR, received CLEAR" in detail
    h02 = text[text.index("#1 h02"):text.index("#2 h01")]
    assert "≥ 10/s since" in h02 and "peak 90.2/s at" in h02 and "still going (agent)" in h02


def test_a_report_without_any_netdata_view_still_names_the_rule_and_adds_no_netdata_columns():
    assessments, thresholds, meta = fleet()
    plain = [a for a in assessments if a.host == "h03"]
    rows = parse_table(render("table", plain, thresholds, meta))[0]
    assert len(rows[0]) == 9 and rows[0][8] == "lifetime baseline"
    assert "rule           warn by the lifetime baseline" in render("table", plain, thresholds, meta)


def test_markdown_has_the_rule_netdata_lifetime_and_history_columns():
    tables = parse_markdown(render("markdown", *fleet()))
    rows = {row[1]: row for row in tables["Ranked hosts"]}
    assert all(len(row) == 12 for row in rows.values())
    assert rows["h01"][8:11] == ["netdata agent", "CLEAR", "warn"]


def test_html_draws_an_svg_sparkline_per_host_with_history_and_names_the_rule():
    page = render("html", *fleet())
    parsed = parse_html(page)
    rows = {row[1]: row for row in parsed.tables["ranked"]}
    assert rows["h02"][8:10] == ["netdata agent", "WARNING"] and rows["h03"][8] == "lifetime baseline"
    assert page.count('<svg class="spark"') == 4            # h02 and h01: in the table and their sections
    spark = re.search(r'<svg class="spark".*?</svg>', page).group(0)
    ET.fromstring(spark)                                     # well-formed, numbers only
    assert 'class="warn-line"' in spark


def test_json_carries_rule_netdata_and_episode_and_validates():
    report = json.loads(render("json", *fleet()))
    validate_schema(report)
    hosts = {h["host"]: h for h in report["hosts"]}
    assert (hosts["h01"]["rule"], hosts["h01"]["verdict"], hosts["h01"]["lifetime_verdict"]) == ("netdata agent", "ok", "warn")
    assert hosts["h02"]["netdata"]["status"] == "WARNING" and "history" not in hosts["h02"]["episode"]
    assert hosts["h03"]["rule"] == "lifetime baseline" and hosts["h03"]["netdata"]["verdict"] is None


def test_junit_and_prometheus_say_which_rule():
    root = ET.fromstring(render("junit", *fleet()))
    failure = next(c for c in root.iter("testcase") if c.get("name") == "h02").find("failure")
    assert "warn by the netdata agent: Netdata says WARNING" in failure.get("message")
    samples = parse_prometheus(render("prometheus", *fleet()))
    assert samples[("rstfleet_verdict_rule", frozenset({("host", "h01"), ("rule", "netdata agent")}))] == 1


def test_host_text_in_the_netdata_sections_stays_data_in_every_format():
    assessments, thresholds, meta = fleet(reason=PAYLOAD)
    for fmt in ("table", "markdown", "html", "junit"):
        text = render(fmt, assessments, thresholds, meta)
        assert not any(c in text for c in RAW_DANGER), fmt
        assert fmt == "table" or "<script>" not in text, fmt
    assert SHOWN[:20] in render("table", assessments, thresholds, meta)
