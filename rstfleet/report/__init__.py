"""Renderers: one module a format, all fed the same ranked assessments.

    render("markdown", assessments, thresholds, {"window_s": 10.0, "exit_code": 4}) -> str

meta: window_s, wall_s, exit_code, and optionally phase2_hosts (triage), partial (the run was
interrupted) and color (the table may use ANSI colour; the CLI sets it for a TTY only).
Host text is hostile: each module escapes it for its own sink with `escape.py`.
"""

from __future__ import annotations

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
