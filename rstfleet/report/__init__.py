"""Renderers: one module a format, all fed the same ranked assessments."""

from __future__ import annotations

from ..analysis import Assessment, Thresholds

FORMATS = ("table", "json")


def render(fmt: str, assessments: list[Assessment], thresholds: Thresholds, meta: dict) -> str:
    if fmt == "table":
        from .table import render_table
        return render_table(assessments, thresholds, meta)
    if fmt == "json":
        from .json_report import render_json
        return render_json(assessments, thresholds, meta)
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
