"""Turn a probe document's evidence (tracepoint flows, capture, owners) into HostEvidence.

Pure: the capture's bytes come on the HostResult (evidence/captures.py reads and writes files).
"""

from __future__ import annotations

from collections import Counter

from .capture_summary import bare_rst_share, summarize
from .causes import WILDCARD_PEERS, HostEvidence, PortInfo, combine, from_counters
from .next_steps import cause_suggestion
from ..results import HostResult
from .pcap import PcapError, read_resets


def host_evidence(result: HostResult) -> HostEvidence | None:
    """Everything known about why this host sent its resets, from its (validated) probe document."""
    document = result.document
    if document is None:
        return None
    used, notes = ["counters"], []
    out_rsts = document.out_rsts or 0
    trace, capture = document.trace, document.capture
    ports: Counter = Counter()
    peers: Counter = Counter()
    scan_suspects: list[dict] = []
    bare_share: dict = {}
    pcap = result.pcap
    notes.extend(document.notes)          # the controller's: phase 2 failed or was interrupted
    if result.capture_note:
        notes.append(result.capture_note)
    if trace and not trace.get("available"):
        notes.append(f"no per-reset attribution: {trace.get('reason')}")
    if capture and capture.get("available") is False:
        notes.append(f"no capture: {capture.get('reason')}")
    if pcap is not None:
        try:
            packets = read_resets(pcap)
            notes.extend(f"capture: {note}" for note in packets.notes())
            local = set(document.addresses)
            summary = summarize(packets, local)
            used.append("capture")
            ports.update(dict(summary.top_local_ports))
            peers.update(dict(summary.top_peers))
            scan_suspects = summary.scan_suspects
            bare_share = bare_rst_share(packets, local)
        except PcapError as exc:
            notes.append(f"capture unreadable: {exc}")
    if trace.get("available"):
        used.insert(0, "tracepoint")
        causes = combine(trace, out_rsts, document.tcpext_delta, document.sysctls, bare_share)
        tier = "tracepoint"
        ports, peers = Counter(), Counter()
        for port, peer, _, count in trace.get("flows", []):
            ports[port] += count
            if peer not in WILDCARD_PEERS:
                peers[peer] += count
    else:
        causes = from_counters(out_rsts, document.tcpext_delta, document.sysctls)
        tier = "counters" if out_rsts else "none"
    owners = document.owners.get("ports") or {}
    if owners:
        used.append(document.owners.get("method", "owners"))
    top_ports = []
    for port, count in ports.most_common(10):
        info = owners.get(str(port)) or {}
        top_ports.append(PortInfo(port, count, info.get("listening"), info.get("owners", [])))
    top_peers = peers.most_common(10)
    for cause in causes:
        cause.next_step = cause_suggestion(result.host, cause, top_ports, top_peers).line
    return HostEvidence(tier, used, causes, top_ports, top_peers, scan_suspects, capture.get("path"), notes)
