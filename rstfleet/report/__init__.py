"""Renderers: one module a format, all fed the same ranked assessments.

    render("markdown", assessments, thresholds, {"window_s": 10.0, "exit_code": 4}) -> str

meta: window_s, wall_s, exit_code, and optionally phase2_hosts (triage), fleet_window (the span
of the measured windows, sweep/window.py), partial (the run was
interrupted) and color (the table may use ANSI colour; the CLI sets it for a TTY only).
Host text is hostile: each module escapes it for its own sink with `escape.py`.
"""

from __future__ import annotations

import os
import sys
from importlib import import_module

from ..analysis import Assessment, Thresholds

# format -> (module, function); modules load on first use, so `--format table` imports no XML.
RENDERERS = {
    "table": ("table", "render_table"),
    "json": ("json_report", "render_json"),
    "markdown": ("markdown", "render_markdown"),
    "html": ("html_report", "render_html"),
    "junit": ("junit", "render_junit"),
    "prometheus": ("prometheus", "render_prometheus"),
}
FORMATS = tuple(RENDERERS)


def render(fmt: str, assessments: list[Assessment], thresholds: Thresholds, meta: dict) -> str:
    if fmt not in RENDERERS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    module, function = RENDERERS[fmt]
    return getattr(import_module(f"{__name__}.{module}"), function)(assessments, thresholds, meta)


def emit(outputs, assessments: list[Assessment], thresholds: Thresholds, meta: dict) -> None:
    """The --format report to outputs.path (if any); stdout gets it too, or the table when a file
    took the format, unless quiet. ``outputs`` is a Plan's Outputs."""
    if outputs.path:
        with open(outputs.path, "w", encoding="utf-8") as handle:
            handle.write(render(outputs.format, assessments, thresholds, meta))
    if not outputs.quiet:
        fmt = "table" if outputs.path else outputs.format
        color = fmt == "table" and sys.stdout.isatty() and "NO_COLOR" not in os.environ
        sys.stdout.write(render(fmt, assessments, thresholds, dict(meta, color=color)))
