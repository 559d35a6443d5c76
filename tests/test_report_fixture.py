"""The saved lab sweep that the fast report tests render, and how each format is read back.

tests/fixtures/reports/lab-sweep.json is the JSON of a REAL sweep of the lab (4 hosts, 60 and
20 resets/s injected on h02 and h04, h03's sshd stopped), written by test_report_lab.py with
RSTFLEET_WRITE_REPORT_FIXTURE=1. The helpers below rebuild the exact assessments that sweep
rendered (its saved evidence included), and parse every format back into rows.
"""

from __future__ import annotations

import copy
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from rstfleet.analysis import Assessment, Thresholds
from rstfleet.evidence.causes import Cause, HostEvidence, PortInfo
from rstfleet.report import render
from rstfleet.results import HostResult

FIXTURE = Path(__file__).parent / "fixtures" / "reports" / "lab-sweep.json"
SCHEMA = Path(__file__).resolve().parent.parent / "docs" / "report-schema.json"


def load_fixture() -> dict:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def evidence_from(entry: dict | None) -> HostEvidence | None:
    if entry is None:
        return None
    entry = copy.deepcopy(entry)
    return HostEvidence(entry["tier"], entry["evidence_used"], [Cause(**c) for c in entry["causes"]],
                        [PortInfo(**p) for p in entry["top_ports"]],
                        [tuple(p) for p in entry["top_peers"]], entry["scan_suspects"],
                        entry["capture_path"], entry["notes"])


def assessments_from(report: dict) -> tuple[list[Assessment], Thresholds, dict]:
    """The assessments a saved report was rendered from, evidence and all (no pcap needed)."""
    assessments = []
    for h in report["hosts"]:
        result = HostResult(h["host"], h["address"], h["status"], h["reason"], h["probe"],
                            h["elapsed_s"], tuple(h["groups"]))
        assessments.append(Assessment(result, h["rank"], h["resets_sent_per_s"], h["baseline_per_s"],
                                      h["verdict"], h["spike"], h["window_s"], evidence_from(h["evidence"]),
                                      h["score"], h["score_explained"]))
    meta = {"window_s": report["window_s"], "wall_s": report["summary"]["wall_s"],
            "exit_code": report["exit_code"], "partial": report.get("partial", False)}
    return assessments, Thresholds(**report["thresholds"]), meta


def fixture_assessments() -> tuple[list[Assessment], Thresholds, dict]:
    return assessments_from(load_fixture())


# ---- reading each format back -------------------------------------------------------------

def parse_table(text: str) -> tuple[list[list[str]], list[list[str]]]:
    """(ranked rows, not-checked rows) of the terminal report, cells split on 2+ spaces."""
    lines = text.splitlines()

    def rows_after(header_start: str, start: int = 0) -> list[list[str]]:
        for i in range(start, len(lines)):
            if lines[i].startswith(header_start) and i + 1 < len(lines) and lines[i + 1].startswith("---"):
                rows = []
                for line in lines[i + 2:]:
                    if not line.strip():
                        break
                    rows.append(re.split(r"\s{2,}", line.strip()))
                return rows
        return []

    missed_at = next((i for i, line in enumerate(lines) if line == "Not checked:"), len(lines))
    return rows_after("rank "), rows_after("host ", missed_at)


def parse_markdown(text: str) -> dict[str, list[list[str]]]:
    """Pipe tables by the '## ' section they are in; cells split on unescaped pipes."""
    tables: dict[str, list[list[str]]] = {}
    section = ""
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        elif line.startswith("|") and not re.fullmatch(r"\|[-:|]+\|", line):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            tables.setdefault(section, []).append(cells)
    return {name: rows[1:] for name, rows in tables.items()}   # without the header row


class _Tables(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[list[str]]] = {}
        self.current: str | None = None
        self.in_body = False
        self.cell: list[str] | None = None
        self.tags: list[str] = []
        self.svg_rects = 0

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        if tag == "table":
            self.current = attrs.get("id")
        elif tag == "tbody":
            self.in_body = True
        elif tag == "tr" and self.in_body and self.current:
            self.tables.setdefault(self.current, []).append([])
        elif tag == "td" and self.in_body and self.current:
            self.cell = []
        elif tag == "rect" and attrs.get("class") == "segment":
            self.svg_rects += 1

    def handle_endtag(self, tag):
        if tag == "td" and self.cell is not None:
            self.tables[self.current][-1].append("".join(self.cell).strip())
            self.cell = None
        elif tag == "tbody":
            self.in_body = False
        elif tag == "table":
            self.current = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def parse_html(text: str) -> _Tables:
    parser = _Tables()
    parser.feed(text)
    parser.close()
    return parser


def parse_prometheus(text: str) -> dict[tuple[str, frozenset], float]:
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        pytest.fail("prometheus_client is missing: .venv/bin/pip install prometheus-client")
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def validate_schema(document: dict) -> None:
    try:
        import jsonschema
    except ImportError:
        pytest.fail("jsonschema is missing: .venv/bin/pip install jsonschema")
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(document)


# ---- the fixture itself -------------------------------------------------------------------

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


def test_fixture_assessments_render_back_to_the_same_hosts():
    report = load_fixture()
    rendered = json.loads(render("json", *fixture_assessments()))
    assert rendered["hosts"] == report["hosts"]
    assert rendered["fleet"] == report["fleet"]
