"""A Markdown report to paste into a ticket: summary, ranked table, one section per host.

GitHub/GitLab-flavoured (pipe tables). Every piece of host text goes through `escape.markdown`,
so a host name cannot open a link, an image, emphasis, raw HTML or an extra table column;
commands are code spans only when no backtick could close them early.
"""

from __future__ import annotations

import time

from ..analysis import Assessment, Thresholds, Verdict
from . import both_ends, view
from .escape import markdown as md
from .escape import markdown_code
from .window_text import window_lines

VERDICT_MARK = {Verdict.CRIT: "🔴 crit", Verdict.WARN: "🟠 warn", Verdict.OK: "🟢 ok", Verdict.UNKNOWN: "⚪ unknown"}


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(headers: list[str], align: list[str], rows: list[list[str]]) -> list[str]:
    return [_row(headers), "|" + "|".join(align) + "|"] + [_row(r) for r in rows]


def _verdict(a: Assessment) -> str:
    return VERDICT_MARK.get(a.verdict, md(a.verdict)) + (" (spike)" if a.spike else "")


def _fact(label: str, text: str, limit: int = 300) -> str:
    """A labelled line; commands (next, dig) as code spans."""
    value = markdown_code(text, limit) if label == "dig" else md(text, limit)
    return f"- **{label}:** {value}"


def _host_section(a: Assessment, meta: dict) -> list[str]:
    lines = [f"### {a.rank}. {md(a.host, 80)} — {_verdict(a)}, {view.rate_text(a.resets_sent_per_s)} resets/s",
             ""]
    for label, text in view.host_lines(a, meta):
        if label == "next":
            continue
        lines.append(_fact(label, text))
    commands = view.next_commands(a)
    if commands:
        lines += ["", "Next steps:", ""] + [f"- {markdown_code(c, 300)}" for c in commands]
    return lines + [""]


def render_markdown(assessments: list[Assessment], thresholds: Thresholds, meta: dict) -> str:
    checked, missed = view.checked(assessments), view.not_checked(assessments)
    fleet = view.fleet_view(assessments)
    total = fleet.summary.resets_sent_per_s_total
    lines = [f"# TCP resets: {total:.1f}/s sent, {len(checked)} of {len(assessments)} hosts checked", "",
             md(view.headline(assessments, thresholds, meta), 400) + "  ",
             f"Exit code {md(meta.get('exit_code'))} · generated "
             f"{time.strftime('%Y-%m-%d %H:%M:%SZ', time.gmtime())} by rstfleet", ""]
    if meta.get("partial"):
        lines += ["> **Partial results:** the run was interrupted; unfinished hosts are listed as "
                  "not checked.", ""]
    lines += ["## Fleet summary", ""]
    lines += [_fact(label, text, 600) for label, text in fleet.lines + view.phase2_fleet_lines(meta)
              + window_lines(meta)]
    ends = both_ends.both_ends_lines(fleet.summary)
    if ends:
        lines += ["", "## Both ends of the resets", ""] + [_fact(label, text, 600) for label, text in ends]
    if checked:
        expected, netdata = view.any_expected(assessments), view.shows_netdata(assessments)
        lines += ["", "## Ranked hosts", ""]
        lines += _table(["rank", "host", "resets sent/s"] + ["expected/s"] * expected
                        + ["baseline/s", "verdict", "score", "top cause", "top port (owner)", "rule"]
                        + (["Netdata", "lifetime", "OutRsts history"] if netdata else []),
                        ["---:", "---", "---:"] + ["---:"] * expected + ["---:", "---", "---:", "---", "---", "---"]
                        + (["---", "---", "---"] if netdata else []),
                        [[str(a.rank), md(a.host, 80), view.rate_text(a.resets_sent_per_s)]
                         + [view.expected_rate_text(a)] * expected
                         + [view.rate_text(a.baseline_per_s), _verdict(a), f"{a.score:.1f}",
                            md(view.top_cause(a), 60), md(view.top_port(a), 60), md(view.rule_text(a))]
                         + ([md(view.netdata_text(a)), md(view.lifetime_text(a)),
                             view.sparkline(a.episode.history if a.episode else []) or "-"] if netdata else [])
                         for a in checked])
    detailed = [a for a in checked if view.has_resets(a)]
    if detailed:
        lines += ["", "## Hosts that sent resets", ""]
        for a in detailed:
            lines += _host_section(a, meta)
    receiving = both_ends.receiving_hosts(assessments)
    if receiving:
        names = both_ends.address_names(assessments)
        lines += ([] if lines[-1] == "" else [""]) + ["## Resets received", ""]
        for a in receiving:
            lines += [f"### {md(a.host, 80)}", ""]
            lines += [_fact(label, text) for label, text in both_ends.received_lines(a, names)] + [""]
    if missed:
        lines += ([] if lines[-1] == "" else [""]) + ["## Not checked", ""]
        lines += _table(["host", "status", "reason"], ["---", "---", "---"],
                        [[md(a.host, 80), md(a.result.status, 40), md(a.result.reason, 300)]
                         for a in missed])
    return "\n".join(lines).rstrip("\n") + "\n"
