"""JUnit XML for CI systems: one <testcase> per host, so a sweep shows up like a test run.

    <testsuites name="rstfleet" tests="4" failures="2" errors="1" skipped="0" time="3.7">
      <testsuite name="rstfleet sweep" ...>
        <testcase classname="web" name="h02" time="3.25">
          <failure type="warn" message="60.0 resets/s (warn ≥ 10/s); top cause closed_port 100%">…</failure>
          <system-out>…per-host detail…</system-out>
        </testcase>
        <testcase classname="web" name="h03"><error type="unreachable" message="…reason…"/></testcase>

warn and crit are failures, hosts that could not be checked are errors. classname is the host's
first inventory group (other than all/ungrouped) or "rstfleet". Built with xml.etree, which
escapes markup; `escape.xml_text` removes what XML 1.0 forbids (controls, surrogates, U+FFFE).
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET

from ..analysis import Assessment, Thresholds, Verdict
from ..fleet import summarize_fleet
from . import both_ends, view
from .escape import xml_block, xml_text


def classname(a: Assessment) -> str:
    groups = [g for g in a.result.groups if g not in ("all", "ungrouped")]
    return xml_text(groups[0], 100) if groups else "rstfleet"


def _detail(a: Assessment, meta: dict, names: dict[str, str] | None = None) -> str:
    pairs = view.host_lines(a, meta) + both_ends.received_lines(a, names)
    lines = [f"{label}: {text}" for label, text in pairs]
    return xml_block("\n".join(xml_text(line, 400) for line in lines))


def _failure_message(a: Assessment, thresholds: Thresholds) -> str:
    limit = thresholds.crit if a.verdict == Verdict.CRIT else thresholds.warn
    why = f"{a.verdict} ≥ {limit:g}/s"
    if a.rule != "lifetime baseline":
        why = f"{a.verdict} by the {a.rule}: Netdata says {view.netdata_text(a)}"
    elif a.spike:
        why += f"; spike over {thresholds.spike_factor:g}× baseline {view.rate_text(a.baseline_per_s)}/s"
    rate = view.rate_text(a.resets_sent_per_s, 1)
    if a.expected_per_s > 0:
        rate = f"{view.rate_text(a.counted_per_s, 1)} of {rate} resets/s not expected"
    else:
        rate += " resets/s"
    return f"{rate} ({why}); top cause {view.top_cause(a)}"


def _testcase(suite: ET.Element, a: Assessment, thresholds: Thresholds, meta: dict, names: dict[str, str]) -> str:
    case = ET.SubElement(suite, "testcase", classname=classname(a), name=xml_text(a.host, 200),
                         time=f"{a.result.elapsed_s:.3f}")
    if a.rank is None:
        ET.SubElement(case, "error", type=xml_text(a.result.status, 40),
                      message=xml_text(f"{a.result.status}: {a.result.reason}", 400)).text = \
            xml_text("\n".join([a.result.reason] + [f"{label}: {text}" for label, text
                                                     in view.phase2_host_lines(a, meta)]), 2000)
        return "error"
    outcome = "passed"
    if a.verdict in (Verdict.WARN, Verdict.CRIT):
        message = _failure_message(a, thresholds)
        commands = "\n".join(f"next: {c}" for c in view.next_commands(a))
        ET.SubElement(case, "failure", type=a.verdict, message=xml_text(message, 400)).text = \
            xml_block(f"{message}\n{commands}".strip())
        outcome = "failure"
    ET.SubElement(case, "system-out").text = _detail(a, meta, names)
    return outcome


def render_junit(assessments: list[Assessment], thresholds: Thresholds, meta: dict) -> str:
    root = ET.Element("testsuites", name="rstfleet")
    suite = ET.SubElement(root, "testsuite", name="rstfleet sweep",
                          timestamp=time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()),
                          hostname="rstfleet")
    props = ET.SubElement(suite, "properties")
    for name, value in (("window_s", meta.get("window_s")), ("warn", thresholds.warn),
                        ("crit", thresholds.crit), ("exit_code", meta.get("exit_code")),
                        ("partial", str(bool(meta.get("partial"))).lower())):
        ET.SubElement(props, "property", name=name, value=xml_text(value))
    for label, text in ([view.expected_fleet_line(assessments)] if view.any_expected(assessments) else []) \
            + view.phase2_fleet_lines(meta):
        ET.SubElement(props, "property", name=xml_text(label, 40), value=xml_text(text, 600))
    names = both_ends.address_names(assessments)
    outcomes = [_testcase(suite, a, thresholds, meta, names) for a in assessments]
    ends = both_ends.both_ends_lines(summarize_fleet(assessments))
    if ends:     # the fleet's pairing: the suite's own output, as a CI system shows it
        ET.SubElement(suite, "system-out").text = xml_block("\n".join(xml_text(f"{label}: {text}", 600)
                                                                       for label, text in ends))
    wall = meta.get("wall_s")
    if not isinstance(wall, (int, float)):
        wall = max((a.result.elapsed_s for a in assessments), default=0.0)
    counts = {"tests": str(len(outcomes)), "failures": str(outcomes.count("failure")),
              "errors": str(outcomes.count("error")), "skipped": "0", "time": f"{wall:.3f}"}
    for element in (root, suite):
        for key, value in counts.items():
            element.set(key, value)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
