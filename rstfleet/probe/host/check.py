"""`--check`: what this host can give rstfleet, read in milliseconds, for `rstfleet check`.

No window, no capture, no trace. Nothing persistent changes: when tracefs is not mounted it is
mounted in a private mount namespace of this process only (as the tracepoint tier does; the mount
goes when the probe exits), and the event's ``format`` file is read; no instance is created.

    {"kind": "rstfleet-check", "schema": 1, "facts": {... "uid": 0, "tcpdump": "/usr/bin/tcpdump"},
     "euid": 0, "tracefs": {"available": true, "path": "/sys/kernel/tracing", "mounted": false,
                            "reason_field": true}}
"""

import os

from . import PROBE_VERSION, SCHEMA
from .facts import host_facts

KIND = "rstfleet-check"


def tracefs_state():
    """Whether the tracepoint tier would work here, and if not, why (the trace's own words)."""
    from .tracefs import EVENT_DIR, TraceUnavailable, _read, find_tracefs, mount_private, parse_format
    if os.geteuid() != 0:
        return {"available": False, "reason": "not root: the tracepoint needs root (rerun with -b)"}
    path = find_tracefs()
    state = {"available": False, "path": path, "mounted": path is not None}
    try:
        path = state["path"] = path or mount_private()
    except TraceUnavailable as exc:
        state["reason"] = "tracefs is not mounted and cannot be: %s" % exc
        return state
    fmt = parse_format(_read(os.path.join(path, EVENT_DIR, "format")))
    if not fmt["conversions"]:
        state["reason"] = "this kernel has no tcp:tcp_send_reset tracepoint (needs Linux >= 4.16)"
        return state
    state.update(available=True, reason_field="reason" in fmt["fields"])
    return state


def readiness():
    """The check document (one JSON object on stdout, like the probe's)."""
    try:
        trace = tracefs_state()
    except Exception as exc:  # an odd kernel must not hide the other facts
        trace = {"available": False, "reason": "tracefs check failed: %r" % (exc,)}
    return {"schema": SCHEMA, "kind": KIND, "probe_version": PROBE_VERSION, "facts": host_facts(),
            "euid": os.geteuid(), "tracefs": trace}
