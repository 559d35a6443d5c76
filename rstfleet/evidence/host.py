"""Turn a probe document's evidence (tracepoint flows, capture, owners) into HostEvidence.

Pure: the capture's bytes come on the HostResult (evidence/captures.py reads and writes files).
"""

from __future__ import annotations

from collections import Counter

from .capture_summary import bare_rst_share, sent_flows, summarize
from .causes import WILDCARD_PEERS, HostEvidence, PortInfo, attributed_flows, combine, from_counters
from ..expected import Expectation, evidence_pieces, match_expected
from .next_steps import cause_suggestion
from ..results import HostResult
from .pcap import PcapError, read_resets
from .received import received_resets


def host_evidence(result: HostResult, rules: tuple[Expectation, ...] = ()) -> HostEvidence | None:
    """Everything known about why this host sent its resets, from its (validated) probe document;
    with the host's expected-reset rules, how much of it they excuse."""
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
    pieces: list = []                     # the finest evidence, for expected-reset rules
    pcap, packets = result.pcap, None
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
            pieces = [(None, port, peer, n) for (port, peer), n in sent_flows(packets, local).items()]
        except PcapError as exc:
            notes.append(f"capture unreadable: {exc}")
            packets = None
    if trace.get("available"):
        used.insert(0, "tracepoint")
        causes = combine(trace, out_rsts, document.tcpext_delta, document.sysctls, bare_share)
        pieces = evidence_pieces(attributed_flows(trace, bare_share), causes)
        tier = "tracepoint"
        notes.extend(trace_notes(trace, out_rsts))
        ports, peers = Counter(), Counter()
        for port, peer, _, count in trace.get("flows", []):
            ports[port] += count
            if peer not in WILDCARD_PEERS:
                peers[peer] += count
    else:
        causes = from_counters(out_rsts, document.tcpext_delta, document.sysctls)
        tier = "counters" if out_rsts else "none"
        pieces = pieces or [(c.key, None, None, c.resets) for c in causes]
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
    return HostEvidence(tier, used, causes, top_ports, top_peers, scan_suspects, capture.get("path"), notes,
                        received_resets(document, packets),
                        match_expected(pieces, rules) if rules else None)


def trace_notes(trace: dict, out_rsts: int) -> list[str]:
    """What the sent side's counts and sample do and do not cover, in numbers: '1,000 of 4,000'."""
    notes, events = [], trace.get("events") or 0
    kept = trace.get("kept_sample")
    if kept is not None and kept < events:
        notes.append(f"sample: {kept:,} of {events:,} traced resets sent kept with time and 4-tuple (for "
                     f"pairing); the counts by port, peer and reason cover all {events:,}")
    if trace.get("flows_cut"):
        notes.append(f"{trace['flows_cut']:,} of {events:,} traced resets found no room among the counted "
                     f"keys: in the total, not by port")
    if trace.get("dropped") and "kept_sample" not in trace:   # a probe from before host-side counting
        notes.append(f"{trace['dropped']:,} traced resets were not kept (the probe's event cap, or the "
                     f"kernel's trace buffer): OutRsts +{out_rsts:,} is exact")
    elif trace.get("dropped"):
        notes.append(f"the kernel's trace buffer lost {trace['dropped']:,} events (any host on this kernel, "
                     f"either direction): {events:,} traced, OutRsts +{out_rsts:,} is exact")
    return notes
