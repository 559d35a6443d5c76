"""Saved results back into HostResults: re-render, merge shards, never count a host twice."""

from __future__ import annotations

import json

from .results import HostResult


def load_results(paths: list[str]) -> tuple[list[HostResult], float | None]:
    """Host results from saved JSON reports; a host in two inputs is an error, not a double count."""
    results: dict[str, HostResult] = {}
    window = None
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
        if not isinstance(document, dict) or document.get("schema") != "rstfleet.report/1":
            raise ValueError(f"{path}: not an rstfleet.report/1 JSON report")
        window = window or document.get("window_s")
        for entry in document.get("hosts", []):
            name = entry["host"]
            if name in results:
                raise ValueError(f"{path}: host {name!r} also appears in an earlier input; "
                                 f"refusing to count it twice")
            results[name] = HostResult(name, entry.get("address", name), entry["status"],
                                       entry.get("reason", ""), entry.get("probe"),
                                       entry.get("elapsed_s", 0.0), tuple(entry.get("groups", ())))
    return list(results.values()), window
