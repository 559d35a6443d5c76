"""The terminal report: fleet summary, the ranked table, details of the hosts that sent resets,
then the hosts that could not be checked.

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
from . import view
from .escape import terminal

COLOURS = {Verdict.CRIT: "\x1b[1;31m", Verdict.WARN: "\x1b[33m", Verdict.OK: "\x1b[32m", Verdict.UNKNOWN: "\x1b[2m"}
RESET = "\x1b[0m"


def _paint(text: str, verdict: str, colour: bool) -> str:
    return f"{COLOURS.get(verdict, '')}{text}{RESET}" if colour and verdict in COLOURS else text


def _labelled(pairs: list[tuple[str, str]], indent: str = "  ", limit: int = 300) -> list[str]:
    width = max((len(label) for label, _ in pairs), default=0)
    return [f"{indent}{label:<{width}}  {terminal(text, limit)}" for label, text in pairs]


def ranked_rows(assessments: list[Assessment], colour: bool = False) -> list[list[str]]:
    return [[str(a.rank), terminal(a.host, 60), view.rate_text(a.resets_sent_per_s),
             view.rate_text(a.baseline_per_s), _paint(view.verdict_text(a), a.verdict, colour),
             f"{a.score:.1f}", terminal(view.top_cause(a), 40), terminal(view.top_port(a), 40)]
            for a in view.checked(assessments)]


RANKED_HEADERS = ["rank", "host", "resets sent/s", "baseline/s", "verdict", "score", "top cause",
                  "top port (owner)"]


def render_table(assessments: list[Assessment], thresholds: Thresholds, meta: dict) -> str:
    colour = bool(meta.get("color"))
    lines = [view.headline(assessments, thresholds, meta)]
    if meta.get("partial"):
        lines.append("PARTIAL: the run was interrupted; hosts that did not finish are listed as not checked")
    fleet = view.fleet_view(assessments)
    lines += ["", "Fleet"] + _labelled(fleet.lines, limit=600)
    if meta.get("phase2_hosts"):
        lines += _labelled([("phase 2", "capture and owners on " + ", ".join(meta["phase2_hosts"]))])
    if meta.get("fleet_window"):
        lines += _labelled([("window", view.window_sentence(meta["fleet_window"]))])
    rows = ranked_rows(assessments, colour)
    if rows:
        lines += ["", tabulate(rows, headers=RANKED_HEADERS, disable_numparse=True)]
    detailed = [a for a in assessments if view.has_resets(a)]
    if detailed:
        lines += ["", "Details (hosts that sent resets, worst first)"]
    for a in detailed:
        lines.append(f"#{a.rank} {terminal(a.host, 60)} — "
                     + _paint(view.verdict_text(a), a.verdict, colour))
        lines += _labelled(view.host_detail(a))
    missed = view.not_checked(assessments)
    if missed:
        lines += ["", "Not checked:",
                  tabulate([[terminal(a.host, 60), terminal(a.result.status, 30),
                             terminal(a.result.reason, 300)] for a in missed],
                           headers=["host", "status", "reason"], disable_numparse=True)]
    return "\n".join(lines) + "\n"
