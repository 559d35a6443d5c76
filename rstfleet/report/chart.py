"""The HTML report's chart, drawn by Python as inline SVG: resets/s by host, stacked by cause.

One horizontal bar per host with resets (rank order, worst on top), one segment per cause
(rate × the cause's share, plus what no evidence attributed), an axis with round ticks and a
legend of the causes shown. No script, no external font or URL: it renders from a file, prints,
and reads the same without JavaScript. Host text only ever appears as escaped element content.
"""

from __future__ import annotations

import html
import math

from ..analysis import Assessment
from . import view
from .escape import fit, html_text

# Tableau 10, one colour per cause key; a key not listed here is drawn grey.
CAUSE_COLOURS = {
    "closed_port": "#4e79a7", "port_scan": "#e15759", "syn_reset_attack": "#b07aa1",
    "aborted_connection": "#f28e2b", "half_open": "#76b7b2", "time_wait_assassination": "#59a14f",
    "listen_queue_full": "#edc948", "buffer_overflow": "#ff9da7", "other": "#9c755f",
    view.UNATTRIBUTED: "#bab0ac",
}
FALLBACK_COLOUR = "#7f7f7f"
MAX_BARS = 30

WIDTH, LABEL_W, VALUE_W = 840, 190, 80
ROW_H, BAR_H, TOP, LEGEND_ROW = 28, 18, 30, 22


def nice_max(value: float) -> float:
    """The next round number at or above value, so that quarters are round too: 73 -> 80, 59.9 -> 60."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 1.2, 1.6, 2, 2.4, 3, 4, 5, 6, 8, 10):
        if value <= step * power + 1e-12:
            return step * power
    return 10 * power


def _num(value: float) -> str:
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def stacked_bars(assessments: list[Assessment]) -> str:
    """The SVG element, or a sentence when no host sent resets."""
    hosts = [a for a in assessments if view.has_resets(a)]
    if not hosts:
        return '<p class="empty">No host sent resets in the window.</p>'
    shown, hidden = hosts[:MAX_BARS], len(hosts) - MAX_BARS
    scale_max = nice_max(max(a.resets_sent_per_s or 0.0 for a in shown))
    plot_w = WIDTH - LABEL_W - VALUE_W
    keys: list[str] = []
    body = []
    for row, a in enumerate(shown):
        y = TOP + row * ROW_H
        body.append(f'<text class="host" x="{LABEL_W - 8}" y="{y + BAR_H - 4}" '
                    f'text-anchor="end">{a.rank}. {html.escape(fit(a.host, 20))}</text>')
        x = float(LABEL_W)
        for key, rate in view.cause_rates(a):
            if key not in keys:
                keys.append(key)
            w = plot_w * rate / scale_max
            colour = CAUSE_COLOURS.get(key, FALLBACK_COLOUR)
            body.append(f'<rect class="segment" x="{x:.1f}" y="{y}" width="{max(w, 0.5):.1f}" '
                        f'height="{BAR_H}" fill="{colour}"><title>{html_text(a.host, 60)}: '
                        f'{html_text(key, 40)} {rate:.2f}/s</title></rect>')
            x += w
        body.append(f'<text class="value" x="{x + 6:.1f}" y="{y + BAR_H - 4}">'
                    f'{view.rate_text(a.resets_sent_per_s, 1)}/s</text>')
    bottom = TOP + len(shown) * ROW_H
    axis = [f'<line class="axis" x1="{LABEL_W}" y1="{TOP - 6}" x2="{LABEL_W}" y2="{bottom}"/>']
    for i in range(5):
        tick = scale_max * i / 4
        tx = LABEL_W + plot_w * i / 4
        axis.append(f'<line class="grid" x1="{tx:.1f}" y1="{TOP - 6}" x2="{tx:.1f}" y2="{bottom}"/>')
        axis.append(f'<text class="tick" x="{tx:.1f}" y="{TOP - 12}" text-anchor="middle">{_num(tick)}</text>')
    axis.append(f'<text class="tick" x="{LABEL_W - 8}" y="{TOP - 12}" text-anchor="end">resets/s</text>')
    legend, lx, ly = [], float(LABEL_W), bottom + 22
    for key in keys:
        label = html_text(key, 40)
        item_w = 24 + 7.2 * len(key)
        if lx + item_w > WIDTH:
            lx, ly = float(LABEL_W), ly + LEGEND_ROW
        legend.append(f'<g><title>{html_text(view.cause_title(key), 120)}</title>'
                      f'<rect x="{lx:.1f}" y="{ly - 11}" width="14" height="14" '
                      f'fill="{CAUSE_COLOURS.get(key, FALLBACK_COLOUR)}"/>'
                      f'<text class="legend" x="{lx + 19:.1f}" y="{ly}">{label}</text></g>')
        lx += item_w + 14
    height = ly + 14
    more = (f'<text class="tick" x="{LABEL_W}" y="{height + 4}">and {hidden} more host(s) with '
            f'resets in the table below</text>' if hidden > 0 else "")
    height += 18 if hidden > 0 else 0
    return (f'<svg id="chart" role="img" style="max-width:100%;height:auto" width="{WIDTH}" '
            f'height="{height:.0f}" viewBox="0 0 {WIDTH} {height:.0f}" aria-labelledby="chart-title">'
            f'<title id="chart-title">Resets sent per second by host, stacked by cause</title>'
            + "".join(axis) + "".join(body) + '<g class="legend">' + "".join(legend) + "</g>"
            + more + "</svg>")


SPARK_W, SPARK_H = 160, 28


def sparkline_svg(history: list, line: float | None = None, width: int = SPARK_W,
                  height: int = SPARK_H) -> str:
    """OutRsts/s over time as a small inline SVG (a polyline, the warn line dashed), or '' without
    history. Only numbers reach the markup; the title is our own text."""
    if len(history) < 2:
        return ""
    t0, t1 = history[0][0], history[-1][0]
    top = max(max(value for _, value in history), line or 0.0) or 1.0
    span = (t1 - t0) or 1.0

    def xy(t: float, value: float) -> str:
        return f"{(t - t0) / span * (width - 2) + 1:.1f},{height - 1 - value / top * (height - 2):.1f}"

    points = " ".join(xy(t, value) for t, value in history)
    dashed = ""
    if line is not None and line <= top:
        y = height - 1 - line / top * (height - 2)
        dashed = (f'<line class="warn-line" x1="1" y1="{y:.1f}" x2="{width - 1}" y2="{y:.1f}" '
                  f'stroke="#bc4c00" stroke-dasharray="3,2" stroke-width="1"/>')
    peak = max(value for _, value in history)
    title = html.escape(f"resets sent/s over {span:.0f} s, peak {_num(peak)}/s"
                        + (f", warn line {_num(line)}/s" if line is not None else ""))
    return (f'<svg class="spark" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
            f'<title>{title}</title>{dashed}<polyline fill="none" stroke="#4e79a7" stroke-width="1.5" '
            f'points="{points}"/></svg>')
