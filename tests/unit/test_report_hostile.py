"""Host text is hostile: a host name, an error reason, a process name, a group or a peer that
carries a terminal escape, markup, Markdown, a NUL and a Unicode noncharacter comes out inert in
every format."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

from rstfleet.report import FORMATS, render

from report_parsers import (PAYLOAD, RAW_DANGER, SHOWN, fixture_assessments, hostile, parse_html, parse_markdown,
                            parse_prometheus, parse_table)



@pytest.fixture(params=FORMATS)
def output(request):
    return request.param, render(request.param, *hostile())


def test_no_format_lets_a_raw_control_character_or_noncharacter_through(output):
    fmt, text = output
    for char in RAW_DANGER:
        assert char not in text, (fmt, repr(char))


def test_json_keeps_the_host_text_exactly_but_as_escapes():
    text = render("json", *hostile())
    document = json.loads(text)
    assert document["hosts"][0]["host"] == PAYLOAD
    assert document["hosts"][3]["reason"] == PAYLOAD
    assert "\\u001b]0;pwn\\u0007" in text


def test_terminal_shows_the_escape_sequence_instead_of_running_it():
    text = render("table", *hostile())
    assert SHOWN.startswith("\\x1b]0;pwn\\x07<script>") and SHOWN in text
    ranked, missed = parse_table(text)
    assert len(ranked) == 3 and ranked[0][1].startswith("\\x1b]0;pwn\\x07")
    assert missed[0][0] == "h03" and missed[0][2].startswith("\\x1b]0;pwn")


def test_markdown_cannot_gain_a_column_an_html_tag_or_emphasis():
    text = render("markdown", *hostile())
    assert "<script" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;\\|\\*\\_" in text
    tables = parse_markdown(text)
    assert all(len(row) == 9 for row in tables["Ranked hosts"])
    assert all(len(row) == 3 for row in tables["Not checked"])
    assert not re.search(r"(?<!\\)\|\*", text)
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert all("pwn" not in h or h.startswith("### 1. \\\\x1b") for h in headings)


class _Attributes(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.values, self.tags, self.texts = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.values += [value or "" for _, value in attrs]

    def handle_data(self, data):
        self.texts.append(data)


def test_html_shows_the_payload_as_text_never_as_markup_or_in_an_attribute():
    text = render("html", *hostile())
    assert "<script" not in text.lower()
    page = _Attributes()
    page.feed(text)
    assert "script" not in page.tags
    assert not any("pwn" in value or "script" in value for value in page.values)
    assert any(SHOWN in t for t in page.texts)       # the host name, read as text
    assert parse_html(text).tables["ranked"][0][1] == SHOWN


def test_junit_is_well_formed_xml_with_the_payload_as_text():
    text = render("junit", *hostile())
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]", text)
    root = ET.fromstring(text.encode("utf-8"))
    first = root.find("testsuite/testcase")
    assert first.get("name") == SHOWN and first.get("classname") == SHOWN
    assert SHOWN in first.find("system-out").text
    missed = root.findall("testsuite/testcase")[3]
    assert missed.find("error").get("message") == f"unreachable: {SHOWN}"


def test_prometheus_label_values_round_trip_through_the_official_parser():
    text = render("prometheus", *hostile())
    samples = parse_prometheus(text)
    hosts = {dict(labels).get("host") for name, labels in samples if name == "rstfleet_host_up"}
    assert hosts == {SHOWN, "h04", "h01", "h03"}
    assert samples[("rstfleet_resets_sent_per_second", frozenset({("host", SHOWN)}))] > 50
    def sample_lines(text: str) -> list[str]:
        return [line for line in text.splitlines() if line and not line.startswith("#")]
    plain = render("prometheus", *fixture_assessments())
    assert len(sample_lines(text)) == len(sample_lines(plain))   # no line was split by the payload


def test_prometheus_hosts_whose_names_escape_alike_stay_distinct_series():
    assessments, thresholds, meta = fixture_assessments()
    assessments[0].result.host = "web\x1b"
    assessments[1].result.host = "web\\x1b"        # prints the same as the one above
    samples = parse_prometheus(render("prometheus", assessments, thresholds, meta))
    hosts = sorted(dict(labels)["host"] for name, labels in samples if name == "rstfleet_score")
    assert hosts == ["h01", "web\\x1b", "web\\x1b (2)"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_lone_surrogate_from_a_probe_document_cannot_break_the_write(fmt):
    assessments, thresholds, meta = fixture_assessments()
    assessments[0].evidence.top_ports[0].owners = [{"pid": 1, "command": "bad\ud800name"}]
    assessments[3].result.reason = "reason \udfff"
    text = render(fmt, assessments, thresholds, meta)
    text.encode("utf-8")                        # would raise UnicodeEncodeError on a surrogate
    if fmt not in ("json", "prometheus"):          # prometheus carries no owner or reason text
        assert "\\ud800" in text or "\\\\ud800" in text
