"""The terminal table: checked hosts ranked worst first, then the hosts that could not be checked."""

from __future__ import annotations

from tabulate import tabulate

from ..analysis import Assessment, Thresholds
from ..textsafe import printable


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _top_cause(a: Assessment) -> str:
    if not a.evidence or not a.evidence.causes:
        return "-"
    cause = a.evidence.causes[0]
    return f"{cause.key} {cause.share:.0%}"


def _top_port(a: Assessment) -> str:
    if not a.evidence or not a.evidence.top_ports:
        return "-"
    port = a.evidence.top_ports[0]
    if port.listening is False:
        return f"{port.port} (nothing listens)"
    if port.owners:
        return f"{port.port} ({printable(port.owners[0].get('command', '?'), 30)})"
    return str(port.port)


def render_table(assessments: list[Assessment], thresholds: Thresholds, meta: dict) -> str:
    checked = [a for a in assessments if a.rank is not None]
    missed = [a for a in assessments if a.rank is None]
    lines = []
    rows = [[a.rank, printable(a.host, 60), _rate(a.resets_sent_per_s), _rate(a.baseline_per_s),
             a.verdict + (" (spike)" if a.spike else ""), a.result.status, _top_cause(a),
             _top_port(a)] for a in checked]
    window = meta.get("window_s")
    lines.append(f"TCP resets sent over a {window:g} s window — {len(checked)} host(s) checked, "
                 f"{len(missed)} not checked (warn ≥ {thresholds.warn:g}/s, crit ≥ {thresholds.crit:g}/s)")
    if rows:
        lines.append(tabulate(rows, headers=["rank", "host", "resets sent/s", "baseline/s",
                                             "verdict", "status", "top cause", "top port (owner)"], disable_numparse=True))
    if missed:
        lines.append("")
        lines.append("Not checked:")
        lines.append(tabulate([[printable(a.host, 60), a.result.status, printable(a.result.reason, 300)]
                               for a in missed], headers=["host", "status", "reason"],
                              disable_numparse=True))
    return "\n".join(lines) + "\n"
