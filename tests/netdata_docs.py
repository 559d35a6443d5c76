"""Probe documents with a netdata section built out of the real agent answers in
tests/fixtures/netdata/, shared by the Netdata rule's tests and the report tests."""

from __future__ import annotations

import json

from helpers import FIXTURES
from rstfleet.probe.host import netdata


def answer(name: str):
    return json.loads((FIXTURES / "netdata" / name).read_bytes().split(b"\r\n\r\n", 1)[1])


def agent_section(alarms_fixture: str, history_fixture: str | None = "1.37.1-data-90-per-s.http", **status) -> dict:
    """The probe's netdata section as ask_agent builds it from these real answers."""
    alarms = netdata.pick_alarms(answer(alarms_fixture))
    for name, value in status.items():
        alarms[name]["status"] = value
    history = netdata.parse_history(answer(history_fixture), 120) if history_fixture else []
    return {"available": True, "url": "http://127.0.0.1:19999", "version": "1.37.1", "alarms": alarms,
            "chart": "ipv4.tcphandshake", "history": history, "lookback_s": 120, "notes": [], "cost_s": 0.002}


NO_AGENT = {"available": False, "reason": "nothing listens on http://127.0.0.1:19999", "cost_s": 0.0001}


def document(rate: float, lifetime: float = 0.1, netdata_section=None, minute_per_s=None, window: float = 10.0) -> dict:
    doc = {"schema": 1, "kind": "rstfleet-probe", "window": {"measured_s": window, "requested_s": window},
           "tcp": {"delta": {"OutRsts": round(rate * window)}},
           "baseline": {"OutRsts_per_s_lifetime": lifetime, "uptime_s": 3600.0}}
    if netdata_section is not None:
        doc["netdata"] = netdata_section
    if minute_per_s is not None:
        doc["baseline"]["exact"] = {"measured_s": 60.0, "OutRsts": round(minute_per_s * 60),
                                    "per_s": round(minute_per_s * 60) / 60.0,
                                    "history": [[1000.0 + i, minute_per_s] for i in range(60)]}
    return json.loads(json.dumps(doc))
