"""One self-contained HTML file: summary, an SVG chart, the ranked table, per-host details.

No script, no external URL (inline CSS, inline SVG), so it opens from a ticket attachment or
an air-gapped laptop and reads the same without JavaScript. A Content-Security-Policy meta tag
forbids scripts and remote loads as a second line of defence; the first is that every piece of
host text goes through `escape.html_text` and never into an attribute (ids are our own indexes).
"""

from __future__ import annotations

import time

from ..analysis import Assessment, Thresholds, Verdict
from . import view
from .chart import stacked_bars
from .escape import html_text as h

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


def _ranked(assessments: list[Assessment]) -> str:
    rows = []
    for a in view.checked(assessments):
        rows.append(f'<tr id="rank-{a.rank}"><td class="num rank">{a.rank}</td><td class="host">'
                    f'{h(a.host, 80)}</td><td class="num rate">{view.rate_text(a.resets_sent_per_s)}</td>'
                    f'<td class="num">{view.rate_text(a.baseline_per_s)}</td><td>{_verdict(a)}</td>'
                    f'<td class="num">{a.score:.1f}</td><td>{h(view.top_cause(a), 60)}</td>'
                    f'<td>{h(view.top_port(a), 60)}</td></tr>')
    return ('<table id="ranked"><thead><tr><th>rank</th><th>host</th><th>resets sent/s</th>'
            '<th>baseline/s</th><th>verdict</th><th>score</th><th>top cause</th>'
            '<th>top port (owner)</th></tr></thead><tbody>' + "".join(rows) + "</tbody></table>")


def _host_section(a: Assessment) -> str:
    items = []
    for label, text in view.host_detail(a):
        value = f'<span class="cmd">{h(text, 300)}</span>' if label in ("next", "capture") else h(text, 300)
        items.append(f'<li><span class="label">{h(label, 20)}</span> {value}</li>')
    return (f'<section class="host {h(a.verdict, 10)}" id="host-{a.rank}"><h3>{a.rank}. {h(a.host, 80)} '
            f'{_verdict(a)} {view.rate_text(a.resets_sent_per_s)} resets/s</h3>'
            f'<ul class="facts">{"".join(items)}</ul></section>')


def _not_checked(assessments: list[Assessment]) -> str:
    rows = "".join(f'<tr><td class="host">{h(a.host, 80)}</td><td>{h(a.result.status, 40)}</td>'
                   f'<td class="reason">{h(a.result.reason, 300)}</td></tr>'
                   for a in view.not_checked(assessments))
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
        f'<li><span class="label">{h(label, 20)}</span> {h(text, 600)}</li>' for label, text in fleet.lines))
    if meta.get("phase2_hosts"):
        parts.append('<li><span class="label">phase 2</span> capture and owners on '
                     + h(", ".join(meta["phase2_hosts"]), 600) + "</li>")
    if meta.get("fleet_window"):
        parts.append('<li><span class="label">window</span> '
                     + h(view.window_sentence(meta["fleet_window"]), 400) + "</li>")
    parts.append("</ul>")
    parts.append("<h2>Resets sent per second, by cause</h2>" + stacked_bars(assessments))
    if view.checked(assessments):
        parts.append("<h2>Ranked hosts</h2>" + _ranked(assessments))
    detailed = [a for a in assessments if view.has_resets(a)]
    if detailed:
        parts.append("<h2>Hosts that sent resets</h2>" + "".join(_host_section(a) for a in detailed))
    if view.not_checked(assessments):
        parts.append("<h2>Not checked</h2>" + _not_checked(assessments))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
