"""One self-contained HTML file: summary, an SVG chart, the ranked table, per-host details
(past 50 hosts: the worst 20 of each, the rest as counts; summary.py).

No script, no external URL (inline CSS, inline SVG), so it opens from a ticket attachment or
an air-gapped laptop and reads the same without JavaScript. A Content-Security-Policy meta tag
forbids scripts and remote loads as a second line of defence; the first is that every piece of
host text goes through `escape.html_text` and never into an attribute (ids are our own indexes).
"""

from __future__ import annotations

import time

from ..analysis import Assessment, Thresholds, Verdict
from . import both_ends, summary, view
from .chart import sparkline_svg, stacked_bars
from .escape import html_text as h
from .window_text import window_lines

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
  color:#1f2328;background:#fff;margin:24px auto;max-width:1100px;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;
  padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
.sub{color:#59636e;margin:0 0 16px}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:12px 0}
.card{border:1px solid #d0d7de;border-radius:6px;padding:8px 14px;min-width:110px}
.card b{display:block;font-size:20px}.card span{color:#59636e;font-size:12px}
table{border-collapse:collapse;margin:6px 0 12px;width:100%}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.v{display:inline-block;border-radius:10px;padding:0 8px;font-weight:600;font-size:12px}
.v-crit{background:#ffebe9;color:#a40e26}.v-warn{background:#fff1e5;color:#9a4d00}
.v-ok{background:#dafbe1;color:#116329}.v-unknown{background:#eaeef2;color:#59636e}
ul.facts{margin:4px 0;padding-left:20px}ul.facts li{margin:2px 0}
.label{color:#59636e;display:inline-block;min-width:110px}
code,.cmd{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12.5px;background:#f6f8fa;
  border-radius:4px;padding:1px 4px;word-break:break-all}
.partial{background:#fff8c5;border:1px solid #d4a72c;padding:8px 12px;border-radius:6px}
svg text{font:12px system-ui,"DejaVu Sans",sans-serif;fill:#1f2328}svg .tick{fill:#59636e;font-size:11px}
svg .grid{stroke:#eaeef2}svg .axis{stroke:#59636e}svg .value{font-weight:600}
section.host{border-left:3px solid #d0d7de;padding-left:12px;margin:12px 0}
section.host.crit{border-color:#cf222e}section.host.warn{border-color:#bc4c00}
@media print{body{margin:0;max-width:none}}
"""


def _verdict(a: Assessment) -> str:
    spike = " spike" if a.spike else ""
    return f'<span class="v v-{h(a.verdict, 10)}">{h(a.verdict, 10)}{spike}</span>'


def _cards(assessments: list[Assessment], total: float, meta: dict) -> str:
    counts = [(str(len(assessments)), "hosts"), (str(len(view.checked(assessments))), "checked"),
              (str(len(view.not_checked(assessments))), "not checked"),
              (f"{total:.1f}", "resets/s sent in total"),
              (str(sum(a.verdict in (Verdict.WARN, Verdict.CRIT) for a in assessments)), "warn or crit"),
              (h(meta.get("exit_code")), "exit code")]
    return '<div class="cards">' + "".join(f'<div class="card"><b>{value}</b><span>{label}</span></div>'
                                           for value, label in counts) + "</div>"


def _spark(a: Assessment) -> str:
    return sparkline_svg(a.episode.history, a.episode.line) if a.episode else ""


def _netdata_cells(a: Assessment) -> str:
    return (f'<td class="netdata">{h(view.netdata_text(a), 40)}</td><td>{h(view.lifetime_text(a), 20)}</td>'
            f'<td class="history">{_spark(a) or "-"}</td>')


def _ranked(assessments: list[Assessment]) -> str:
    netdata = view.shows_netdata(assessments)
    rows = []
    expected = view.any_expected(assessments)
    for a in view.checked(assessments):
        excused = f'<td class="num expected">{view.expected_rate_text(a)}</td>' if expected else ""
        rows.append(f'<tr id="rank-{a.rank}"><td class="num rank">{a.rank}</td><td class="host">'
                    f'{h(a.host, 80)}</td><td class="num rate">{view.rate_text(a.resets_sent_per_s)}</td>'
                    f'{excused}<td class="num">{view.rate_text(a.baseline_per_s)}</td><td>{_verdict(a)}</td>'
                    f'<td class="num">{a.score:.1f}</td><td>{h(view.top_cause(a), 60)}</td>'
                    f'<td>{h(view.top_port(a), 60)}</td><td class="rule">{h(view.rule_text(a), 40)}</td>'
                    + (_netdata_cells(a) if netdata else "") + "</tr>")
    extra = "<th>Netdata</th><th>lifetime</th><th>OutRsts history</th>" if netdata else ""
    return ('<table id="ranked"><thead><tr><th>rank</th><th>host</th><th>resets sent/s</th>'
            + ("<th>expected/s</th>" if expected else "") +
            '<th>baseline/s</th><th>verdict</th><th>score</th><th>top cause</th>'
            f'<th>top port (owner)</th><th>rule</th>{extra}</tr></thead><tbody>' + "".join(rows)
            + "</tbody></table>")


def _fact(label: str, text: str, limit: int = 300) -> str:
    """A labelled list item; commands and paths in monospace."""
    value = f'<span class="cmd">{h(text, limit)}</span>' if label in ("next", "capture", "dig") else h(text, limit)
    return f'<li><span class="label">{h(label, 20)}</span> {value}</li>'


def _host_section(a: Assessment, meta: dict) -> str:
    items = [_fact(label, text) for label, text in view.host_lines(a, meta)]
    return (f'<section class="host {h(a.verdict, 10)}" id="host-{a.rank}"><h3>{a.rank}. {h(a.host, 80)} '
            f'{_verdict(a)} {view.rate_text(a.resets_sent_per_s)} resets/s</h3>'
            f'<ul class="facts">{"".join(items)}</ul>{_spark(a)}</section>')


def _not_checked(assessments: list[Assessment]) -> str:
    rows = "".join(f'<tr><td class="host">{h(a.host, 80)}</td><td>{h(a.result.status, 40)}</td>'
                   f'<td class="reason">{h(a.result.reason, 300)}</td></tr>'
                   for a in assessments)
    return ('<table id="not-checked"><thead><tr><th>host</th><th>status</th><th>reason</th></tr>'
            f"</thead><tbody>{rows}</tbody></table>")


def render_html(assessments: list[Assessment], thresholds: Thresholds, meta: dict) -> str:
    fleet = view.fleet_view(assessments)
    total = fleet.summary.resets_sent_per_s_total
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>rstfleet: {total:.1f} TCP resets/s sent</title>",
             f"<style>{STYLE}</style></head><body>",
             "<h1>TCP resets sent across the fleet</h1>",
             f'<p class="sub">{h(view.headline(assessments, thresholds, meta), 400)} · generated '
             f'{time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())}</p>']
    if meta.get("partial"):
        parts.append('<p class="partial"><b>Partial results:</b> the run was interrupted; hosts that '
                     'did not finish are listed as not checked.</p>')
    parts.append(_cards(assessments, total, meta))
    parts.append('<h2>Fleet summary</h2><ul class="facts" id="fleet">' + "".join(
        _fact(label, text, 600) for label, text in fleet.lines + view.phase2_fleet_lines(meta)
        + window_lines(meta)) + "</ul>")
    ends = both_ends.both_ends_lines(fleet.summary)
    if ends:
        parts.append('<h2>Both ends of the resets</h2><ul class="facts" id="both-ends">' + "".join(
            f'<li><span class="label">{h(label, 30)}</span> {h(text, 600)}</li>' for label, text in ends) + "</ul>")
    parts.append("<h2>Resets sent per second, by cause</h2>" + stacked_bars(assessments))
    listed = summary.shown(assessments)
    if listed.ranked:
        parts.append("<h2>Ranked hosts</h2>" + _ranked(listed.ranked))
    if listed.detailed:
        parts.append("<h2>Hosts that sent resets</h2>" + "".join(_host_section(a, meta) for a in listed.detailed))
    receiving = both_ends.receiving_hosts(assessments)
    if receiving:
        names = both_ends.address_names(assessments)
        parts.append('<h2>Resets received</h2>' + "".join(
            f'<section class="host" id="received-{index}"><h3>{h(a.host, 80)}</h3><ul class="facts">'
            + "".join(_fact(label, text) for label, text in both_ends.received_lines(a, names)) + "</ul></section>"
            for index, a in enumerate(receiving[:summary.REPORT_TOP if len(assessments) > summary.REPORT_WHOLE_UP_TO else None])))
    if listed.missed:
        parts.append(f"<h2>{h(summary.not_checked_line(listed), 300)}</h2>" + _not_checked(listed.missed))
    hidden = summary.hidden_lines(listed)
    if hidden:
        parts.append('<h2>Not listed</h2><ul class="facts" id="not-listed">'
                     + "".join(f"<li>{h(line, 400)}</li>" for line in hidden) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
