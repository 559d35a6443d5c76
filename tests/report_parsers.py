"""Report fixtures and parsers shared by the report tests: a real lab sweep's JSON turned back into
Assessments, and readers for each rendered format (table, Markdown, HTML, Prometheus)."""

from __future__ import annotations

import copy
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from rstfleet.analysis import Assessment, Rule, Thresholds, Verdict
from rstfleet.evidence.causes import Cause, HostEvidence, PortInfo
from rstfleet.netdata_rule import Episode, NetdataView
from rstfleet.report.escape import clean
from rstfleet.results import HostResult

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "reports" / "lab-sweep.json"
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
        # Fields added since the fixture was written (rule, netdata, episode) take their defaults.
        netdata, episode = h.get("netdata"), h.get("episode")
        assessments.append(Assessment(
            result, h["rank"], h["resets_sent_per_s"], h["baseline_per_s"], h["verdict"], h["spike"],
            h["window_s"], evidence_from(h["evidence"]), h["score"], h["score_explained"],
            expected_per_s=h.get("expected_resets_per_s") or 0.0,
            rule=Rule(h.get("rule") or Rule.LIFETIME),
            lifetime_verdict=Verdict(h["lifetime_verdict"]) if h.get("lifetime_verdict") else None,
            netdata=NetdataView(**dict(netdata, notes=tuple(netdata["notes"]))) if netdata else None,
            episode=Episode(**episode) if episode else None))
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

    missed_at = next((i for i, line in enumerate(lines) if line.startswith("Not checked") and line.endswith(":")), len(lines))
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


# --- a hostile host: its text must stay data in every format ---------------------------------

PAYLOAD = "\x1b]0;pwn\x07<script>alert(1)</script>|*_\x00\ufffe\""
# What a person sees: the same text with its control characters as visible escapes.
SHOWN = clean(PAYLOAD)
RAW_DANGER = ("\x1b", "\x07", "\x00", "\ufffe")


def hostile(extra_peer: bool = True):
    """The real sweep, with the worst host renamed, the missed host's reason, h02's port owner,
    h02's group and a peer of h04 all replaced by the payload."""
    assessments, thresholds, meta = fixture_assessments()
    worst, second, missed = assessments[0], assessments[1], assessments[3]
    worst.result.host = PAYLOAD
    worst.result.groups = (PAYLOAD,)
    worst.evidence.top_ports[0].listening = True
    worst.evidence.top_ports[0].owners = [{"pid": 4242, "command": PAYLOAD, "user": PAYLOAD}]
    missed.result.reason = PAYLOAD
    if extra_peer:
        second.evidence.top_peers.insert(0, (PAYLOAD, 7))
    return assessments, thresholds, meta
