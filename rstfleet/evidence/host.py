"""Turn a probe document's evidence (tracepoint flows, capture, owners) into HostEvidence."""

from __future__ import annotations

from collections import Counter

from .capture_summary import bare_rst_share, summarize
from .causes import WILDCARD_PEERS, HostEvidence, PortInfo, combine, from_counters
from ..results import HostResult
from .captures import read_stored_pcap
from .pcap import PcapError, read_resets


def host_evidence(result: HostResult) -> HostEvidence | None:
    """Everything known about why this host sent its resets, from its (validated) probe document."""
    probe = result.probe
    if not probe:
        return None
    used, notes = ["counters"], []
    out_rsts = probe["tcp"]["delta"].get("OutRsts") or 0
    trace = probe.get("trace") or {}
    capture = probe.get("capture") or {}
    ports: Counter = Counter()
    peers: Counter = Counter()
    scan_suspects: list[dict] = []
    bare_share: dict = {}
    pcap = read_stored_pcap(capture) if capture else None
    if trace and not trace.get("available"):
        notes.append(f"no per-reset attribution: {trace.get('reason')}")
    if capture and capture.get("available") is False:
        notes.append(f"no capture: {capture.get('reason')}")
    if pcap is not None:
        try:
            packets = read_resets(pcap)
            local = set(probe.get("facts", {}).get("addresses") or [])
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
        causes = combine(trace, out_rsts, probe.get("tcpext_delta") or {},
                         probe.get("sysctls") or {}, bare_share)
        tier = "tracepoint"
        ports, peers = Counter(), Counter()
        for port, peer, _, count in trace.get("flows", []):
            ports[port] += count
            if peer not in WILDCARD_PEERS:
                peers[peer] += count
    else:
        causes = from_counters(out_rsts, probe.get("tcpext_delta") or {}, probe.get("sysctls") or {})
        tier = "counters" if out_rsts else "none"
    owners = (probe.get("owners") or {}).get("ports") or {}
    if owners:
        used.append((probe.get("owners") or {}).get("method", "owners"))
    top_ports = []
    for port, count in ports.most_common(10):
        info = owners.get(str(port)) or {}
        top_ports.append(PortInfo(port, count, info.get("listening"), info.get("owners", [])))
    return HostEvidence(tier, used, causes, top_ports, peers.most_common(10), scan_suspects,
                        capture.get("path"), notes)
