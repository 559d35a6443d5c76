"""`rstfleet analyze FILE…`: the capture a person already has, in the same report as a sweep.

The guide's own path is a capture — ``tcpdump -i any 'tcp[tcpflags] & (tcp-rst) == (tcp-rst)'
-s 65535 -w output.pcap`` — or a file saved from Wireshark (pcap or pcapng). Each file is read
through evidence/captures.py (a regular file, bounded, no symbolic link), decoded by
evidence/pcap.py, and every address that sent resets becomes a host of the report
(evidence/capture_hosts.py): its rate is the resets it sent over the captures' span, its causes
come from the resets' own flags (evidence/causes.py, from_capture). There is no lifetime
baseline in a capture, hence no spike. Exit codes as `rstfleet report`: 4 over the --fail-on
threshold; 2 for a file that cannot be read (``FILE: problem``), before any report.

    $ rstfleet analyze output.pcap --local 198.18.0.2
"""

from __future__ import annotations

import ipaddress
import math
import sys

from .analysis import Assessment, Thresholds, exit_code, rank_checked, score_for, verdict_for
from .evidence.capture_hosts import (
    CaptureHost, CaptureRead, capture_hosts, capture_span, file_note, pairs,
)
from .evidence.capture_summary import local_set
from .evidence.captures import CaptureFileError, read_capture_file
from .evidence.pcap import PcapError, read_resets
from .report import emit
from .results import HostResult, Status
from .textsafe import printable

# Bounds of one analysed file (the probe's own capture bounds live in probe/host/limits.py).
MAX_FILE_BYTES = 256 * 1024 * 1024
MAX_RESETS = 500_000        # per file; beyond it the file's note says how many were read
SHRINK_HINT = "tcpdump -r FILE -w rst.pcap 'tcp[tcpflags] & (tcp-rst) != 0' keeps only the resets"


class AnalyzeError(ValueError):
    """Bad local input (a file, an address): the CLI prints it and exits 2."""


def local_addresses(texts: list[str]) -> list[str]:
    """--local values as canonical addresses; anything else is a usage error."""
    for text in texts:
        try:
            ipaddress.ip_address(text.strip().split("%", 1)[0])
        except ValueError:
            raise AnalyzeError(f"--local: {printable(text, 80)!r} is not an IP address") from None
    return sorted(local_set(texts))


def read_captures(paths: list[str]) -> list[CaptureRead]:
    """Every file read and decoded, or AnalyzeError('FILE: problem') for the first that is not."""
    captures = []
    for path in paths:
        try:
            data = read_capture_file(path, MAX_FILE_BYTES)
            captures.append(CaptureRead(path, read_resets(data, MAX_RESETS)))
        except CaptureFileError as exc:
            hint = f" ({SHRINK_HINT})" if "over" in str(exc) else ""
            raise AnalyzeError(f"{printable(path, 300)}: {exc}{hint}") from None
        except PcapError as exc:
            raise AnalyzeError(f"{printable(path, 300)}: not a capture rstfleet can read: {exc}") from None
    return captures


def assess_capture_host(host: CaptureHost, span_s: float, thresholds: Thresholds) -> Assessment:
    """The host's verdict and score, as a sweep gives them (no baseline: never a spike)."""
    rate = host.sent / span_s
    verdict, _ = verdict_for(rate, math.inf, thresholds)
    score, explained = score_for(rate, False, host.evidence)
    result = HostResult(host.name, host.addresses[0] if host.addresses else host.name, Status.OK)
    return Assessment(result, None, rate, None, verdict, False, span_s, host.evidence, score, explained)


def analyze(captures: list[CaptureRead], local: list[str],
            thresholds: Thresholds) -> tuple[list[Assessment], dict]:
    """(ranked assessments, the report's meta: window_s = the captures' span, and a "captures"
    section for the JSON: each file's reading counts, the local addresses, resets per direction)."""
    span = capture_span(captures)
    hosts = capture_hosts(captures, local)
    assessments = rank_checked([assess_capture_host(h, span, thresholds) for h in hosts])
    files = [{"file": c.name, "records": c.packets.records, "resets": len(c.packets),
              "skipped": c.packets.skipped, "cut": c.packets.cut,
              "undecodable": dict(c.packets.undecodable), "partial_tail": c.packets.partial_tail,
              "truncated": c.packets.truncated, "first_ts": c.packets.first_ts,
              "last_ts": c.packets.last_ts} for c in captures]
    listed, total = pairs(captures)
    meta = {"window_s": round(span, 6),
            "captures": {"files": files, "span_s": round(span, 6), "local": local,
                         "pairs": listed, "pairs_total": total}}
    return assessments, meta


def run_analyze(options: dict) -> int:
    """`rstfleet analyze` from its parsed options (cli.py's ``dict(vars(args))``): read, analyse,
    report; the exit code as `rstfleet report` gives it."""
    from .plan import Outputs
    local = local_addresses(options["local"] or [])
    captures = read_captures(options["files"])
    thresholds = Thresholds(options["warn"], options["crit"], options["spike_factor"], options["spike_floor"])
    assessments, meta = analyze(captures, local, thresholds)
    code = exit_code(assessments, options["fail_on"])
    if not options["quiet"]:
        for capture in captures:
            if not capture.packets or capture.packets.notes():
                print(f"rstfleet: {printable(file_note(capture), 600)}", file=sys.stderr)
    emit(Outputs(options["format"], options["output"], options["quiet"]), assessments, thresholds,
         dict(meta, exit_code=code))
    return code
