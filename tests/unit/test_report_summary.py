"""Past 50 hosts the terminal table and the HTML summarise: the worst 20 checked and 20 unchecked
hosts in full, the rest as counts, and a line pointing to the JSON report, which keeps every host.
The fleet is the simulator's model (rstfleet_lab/simmodel.py): real probe documents, assessed by
the real analysis."""

from __future__ import annotations

import json

from rstfleet.analysis import Thresholds, assess
from rstfleet.probe.host.limits import REPORT_TOP, REPORT_WHOLE_UP_TO
from rstfleet.report import render
from rstfleet.report.summary import JSON_HINT
from rstfleet.results import HostResult, Status
from rstfleet_lab.simmodel import Request, plan_hosts, probe_document

from report_parsers import parse_html, parse_table

META = {"window_s": 10.0, "wall_s": 14.0, "exit_code": 12, "partial": False}


def fleet(hosts: int, spiking: int, timeouts: int, auth_failed: int):
    """Assessments of a simulated fleet whose last hosts could not be checked."""
    sims = plan_hosts({"hosts": hosts, "seed": 3, "spiking": {"count": spiking}})
    results = []
    for i, sim in enumerate(sims):
        if i >= hosts - timeouts - auth_failed:
            status = Status.TIMEOUT if i >= hosts - timeouts else Status.AUTH_FAILED
            results.append(HostResult(sim.name, sim.address, status, f"{status} on {sim.name}"))
            continue
        document = probe_document(sim, Request("python", 10.0), 1.7e9, 5.0, 15.0, 10.0)
        results.append(HostResult(sim.name, sim.address, Status.OK, "", json.loads(json.dumps(document)), 10.2))
    return sims, assess(results, Thresholds())


def test_a_large_fleet_table_lists_the_worst_hosts_and_counts_the_rest():
    sims, assessments = fleet(1200, spiking=8, timeouts=30, auth_failed=5)
    text = render("table", assessments, Thresholds(), META)
    ranked, missed = parse_table(text)
    assert [row[0] for row in ranked] == [str(rank) for rank in range(1, REPORT_TOP + 1)]
    spiking = {s.name for s in sims[:1200 - 35] if s.spiking}
    assert {row[1] for row in ranked[:len(spiking)]} == spiking  # the worst come first, in full
    assert len(missed) == REPORT_TOP and {row[1] for row in missed} == {"timeout"}  # most common fault first
    checked = 1200 - 35
    warn = sum(a.verdict == "warn" for a in assessments[REPORT_TOP:checked])
    crit = sum(a.verdict == "crit" for a in assessments[REPORT_TOP:checked])
    hidden = checked - REPORT_TOP
    expected = ", ".join(part for part in (f"{hidden - warn - crit:,} ok", f"{crit:,} crit" if crit else "",
                                           f"{warn:,} warn" if warn else "") if part)
    assert f"… and {hidden:,} more checked hosts, not listed: {expected}" in text
    assert "… and 15 more hosts not checked, not listed: 10 timeout, 5 auth_failed" in text
    assert "Not checked (30 timeout, 5 auth_failed):" in text
    assert JSON_HINT in text
    assert text.count("\n#") == sum(a.resets_sent_per_s > 0 for a in assessments[:REPORT_TOP])  # listed only
    _, bigger = fleet(3000, spiking=8, timeouts=30, auth_failed=5)
    assert len(render("table", bigger, Thresholds(), META).splitlines()) <= len(text.splitlines()) + 2


def test_a_large_fleet_html_lists_the_worst_hosts_and_the_json_keeps_every_host():
    sims, assessments = fleet(1200, spiking=8, timeouts=30, auth_failed=5)
    page = render("html", assessments, Thresholds(), META)
    tables = parse_html(page).tables
    assert len(tables["ranked"]) == REPORT_TOP and len(tables["not-checked"]) == REPORT_TOP
    assert [row[1] for row in tables["ranked"]] == [a.host for a in assessments[:REPORT_TOP]]
    assert 'id="not-listed"' in page and "1,145 more checked hosts" in page and JSON_HINT in page
    assert page.count('<section class="host') == sum(a.resets_sent_per_s > 0 for a in assessments[:REPORT_TOP])
    report = json.loads(render("json", assessments, Thresholds(), META))
    assert len(report["hosts"]) == 1200 and all(h["probe"] for h in report["hosts"] if h["status"] == "ok")


def test_a_fleet_at_the_bound_is_listed_whole():
    _, assessments = fleet(REPORT_WHOLE_UP_TO, spiking=2, timeouts=1, auth_failed=0)
    text = render("table", assessments, Thresholds(), META)
    ranked, missed = parse_table(text)
    assert len(ranked) == REPORT_WHOLE_UP_TO - 1 and len(missed) == 1
    assert "not listed" not in text and JSON_HINT not in text
    assert "not-listed" not in render("html", assessments, Thresholds(), META)


def test_the_json_report_keeps_one_line_a_host_and_reads_back_as_the_document():
    from rstfleet.report.json_report import report_document
    _, assessments = fleet(300, spiking=3, timeouts=2, auth_failed=1)
    text = render("json", assessments, Thresholds(), META)
    document = report_document(assessments, Thresholds(), META)
    read = json.loads(text)
    read.pop("generated_at"), document.pop("generated_at")
    assert read == json.loads(json.dumps(document))
    assert list(json.loads(text)) == list(report_document(assessments, Thresholds(), META))   # key order kept
    host_lines = [line for line in text.splitlines() if line.startswith('    {"rank": ')]
    assert len(host_lines) == 300
