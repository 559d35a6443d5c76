"""Every report format, from a real sweep of the lab: resets injected on two hosts (60/s and
20/s on a closed port), one host's sshd stopped, the real CLI sweeping over SSH, then
`rstfleet report FILE --format X` re-rendering the saved JSON in every format, each read back.

RSTFLEET_WRITE_REPORT_FIXTURE=1 also saves the sweep as tests/fixtures/reports/lab-sweep.json,
the fixture of the fast renderer tests.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import xml.etree.ElementTree as ET

import pytest

from rstfleet_lab import inject_closed_port

from helpers import require_root_lab, run_cli
from report_parsers import (FIXTURE, parse_html, parse_markdown, parse_prometheus, parse_table,
                                 validate_schema)

pytestmark = pytest.mark.lab

RATES = {"h02": 60.0, "h04": 20.0}
WINDOW = 3
RANKED = ["h02", "h04", "h01"]
DOWN = "h03"


def _base36(number: int) -> str:
    digits = ""
    while True:
        number, rest = divmod(number, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[rest] + digits
        if not number:
            return digits


def _close(measured: float, injected: float) -> bool:
    return abs(measured - injected) <= 0.2 * injected


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The saved JSON of one real sweep (its captures kept beside it, so re-rendering finds them)."""
    require_root_lab()
    from rstfleet_lab import lab_context
    folder = tmp_path_factory.mktemp("report-lab")
    saved = folder / "sweep.json"
    with lab_context(4, "r" + _base36(os.getpid())) as lab:
        lab.stop_sshd(DOWN)
        injectors = [inject_closed_port(lab.host(name).address, rate, duration=WINDOW + 8)
                     for name, rate in RATES.items()]
        try:
            time.sleep(1.0)   # the injectors reach their steady rate before the window opens
            proc = run_cli("sweep", "-i", str(lab.inventory_path), "--window", str(WINDOW),
                           "--capture", str(WINDOW), "--owners", "--run-dir", str(folder / "runs"),
                           "--format", "json", "-o", str(saved))
        finally:
            for injector in injectors:
                injector.stop()
                injector.wait()
    assert proc.returncode == 12, proc.stderr.decode()     # over threshold (4) + a host missed (8)
    if os.environ.get("RSTFLEET_WRITE_REPORT_FIXTURE"):
        FIXTURE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(saved, FIXTURE)
    return saved, proc.stdout.decode()


def rerender(saved, fmt: str) -> str:
    proc = run_cli("report", str(saved), "--format", fmt)
    assert proc.returncode == 12, proc.stderr.decode()
    return proc.stdout.decode("utf-8")


def test_sweep_json_ranks_injected_hosts_and_lists_the_down_host(swept):
    saved, table = swept
    report = json.loads(saved.read_text())
    validate_schema(report)
    assert [h["host"] for h in report["hosts"]] == RANKED + [DOWN]
    by_name = {h["host"]: h for h in report["hosts"]}
    for name, rate in RATES.items():
        assert _close(by_name[name]["resets_sent_per_s"], rate), by_name[name]
    assert by_name[DOWN]["rank"] is None and "refused" in by_name[DOWN]["reason"].lower()
    assert report["partial"] is False
    assert report["fleet"]["checked"] == 3 and report["fleet"]["not_checked"] == 1
    assert report["fleet"]["worst"][:2] == ["h02", "h04"]
    # both injectors connect from the lab's gateway to port 9: one peer, one port, two hosts
    assert {"h02", "h04"} <= set(report["fleet"]["shared_peers"][0]["hosts"])
    assert report["fleet"]["shared_ports"][0]["port"] == 9
    assert table.index("h02") < table.index("h04") < table.index("h01") < table.index(DOWN)


def test_rerendered_json_keeps_the_ranking(swept):
    report = json.loads(rerender(swept[0], "json"))
    validate_schema(report)
    assert [h["host"] for h in report["hosts"]] == RANKED + [DOWN]
    assert report["exit_code"] == 12


def test_rerendered_table_ranks_hosts_with_rates_and_explains_the_down_host(swept):
    text = rerender(swept[0], "table")
    assert "\x1b" not in text                       # not a TTY: no colour
    ranked, missed = parse_table(text)
    assert [row[1] for row in ranked] == RANKED
    for row in ranked[:2]:
        assert _close(float(row[2]), RATES[row[1]]), row
        assert row[6].startswith("closed_port") and row[7].startswith("9")
    assert missed[0][:2] == [DOWN, "unreachable"] and "refused" in missed[0][2].lower()
    assert "got resets from 2 hosts: h02, h04" in text
    assert "port 9 resets on 2 hosts of group lab" in text
    assert "lsof -i:9 -P -n" in text                # the next command, with the real port


def test_rerendered_markdown_has_the_ranked_table_and_host_sections(swept):
    text = rerender(swept[0], "markdown")
    tables = parse_markdown(text)
    ranked = tables["Ranked hosts"]
    assert [row[1] for row in ranked] == RANKED
    for row in ranked[:2]:
        assert _close(float(row[2]), RATES[row[1]]), row
    assert tables["Not checked"][0][:2] == [DOWN, "unreachable"]
    assert "refused" in tables["Not checked"][0][2].lower()
    assert text.index("### 1. h02") < text.index("### 2. h04")


def test_rerendered_html_has_the_ranked_table_and_a_bar_per_cause(swept):
    text = rerender(swept[0], "html")
    page = parse_html(text)
    ranked = page.tables["ranked"]
    assert [row[1] for row in ranked] == RANKED
    for row in ranked[:2]:
        assert _close(float(row[2]), RATES[row[1]]), row
    assert page.tables["not-checked"][0][:2] == [DOWN, "unreachable"]
    assert page.svg_rects >= 2 and "<script" not in text


def test_rerendered_junit_fails_the_noisy_hosts_and_errors_the_down_host(swept):
    root = ET.fromstring(rerender(swept[0], "junit"))
    suite = root.find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "2", "1")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == RANKED + [DOWN]
    assert all(c.get("classname") == "lab" for c in cases)
    for case in cases[:2]:
        message = case.find("failure").get("message")
        assert _close(float(message.split()[0]), RATES[case.get("name")]), message
        assert "closed_port" in message
    assert cases[2].find("failure") is None and cases[2].find("error") is None
    error = cases[3].find("error")
    assert error.get("type") == "unreachable" and "refused" in error.get("message").lower()


def test_rerendered_prometheus_textfile_has_rates_and_the_down_host(swept):
    samples = parse_prometheus(rerender(swept[0], "prometheus"))
    for name, rate in RATES.items():
        assert _close(samples[("rstfleet_resets_sent_per_second", frozenset({("host", name)}))], rate)
        assert _close(samples[("rstfleet_cause_resets_per_second",
                               frozenset({("host", name), ("cause", "closed_port")}))], rate)
        assert samples[("rstfleet_verdict", frozenset({("host", name), ("verdict", "warn")}))] == 1
    assert samples[("rstfleet_host_up", frozenset({("host", DOWN), ("status", "unreachable")}))] == 0
    assert ("rstfleet_resets_sent_per_second", frozenset({("host", DOWN)})) not in samples
    assert samples[("rstfleet_host_up", frozenset({("host", "h01"), ("status", "ok")}))] == 1
