"""The shape of a probe document, checked field by field before anything downstream reads it.

A host may be broken or hostile: every section the analysis, evidence and report code touch is
checked here for type and bounds, so a bad document becomes one host's `probe_error`, never a
crash of the whole run (found by fuzzing: docs/fuzzing.md). Unknown extra keys are kept (newer
probes may add some) but never read.

Fields the controller sets itself are removed from host output: `capture.path` names a file on
the controller and must never come from a host; `notes` are the controller's (a phase 2 that failed
or was interrupted) and are shown as such.

Values that end up in a suggested command are checked for what they are, not only for their type:
a trace flow's peer must be an IP address (or empty: a listener's reset names none) and every port
an integer 0..65535. The probe writes peers as the kernel prints them, so a peer such as
``198.18.0.1;touch /tmp/x`` means the host lies: the whole document is refused (the host becomes
``probe_error`` naming the field), as for any other malformed field, never partly trusted.
"""

from __future__ import annotations

import ipaddress
import math
import re

MAX_FLOWS = 5000              # rows of trace.flows and of trace.resets
MAX_SAMPLE = 5000             # single resets of each direction in trace.sample
DIRECTIONS = ("sent", "received")
MAX_PORTS = 100
MAX_OWNERS = 100
MAX_TEXT = 4096
MAX_HISTORY = 600          # limits.MAX_HISTORY_POINTS: points of an OutRsts history
MAX_ALARMS = 16            # Netdata alarms kept: 2 generations x 10s/1m x sent/received
NETDATA_STATUSES = ("REMOVED", "UNDEFINED", "UNINITIALIZED", "CLEAR", "RAISED", "WARNING", "CRITICAL",
                    "UNKNOWN")
MAX_PORT = 65535
SCOPE_ID = re.compile(r"[0-9A-Za-z_.-]{1,16}")   # an interface name or index, as a kernel prints it


class ShapeError(ValueError):
    """`where` names the offending field, e.g. 'trace.flows[3][0]'."""


