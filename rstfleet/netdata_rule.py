"""Netdata's verdict on one host, and the shape of its resets over time: pure functions, no I/O.

The alert that woke someone is Netdata's `10s_ipv4_tcp_resets_sent` (`10s_ip_tcp_resets_sent` since
Netdata 1.43): warn when the last 10 s average of OutRsts exceeds max(the minute before it, 5/s)
× 10 (× 1 once already warning). Two ways to know its verdict (see probe/host/netdata.py):

* **agent**: the host's own agent says CLEAR / WARNING / CRITICAL (mapped to ok / warn / crit);
  UNINITIALIZED, UNDEFINED or a missing alarm give no verdict, and say why;
* **exact**: rstfleet applies the rule itself to the minute the probe measured before the window
  (`--baseline exact`). It evaluates from CLEAR: a host already WARNING would get Netdata's ×1
  hysteresis line, which no single probe can know.

    exact_view({"per_s": 0.0, ...}, rate=80.0) -> NetdataView(source="exact", verdict="warn", line=50.0, ...)
    episode([[t0, 0.0], [t0 + 1, 80.0], ...], line=10.0) -> Episode(started_at=t0 + 1, peak_per_s=80.0, ...)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .probe.host.limits import NETDATA_FACTOR, NETDATA_FLOOR

STATUS_VERDICT = {"CLEAR": "ok", "WARNING": "warn", "CRITICAL": "crit"}
NO_VERDICT = {
    "UNINITIALIZED": "the alarm is UNINITIALIZED: the agent has not collected enough data for it yet",
    "UNDEFINED": "the alarm is UNDEFINED: its expression could not be computed (no data in its window)",
    "REMOVED": "the alarm is REMOVED: its chart went away",
    "RAISED": "the alarm is RAISED, a status this warn-only rule does not use",
}
GENERATIONS = ("ip", "ipv4")          # Netdata ≥ 1.43 names first, then ≤ 1.42
QUIET_GAP_S = 10.0                    # a run over the line survives dips this short (the rule's 10 s)


@dataclass(frozen=True)
class NetdataView:
    """What Netdata says (or would say) about one host."""

    source: str                       # "agent" (the host's agent) or "exact" (rule applied by rstfleet)
    verdict: str | None               # ok / warn / crit; None: no verdict (reason says why)
    status: str | None = None         # the agent's alarm status: CLEAR, WARNING, ...
    alarm: str | None = None          # e.g. "10s_ipv4_tcp_resets_sent"
    value: float | None = None        # $this: the 10 s average, resets/s
    baseline_1m: float | None = None  # $1m_…: the minute before it, resets/s
    line: float | None = None         # the warn line: max(1m, 5) × (1 if warning else 10)
    since: float | None = None        # the agent's last_status_change (epoch seconds)
    received_status: str | None = None  # 10s_…_tcp_resets_received
    version: str | None = None
    reason: str = ""
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Episode:
    """The latest run of resets over the warn line in a host's OutRsts history."""

    source: str                       # "agent" (its chart) or "exact" (the probe's samples)
    line: float                       # the warn line the points were compared with, resets/s
    points: int
    first_at: float                   # the history's span, epoch seconds
    last_at: float
    started_at: float | None          # first point of the latest run (None: never over the line)
    started_before_history: bool      # that run begins with the history: it started earlier
    peak_per_s: float
    peak_at: float
    still_going: bool                 # the newest points are still over the line
    history: list = field(default_factory=list, repr=False, compare=False)   # [[t, resets/s], ...]


def warn_line(baseline_1m: float | None, warning: bool = False) -> float | None:
    if baseline_1m is None:
        return None
    return max(baseline_1m, NETDATA_FLOOR) * (1.0 if warning else NETDATA_FACTOR)


def _alarm(alarms: dict, period: str, side: str) -> tuple[str | None, dict]:
    for generation in GENERATIONS:
        name = f"{period}_{generation}_tcp_resets_{side}"
        if name in alarms:
            return name, alarms[name]
    return None, {}


def agent_view(netdata: dict) -> NetdataView | None:
    """The agent's own verdict from the probe's `netdata` section ({} when not asked: None)."""
    if not netdata:
        return None
    if not netdata.get("available"):
        return NetdataView("agent", None, reason=f"no agent: {netdata.get('reason') or 'unknown'}")
    alarms = netdata.get("alarms") or {}
    name, alarm = _alarm(alarms, "10s", "sent")
    _, minute = _alarm(alarms, "1m", "sent")
    _, received = _alarm(alarms, "10s", "received")
    status = alarm.get("status")
    verdict = STATUS_VERDICT.get(status)
    if name is None:
        reason = ("the agent has no 10s_…_tcp_resets_sent alarm (no reset since it started, or the "
                  "alarm is disabled)")
    else:
        reason = "" if verdict else NO_VERDICT.get(status, f"the alarm's status is {status}")
    return NetdataView("agent", verdict, status, name, alarm.get("value"), minute.get("value"),
                       warn_line(minute.get("value"), status in ("WARNING", "CRITICAL")),
                       alarm.get("last_status_change"), received.get("status"), netdata.get("version"),
                       reason, tuple(netdata.get("notes") or ()))


def exact_view(exact: dict, rate: float | None, window_s: float | None) -> NetdataView | None:
    """Netdata's rule applied by rstfleet: the window's rate against the measured minute before."""
    if not exact:
        return None
    baseline = exact.get("per_s")
    if baseline is None or rate is None:
        return NetdataView("exact", None, reason="the minute before the window could not be measured "
                                                 "(OutRsts missing or went backwards)")
    line = warn_line(baseline)
    notes = ()
    if window_s is not None and abs(window_s - 10.0) > 1.0:
        notes = (f"the window was {window_s:g} s; Netdata's rule averages 10 s",)
    return NetdataView("exact", "warn" if rate > line else "ok", alarm="10s_…_tcp_resets_sent", value=rate,
                       baseline_1m=baseline, line=line, notes=notes)


def episode(history: list, line: float, source: str) -> Episode | None:
    """When the latest run over ``line`` started, its peak, and whether it is still going.

    A run is a stretch of points at or over the line whose gaps below it last at most QUIET_GAP_S.
    """
    if not history:
        return None
    over = [point for point in history if point[1] >= line]
    peak = max(history, key=lambda point: (point[1], -point[0]))
    started = None
    if over:
        started = over[-1][0]
        for previous, current in zip(reversed(over[:-1]), reversed(over)):
            if current[0] - previous[0] > QUIET_GAP_S:
                break
            started = previous[0]
    still = bool(over) and history[-1][0] - over[-1][0] <= 2.0
    return Episode(source, line, len(history), history[0][0], history[-1][0], started,
                   started is not None and started <= history[0][0], peak[1], peak[0], still,
                   list(history))


def history_of(netdata: dict, exact: dict) -> tuple[list, str] | tuple[None, None]:
    """The longest view of OutRsts over time: the agent's chart, else the probe's own samples."""
    if netdata.get("available") and netdata.get("history"):
        return netdata["history"], "agent"
    if exact.get("history"):
        return exact["history"], "exact"
    return None, None
