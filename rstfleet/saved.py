"""Saved results back into HostResults: re-render, merge shards and Ansible runs, never count twice.

Inputs, in any mix:
    * JSON reports (schema ``rstfleet.report/1``) written by ``rstfleet sweep --format json``;
    * host-result envelopes (schema ``rstfleet.hostresult/1``), one host per file, written by the
      Ansible role ``ansible/roles/rstfleet_probe`` (see docs/ansible.md);
    * directories: every ``*.json`` directly inside, in name order (hidden files skipped).

Rules:
    * a host that appears in two inputs (or twice in one) is an error naming both files, never a
      silent double count;
    * a schema this rstfleet does not read (``rstfleet.report/2``, ``rstfleet.hostresult/7``) is an
      error naming the file and both versions; a file that is no rstfleet result at all, too;
    * a host whose probe document does not validate (``rstfleet.results.parse_probe_output`` on the
      re-encoded JSON: unsupported probe schema, non-finite counters, too deep...) becomes
      ``probe_error`` with the reason, as it would in a live sweep;
    * the window is the most common requested window over the hosts; inputs that disagree, or that
      were measured far apart in time, are not an error but produce warnings (``load_merged``).
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .expected import Expectation, ExpectedError, rule_from_mapping, rules_for_hosts
from .inventory.model import Host
from .results import Status, HostResult, ProbeOutputError, STATUSES, parse_probe_output

REPORT_FAMILY, REPORT_VERSION = "rstfleet.report", 1
ENVELOPE_FAMILY, ENVELOPE_VERSION = "rstfleet.hostresult", 1
SUPPORTED = {REPORT_FAMILY: REPORT_VERSION, ENVELOPE_FAMILY: ENVELOPE_VERSION}
# Probe start times further apart than this suggest a directory mixing several runs.
SPREAD_WARN_S = 900.0


@dataclass
class Merged:
    results: list[HostResult]
    window_s: float | None
    warnings: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # host -> file it came from
    expected: dict[str, tuple] = field(default_factory=dict)  # host -> the rules its run applied


def expand_paths(paths: list[str]) -> list[str]:
    """Files as given; directories replaced by the ``*.json`` files directly inside, sorted."""
    files: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            inside = sorted(p for p in Path(path).glob("*.json") if p.is_file() and not p.name.startswith("."))
            if not inside:
                raise ValueError(f"{path}: directory holds no *.json result files")
            files.extend(str(p) for p in inside)
        else:
            files.append(path)
    return files


def _schema(path: str, document) -> tuple[str, int]:
    """(family, version) of a supported document; ValueError naming the file otherwise."""
    schema = document.get("schema") if isinstance(document, dict) else None
    if not isinstance(schema, str) or "/" not in schema:
        raise ValueError(f"{path}: not an rstfleet result (no {REPORT_FAMILY}/{REPORT_VERSION} or "
                         f"{ENVELOPE_FAMILY}/{ENVELOPE_VERSION} schema)")
    family, _, version = schema.rpartition("/")
    if family not in SUPPORTED:
        raise ValueError(f"{path}: schema {schema!r:.60} is not an rstfleet result "
                         f"(expected {REPORT_FAMILY}/{REPORT_VERSION} or {ENVELOPE_FAMILY}/{ENVELOPE_VERSION})")
    if version != str(SUPPORTED[family]):
        raise ValueError(f"{path}: schema version {schema!r:.60} is incompatible: this rstfleet reads "
                         f"{family}/{SUPPORTED[family]}; re-render it with the rstfleet version that wrote it")
    return family, SUPPORTED[family]


def _finite(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _checked(status: str, reason: str, probe, trusted_paths: bool = False) -> tuple[str, str, dict | None]:
    """Validate an ok host's probe exactly as a live sweep does; a bad one becomes probe_error.

    trusted_paths: keep capture paths (reports rstfleet wrote); results gathered from hosts
    (the Ansible role's files) never name a controller file."""
    if status not in STATUSES:
        detail = f": {reason}" if reason else ""
        return Status.PROBE_ERROR, f"unknown status {status!r:.40} in the saved result{detail}", None
    status = Status(status)
    if status != Status.OK:
        return status, reason, probe if isinstance(probe, dict) else None
    if not isinstance(probe, dict):
        return Status.PROBE_ERROR, "saved result is ok but holds no probe document", None
    try:
        encoded = json.dumps(probe, allow_nan=True).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        return Status.PROBE_ERROR, f"probe document cannot be re-encoded: {exc}", None
    try:
        return Status.OK, reason, parse_probe_output(encoded, trusted_paths)
    except ProbeOutputError as exc:
        return Status.PROBE_ERROR, str(exc), None


def _text(value, default: str = "") -> str:
    return value if isinstance(value, str) else default


def _groups(value) -> tuple[str, ...]:
    return tuple(g for g in value if isinstance(g, str)) if isinstance(value, list) else ()


def _host_name(path: str, entry) -> str:
    name = entry.get("host") if isinstance(entry, dict) else None
    if not isinstance(name, str) or not name:
        raise ValueError(f"{path}: a host entry has no host name")
    return name


def _window(value) -> float | None:
    """A window in seconds, or None when absent or not positive (re-rendered reports may say 0)."""
    window = _finite(value)
    return window if window is not None and window > 0 else None


def _from_report(path: str, document: dict) -> list[tuple]:
    hosts = document.get("hosts", [])
    if not isinstance(hosts, list):
        raise ValueError(f"{path}: 'hosts' is not a list")
    window = _window(document.get("window_s"))
    out = []
    for entry in hosts:
        name = _host_name(path, entry)
        status, reason, probe = _checked(_text(entry.get("status"), Status.PROBE_ERROR), _text(entry.get("reason")),
                                         entry.get("probe"), trusted_paths=True)
        result = HostResult(name, _text(entry.get("address"), name), status, reason, probe,
                            _finite(entry.get("elapsed_s")) or 0.0, _groups(entry.get("groups")))
        out.append((result, window, _started(probe), _saved_rules(path, name, entry.get("expected_rules"))))
    return out


def _saved_rules(path: str, host: str, saved) -> tuple[Expectation, ...]:
    """The expected-reset rules a saved report applied to a host, checked as when first read,
    so re-rendering it does not silently count what its run excused."""
    if saved is None:
        return ()
    at = f"{path}: host {host!r}: expected_rules"
    if not isinstance(saved, list):
        raise ValueError(f"{at} is not a list")
    rules = []
    for i, rule in enumerate(saved):
        rule = dict(rule) if isinstance(rule, dict) else rule
        source = rule.pop("source", None) if isinstance(rule, dict) else None
        try:
            rules.append(rule_from_mapping(rule, lambda key: f"{at}[{i}]" + (f".{key}" if key else ""),
                                           source if isinstance(source, str) else path))
        except ExpectedError as exc:
            raise ValueError(str(exc)) from None
    return tuple(rules)


def saved_expected(merged: "Merged", declared: tuple[Expectation, ...]) -> dict[str, tuple]:
    """Each saved host's rules: those its run applied, then declared ones (``report --expected``)
    whose host pattern selects it by name or saved group."""
    hosts = [Host(r.host, r.address, groups=r.groups) for r in merged.results]
    added, _ = rules_for_hosts(hosts, declared)
    return {h.name: merged.expected.get(h.name, ()) + added.get(h.name, ()) for h in hosts
            if merged.expected.get(h.name) or added.get(h.name)}


def _from_envelope(path: str, envelope: dict) -> list[tuple]:
    name = _host_name(path, envelope)
    status, reason, probe = _checked(_text(envelope.get("status"), Status.PROBE_ERROR), _text(envelope.get("reason")),
                                     envelope.get("probe"))
    window = None
    if probe is not None:
        window = _window((probe.get("window") or {}).get("requested_s"))
    if window is None:
        window = _window(envelope.get("window_s"))
    result = HostResult(name, _text(envelope.get("address"), name) or name, status, reason, probe,
                        _finite(envelope.get("elapsed_s")) or 0.0, _groups(envelope.get("groups")))
    return [(result, window, _started(probe), ())]


def _started(probe) -> float | None:
    if isinstance(probe, dict) and isinstance(probe.get("window"), dict):
        return _finite(probe["window"].get("started_at"))
    return None


def _read(path: str):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except RecursionError:
        raise ValueError(f"{path}: JSON nests too deeply") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None


def _fmt(window: float) -> str:
    return f"{window:g} s"


def load_merged(paths: list[str]) -> Merged:
    """Every host of every input, once; the common window; warnings about inconsistent inputs."""
    results: dict[str, HostResult] = {}
    sources: dict[str, str] = {}
    windows: Counter = Counter()
    window_files: dict[float, str] = {}
    starts: list[tuple[float, str]] = []
    expected: dict[str, tuple] = {}
    for path in expand_paths(paths):
        document = _read(path)
        family, _ = _schema(path, document)
        entries = _from_report(path, document) if family == REPORT_FAMILY else _from_envelope(path, document)
        for result, window, started, rules in entries:
            if result.host in results:
                where = "twice in" if sources[result.host] == path else "in both"
                other = "" if sources[result.host] == path else f" and {path}"
                raise ValueError(f"host {result.host!r} appears {where} {sources[result.host]}{other}; "
                                 f"refusing to count it twice (merge disjoint shards or runs only)")
            results[result.host] = result
            sources[result.host] = path
            if rules:
                expected[result.host] = rules
            if window is not None:
                key = round(window, 3)
                windows[key] += 1
                window_files.setdefault(key, path)
            if started is not None:
                starts.append((started, path))
    warnings: list[str] = []
    window = None
    if windows:
        window = windows.most_common(1)[0][0]
    if len(windows) > 1:
        others = ", ".join(f"{_fmt(w)} ({n} host(s), e.g. {window_files[w]})"
                           for w, n in windows.most_common() if w != window)
        warnings.append(f"inputs use different windows: {_fmt(window)} for {windows[window]} host(s), "
                        f"also {others}; the report uses {_fmt(window)} and each host's own rate")
    if starts:
        (first, first_path), (last, last_path) = min(starts), max(starts)
        if last - first > SPREAD_WARN_S:
            warnings.append(f"inputs were measured {(last - first) / 60:.0f} min apart ({first_path} .. "
                            f"{last_path}): they may mix several runs")
    return Merged(list(results.values()), window, warnings, sources, expected)


def load_results(paths: list[str]) -> tuple[list[HostResult], float | None]:
    """Host results from saved reports, envelopes and directories; a host in two inputs is an error."""
    merged = load_merged(paths)
    return merged.results, merged.window_s


def merge_warnings(paths: list[str]) -> list[str]:
    """Only the warnings of ``load_merged(paths)`` (for callers that already hold the results)."""
    return load_merged(paths).warnings
