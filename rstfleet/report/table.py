"""The terminal report: fleet summary, the ranked table, details of the hosts that sent resets,
then the hosts that could not be checked (past 50 hosts: the worst 20 of each, the rest as
counts; summary.py).

Colour is off unless ``meta["color"]`` is true (the CLI decides: a TTY and no NO_COLOR); every
piece of host text goes through `escape.terminal`, so a host cannot move the cursor, retitle the
terminal or hide a line.

    TCP resets sent over a 3 s window — 3 host(s) checked, 1 not checked (warn ≥ 10/s, crit ≥ 100/s)

    Fleet
      hosts        4 hosts: 3 checked, 1 not checked (see below)
      shared peer  198.18.0.1 got resets from 2 hosts: h02, h04 (240 resets)
    ...
"""

from __future__ import annotations

from tabulate import tabulate

from ..analysis import Assessment, Thresholds, Verdict
from . import both_ends, summary, view
from .escape import terminal
from .window_text import window_lines

COLOURS = {Verdict.CRIT: "\x1b[1;31m", Verdict.WARN: "\x1b[33m", Verdict.OK: "\x1b[32m", Verdict.UNKNOWN: "\x1b[2m"}
RESET = "\x1b[0m"


def _paint(text: str, verdict: str, colour: bool) -> str:
    return f"{COLOURS.get(verdict, '')}{text}{RESET}" if colour and verdict in COLOURS else text


def _labelled(pairs: list[tuple[str, str]], indent: str = "  ", limit: int = 300) -> list[str]:
    width = max((len(label) for label, _ in pairs), default=0)
    return [f"{indent}{label:<{width}}  {terminal(text, limit)}" for label, text in pairs]


def ranked_rows(assessments: list[Assessment], colour: bool = False) -> list[list[str]]:
    expected, netdata = view.any_expected(assessments), view.shows_netdata(assessments)
    return [[str(a.rank), terminal(a.host, 60), view.rate_text(a.resets_sent_per_s)]
            + ([view.expected_rate_text(a)] if expected else [])
            + [view.rate_text(a.baseline_per_s), _paint(view.verdict_text(a), a.verdict, colour),
               f"{a.score:.1f}", terminal(view.top_cause(a), 40), terminal(view.top_port(a), 40),
               view.rule_text(a)]
            + ([view.netdata_text(a), view.lifetime_text(a), view.sparkline(a.episode.history if a.episode else [])
                or "-"] if netdata else [])
            for a in view.checked(assessments)]


def ranked_headers(assessments: list[Assessment]) -> list[str]:
    """The ranked table's columns; 'expected/s' only when some host has expected-reset rules."""
    return (RANKED_HEADERS[:3] + ["expected/s"] * view.any_expected(assessments) + RANKED_HEADERS[3:]
            + (NETDATA_HEADERS if view.shows_netdata(assessments) else []))


RANKED_HEADERS = ["rank", "host", "resets sent/s", "baseline/s", "verdict", "score", "top cause",
                  "top port (owner)", "rule"]
NETDATA_HEADERS = ["Netdata", "lifetime", "OutRsts history"]


def render_table(assessments: list[Assessment], thresholds: Thresholds, meta: dict) -> str:
    colour = bool(meta.get("color"))
    lines = [view.headline(assessments, thresholds, meta)]
    if meta.get("partial"):
        lines.append("PARTIAL: the run was interrupted; hosts that did not finish are listed as not checked")
    fleet = view.fleet_view(assessments)
    lines += ["", "Fleet"] + _labelled(fleet.lines + view.phase2_fleet_lines(meta) + window_lines(meta), limit=600)
    ends = both_ends.both_ends_lines(fleet.summary)
    if ends:
        lines += ["", "Both ends of the resets (received, paired with the sender's kernel)"] + _labelled(ends, limit=600)
    listed = summary.shown(assessments)
    rows = ranked_rows(listed.ranked, colour)
    if rows:
        lines += ["", tabulate(rows, headers=ranked_headers(listed.ranked), disable_numparse=True)]
    if listed.detailed:
        lines += ["", "Details (hosts that sent resets, worst first)"]
    for a in listed.detailed:
        lines.append(f"#{a.rank} {terminal(a.host, 60)} — "
                     + _paint(view.verdict_text(a), a.verdict, colour))
        lines += _labelled(view.host_lines(a, meta))
    receiving = both_ends.receiving_hosts(assessments)
    if receiving:
        names = both_ends.address_names(assessments)
        lines += ["", "Resets received (hosts whose connections were reset, most first)"]
        for a in receiving[:summary.REPORT_TOP if len(assessments) > summary.REPORT_WHOLE_UP_TO else None]:
            lines += [terminal(a.host, 60)] + _labelled(both_ends.received_lines(a, names))
    if listed.missed:
        lines += ["", summary.not_checked_line(listed) + ":",
                  tabulate([[terminal(a.host, 60), terminal(a.result.status, 30),
                             terminal(a.result.reason, 300)] for a in listed.missed],
                           headers=["host", "status", "reason"], disable_numparse=True)]
    hidden = summary.hidden_lines(listed)
    if hidden:
        lines += [""] + hidden
    return "\n".join(lines) + "\n"