def _fail(where: str, wanted: str, value) -> None:
    raise ShapeError(f"probe output field {where} is not {wanted}: {repr(value)[:40]}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def number(value, where: str, optional: bool = False, minimum: float | None = None):
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _fail(where, "a finite number", value)
    if minimum is not None and value < minimum:
        _fail(where, f"a number ≥ {minimum:g}", value)


def integer(value, where: str, optional: bool = False, minimum: int | None = None,
            maximum: int | None = None) -> None:
    if value is None and optional:
        return
    if not _is_int(value):
        _fail(where, "an integer", value)
    if minimum is not None and value < minimum:
        _fail(where, f"an integer ≥ {minimum}", value)
    if maximum is not None and value > maximum:
        _fail(where, f"an integer ≤ {maximum}", value)


def address(value, where: str) -> None:
    """An IP address as text, or null/empty (no peer). An IPv6 scope id may name an interface."""
    if value is None or value == "":
        return
    text(value, where)
    try:
        parsed = ipaddress.ip_address(value)
    except ValueError:
        _fail(where, "an IP address", value)
    scope = getattr(parsed, "scope_id", None)
    if scope is not None and not SCOPE_ID.fullmatch(scope):
        _fail(where, "an IP address (with an interface as scope)", value)


def text(value, where: str, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        _fail(where, f"text of at most {MAX_TEXT} characters", value)


def mapping(value, where: str, optional: bool = False) -> bool:
    """True when present (and a dict); False when absent and optional."""
    if value is None and optional:
        return False
    if not isinstance(value, dict):
        _fail(where, "an object", value)
    return True


def counters(value, where: str, optional: bool = False) -> None:
    """{name: int ≥ 0 or null} — counter deltas (null: the counter went backwards)."""
    if not mapping(value, where, optional):
        return
    for name, count in value.items():
        integer(count, f"{where}.{name}", optional=True, minimum=0)


def check_trace(trace, where: str = "trace") -> None:
    if not mapping(trace, where, optional=True):
        return
    if not isinstance(trace.get("available"), bool):
        _fail(f"{where}.available", "true or false", trace.get("available"))
    text(trace.get("reason"), f"{where}.reason", optional=True)
    for key in ("events", "dropped", "flows_cut", "foreign", "kept_sample"):
        integer(trace.get(key), f"{where}.{key}", optional=True, minimum=0)
    flows = trace.get("flows", [])
    if not isinstance(flows, list) or len(flows) > MAX_FLOWS:
        _fail(f"{where}.flows", f"a list of at most {MAX_FLOWS} flows", flows)
    for i, flow in enumerate(flows):
        if not isinstance(flow, list) or len(flow) != 4:
            _fail(f"{where}.flows[{i}]", "[port, peer, reason, count]", flow)
        integer(flow[0], f"{where}.flows[{i}][0]", minimum=0, maximum=MAX_PORT)
        address(flow[1], f"{where}.flows[{i}][1]")
        text(flow[2], f"{where}.flows[{i}][2]", optional=True)
        integer(flow[3], f"{where}.flows[{i}][3]", minimum=0)
    check_both_ends(trace, where)


def _port(value, where: str) -> None:
    integer(value, where, optional=True, minimum=0, maximum=MAX_PORT)


def check_both_ends(trace: dict, where: str = "trace") -> None:
    """The sections both reset tracepoints fill (probe/host/tally.py): counts by key for both
    directions, the sample of single resets, and the received side's own state."""
    if mapping(trace.get("received"), f"{where}.received", optional=True):
        received = trace["received"]
        if received.get("available") is not None and not isinstance(received["available"], bool):
            _fail(f"{where}.received.available", "true or false", received["available"])
        text(received.get("reason"), f"{where}.received.reason", optional=True)
        for key in ("events", "kept_sample"):
            integer(received.get(key), f"{where}.received.{key}", optional=True, minimum=0)
    if mapping(trace.get("resets_cut"), f"{where}.resets_cut", optional=True):
        for direction, count in trace["resets_cut"].items():
            integer(count, f"{where}.resets_cut.{direction}", minimum=0)
    rows = trace.get("resets", [])
    if not isinstance(rows, list) or len(rows) > MAX_FLOWS:
        _fail(f"{where}.resets", f"a list of at most {MAX_FLOWS} rows", rows)
    for i, row in enumerate(rows):
        here = f"{where}.resets[{i}]"
        if not isinstance(row, list) or len(row) != 9 or row[0] not in DIRECTIONS:
            _fail(here, "[direction, local, port, peer, port, reason, count, first ts, last ts]", row)
        address(row[1], f"{here}[1]"), _port(row[2], f"{here}[2]"), address(row[3], f"{here}[3]")
        _port(row[4], f"{here}[4]"), text(row[5], f"{here}[5]", optional=True)
        integer(row[6], f"{here}[6]", minimum=0)
        number(row[7], f"{here}[7]", optional=True), number(row[8], f"{here}[8]", optional=True)
    if not mapping(trace.get("sample"), f"{where}.sample", optional=True):
        return
    for direction in DIRECTIONS:
        events = trace["sample"].get(direction, [])
        if not isinstance(events, list) or len(events) > MAX_SAMPLE:
            _fail(f"{where}.sample.{direction}", f"a list of at most {MAX_SAMPLE} resets", events)
        for i, event in enumerate(events):
            here = f"{where}.sample.{direction}[{i}]"
            if not isinstance(event, list) or len(event) != 6:
                _fail(here, "[ts, local, port, peer, port, reason]", event)
            number(event[0], f"{here}[0]", optional=True), address(event[1], f"{here}[1]")
            _port(event[2], f"{here}[2]"), address(event[3], f"{here}[3]"), _port(event[4], f"{here}[4]")
            text(event[5], f"{here}[5]", optional=True)


def check_capture(capture, where: str = "capture", trusted: bool = False) -> None:
    if not mapping(capture, where, optional=True):
        return
    if not trusted:
        capture.pop("path", None)
    elif "path" in capture:
        text(capture["path"], f"{where}.path")
    if "available" in capture and not isinstance(capture["available"], bool):
        _fail(f"{where}.available", "true or false", capture["available"])
    text(capture.get("reason"), f"{where}.reason", optional=True)
    b64 = capture.get("pcap_b64")
    if b64 is not None and not isinstance(b64, str):
        _fail(f"{where}.pcap_b64", "text", b64)


def check_owners(owners, where: str = "owners") -> None:
    if not mapping(owners, where, optional=True):
        return
    text(owners.get("method"), f"{where}.method", optional=True)
    text(owners.get("reason"), f"{where}.reason", optional=True)
    ports = owners.get("ports", {})
    if not isinstance(ports, dict) or len(ports) > MAX_PORTS:
        _fail(f"{where}.ports", f"an object of at most {MAX_PORTS} ports", ports)
    for port, info in ports.items():
        here = f"{where}.ports.{port}"
        if not re.fullmatch(r"[0-9]{1,5}", port) or int(port) > MAX_PORT:
            _fail(here, "keyed by a port number", port)
        mapping(info, here)
        if info.get("listening") is not None and not isinstance(info["listening"], bool):
            _fail(f"{here}.listening", "true, false or null", info["listening"])
        found = info.get("owners", [])
        if not isinstance(found, list) or len(found) > MAX_OWNERS:
            _fail(f"{here}.owners", f"a list of at most {MAX_OWNERS}", found)
        for i, owner in enumerate(found):
            mapping(owner, f"{here}.owners[{i}]")
            integer(owner.get("pid"), f"{here}.owners[{i}].pid", optional=True)
            text(owner.get("command"), f"{here}.owners[{i}].command", optional=True)
            text(owner.get("user"), f"{here}.owners[{i}].user", optional=True)


def check_history(history, where: str) -> None:
    """[[epoch seconds, resets/s ≥ 0], ...], oldest first, bounded."""
    if not isinstance(history, list) or len(history) > MAX_HISTORY:
        _fail(where, f"a list of at most {MAX_HISTORY} points", history)
    previous = None
    for i, point in enumerate(history):
        if not isinstance(point, list) or len(point) != 2:
            _fail(f"{where}[{i}]", "[time, resets/s]", point)
        number(point[0], f"{where}[{i}][0]", minimum=0)
        number(point[1], f"{where}[{i}][1]", minimum=0)
        if previous is not None and point[0] < previous:
            _fail(f"{where}[{i}][0]", "in time order", point[0])
        previous = point[0]


def check_netdata(netdata, where: str = "netdata") -> None:
    """The agent's answer as the probe summarised it (probe/host/netdata.py): every figure a finite
    number, every status one of Netdata's, the history bounded and in time order."""
    if not mapping(netdata, where, optional=True):
        return
    if not isinstance(netdata.get("available"), bool):
        _fail(f"{where}.available", "true or false", netdata.get("available"))
    for key in ("reason", "url", "version", "chart"):
        text(netdata.get(key), f"{where}.{key}", optional=True)
    number(netdata.get("cost_s"), f"{where}.cost_s", optional=True, minimum=0)
    integer(netdata.get("lookback_s"), f"{where}.lookback_s", optional=True, minimum=0)
    alarms = netdata.get("alarms", {})
    if not isinstance(alarms, dict) or len(alarms) > MAX_ALARMS:
        _fail(f"{where}.alarms", f"an object of at most {MAX_ALARMS} alarms", alarms)
    for name, alarm in alarms.items():
        here = f"{where}.alarms.{name}"
        text(name, here)
        mapping(alarm, here)
        if alarm.get("status") not in NETDATA_STATUSES:
            _fail(f"{here}.status", "a Netdata alarm status", alarm.get("status"))
        number(alarm.get("value"), f"{here}.value", optional=True)
        number(alarm.get("last_status_change"), f"{here}.last_status_change", optional=True, minimum=0)
        text(alarm.get("chart"), f"{here}.chart", optional=True)
    check_history(netdata.get("history", []), f"{where}.history")
    notes = netdata.get("notes", [])
    if not isinstance(notes, list) or len(notes) > 20:
        _fail(f"{where}.notes", "a list of at most 20 notes", notes)
    for i, note in enumerate(notes):
        text(note, f"{where}.notes[{i}]")


def check_exact_baseline(exact, where: str = "baseline.exact") -> None:
    """--baseline exact: the minute before the window, measured on the host."""
    if not mapping(exact, where, optional=True):
        return
    number(exact.get("measured_s"), f"{where}.measured_s", minimum=0)
    number(exact.get("started_at"), f"{where}.started_at", optional=True)
    integer(exact.get("OutRsts"), f"{where}.OutRsts", optional=True, minimum=0)
    number(exact.get("per_s"), f"{where}.per_s", optional=True, minimum=0)
    check_history(exact.get("history", []), f"{where}.history")


def check_document(document: dict, trusted_paths: bool = False) -> dict:
    """Raise ShapeError naming the first field that is not what downstream code expects."""
    mapping(document.get("window"), "window")
    number(document["window"].get("measured_s"), "window.measured_s", minimum=0)
    number(document["window"].get("requested_s"), "window.requested_s", optional=True, minimum=0)
    number(document["window"].get("started_at"), "window.started_at", optional=True)
    number(document["window"].get("start_at"), "window.start_at", optional=True, minimum=0)
    mapping(document.get("tcp"), "tcp")
    counters(document["tcp"].get("delta"), "tcp.delta")
    for section in ("start", "end"):
        if mapping(document["tcp"].get(section), f"tcp.{section}", optional=True):
            for name, value in document["tcp"][section].items():
                integer(value, f"tcp.{section}.{name}")
    if mapping(document["tcp"].get("per_s"), "tcp.per_s", optional=True):
        for name, value in document["tcp"]["per_s"].items():
            number(value, f"tcp.per_s.{name}")
    counters(document.get("tcpext_delta"), "tcpext_delta", optional=True)
    if mapping(document.get("baseline"), "baseline", optional=True):
        baseline = document["baseline"]
        number(baseline.get("uptime_s"), "baseline.uptime_s", optional=True, minimum=0)
        integer(baseline.get("OutRsts_total"), "baseline.OutRsts_total", optional=True)
        number(baseline.get("OutRsts_per_s_lifetime"), "baseline.OutRsts_per_s_lifetime", optional=True)
        check_exact_baseline(baseline.get("exact"))
    if mapping(document.get("sysctls"), "sysctls", optional=True):
        for name, value in document["sysctls"].items():
            if value is not None and not _is_int(value):
                text(value, f"sysctls.{name}")
    if mapping(document.get("facts"), "facts", optional=True):
        facts = document["facts"]
        _check_facts(facts)
        addresses = facts.get("addresses", [])
        if not isinstance(addresses, list) or len(addresses) > 1024:
            _fail("facts.addresses", "a list of addresses", addresses)
        for i, address in enumerate(addresses):
            text(address, f"facts.addresses[{i}]")
    if mapping(document.get("cost"), "cost", optional=True):
        for name, value in document["cost"].items():
            number(value, f"cost.{name}")
    if not trusted_paths:
        document.pop("notes", None)
    notes = document.get("notes", [])
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        _fail("notes", "a list of text", notes)
    check_trace(document.get("trace"))
    check_capture(document.get("capture"), trusted=trusted_paths)
    check_owners(document.get("owners"))
    check_netdata(document.get("netdata"))
    return document


def _check_facts(facts, where: str = "facts") -> None:
    if not mapping(facts, where, optional=True):
        return
    for key in ("hostname", "kernel", "python", "python_executable", "tcpdump", "lsof"):
        text(facts.get(key), f"{where}.{key}", optional=True)
    integer(facts.get("uid"), f"{where}.uid", optional=True)


def check_readiness(document: dict, trusted_paths: bool = False) -> dict:
    """The `--check` document (probe/host/check.py): facts, euid and the tracefs state."""
    _check_facts(document.get("facts"))
    integer(document.get("euid"), "euid", optional=True)
    if mapping(document.get("tracefs"), "tracefs"):
        tracefs = document["tracefs"]
        if not isinstance(tracefs.get("available"), bool):
            _fail("tracefs.available", "true or false", tracefs.get("available"))
        for key in ("reason", "path"):
            text(tracefs.get(key), f"tracefs.{key}", optional=True)
        for key in ("mounted", "reason_field"):
            if tracefs.get(key) is not None and not isinstance(tracefs[key], bool):
                _fail(f"tracefs.{key}", "true, false or null", tracefs[key])
    return document
