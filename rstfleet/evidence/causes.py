"""Why a host sends resets: the alert guide's causes, each with its share, its evidence and next step.

Evidence tiers, best first (the tier used is recorded, never silent):
    tracepoint  every reset of the window attributed by the kernel (tcp:tcp_send_reset reason,
                local port, peer) — needs root and tracefs
    counters    TcpExt deltas (TCPAbortOnClose, ListenOverflows, …); resets no counter explains
                are most likely packets to closed ports, which have no counter of their own
    capture     the RSTs on the wire: ports, peers, and the reset's own flags and sequence number
                (RST+ACK with seq 0 answers a SYN to a closed port; RST+ACK with a sequence number
                is an abort; a bare RST answers a segment of a connection the host does not know —
                half-open); `rstfleet analyze` has this tier alone (from_capture)
The kernel's reasons, TcpExt counters and the guide's causes do not map one to one; the mapping
used here was measured on the lab (docs/causes.md).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:  # pragma: no cover
    from ..expected import ExpectedResets
    from .pcap import ResetPacket

from .received import ReceivedResets

# key -> (the guide's words, severity weight used in the score); each cause's next command is in
# next_steps.py (built from validated ports and peers only: host text is hostile).
CAUSES = {
    "closed_port": ("TCP packet received on a port that is not open", 1.0),
    "port_scan": ("Port scan: one peer probing many closed ports", 1.5),
    "syn_reset_attack": ("SYN flood to a closed port from many peers (SYN-reset attack)", 2.0),
    "aborted_connection": ("Aborting connection (closed with unread data, SO_LINGER 0, data after close)", 1.2),
    "half_open": ("Half-opened connection (segment for a connection the host does not know)", 1.2),
    "time_wait_assassination": ("Time-wait assassination (segment hitting a TIME_WAIT socket)", 1.1),
    "listen_queue_full": ("Listening endpoint queue is full (tcp_abort_on_overflow=1)", 1.5),
    "buffer_overflow": ("TCP buffer overflow (aborted on memory pressure)", 1.5),
    "other": ("Resets the evidence could not attribute", 1.0),
}

# tcp:tcp_send_reset reason -> cause, as measured on Linux 6.18 (docs/causes.md). Not one to one:
# NO_SOCKET is a closed port, a scan, a crashed service's reconnects or a half-open connection whose
# listener is gone (split below by peer/port spread and by the RST's flags in a capture); TCP_STATE is
# SO_LINGER 0 (TCPAbortOnData moves) or the queued connections of a listener that closed or crashed.
REASON_CAUSE = {
    "NO_SOCKET": "closed_port",
    "TCP_ABORT_ON_CLOSE": "aborted_connection",
    "TCP_ABORT_ON_LINGER": "aborted_connection",
    "TCP_ABORT_ON_DATA": "aborted_connection",
    "TCP_STATE": "aborted_connection",
    "TCP_ABORT_ON_MEMORY": "buffer_overflow",
    "TCP_TIMEWAIT_SOCKET": "time_wait_assassination",
    "TCP_INVALID_ACK_SEQUENCE": "half_open",
    "TCP_FLAGS": "half_open",
    "TCP_OLD_ACK": "half_open",
    "INVALID_SYN": "listen_queue_full",       # measured: an overflow with tcp_abort_on_overflow=1
}
REASON_NOTE = {
    "TCP_STATE": "TCP_STATE is SO_LINGER 0 when TcpExt TCPAbortOnData moves, else connections "
                 "queued on a listener that closed (a crashed service)",
    "TCP_TIMEWAIT_SOCKET": "segments for connections this host holds in TIME_WAIT",
    "INVALID_SYN": "a full accept queue answered with RST (tcp_abort_on_overflow=1)",
}
WILDCARD_PEERS = {"0.0.0.0", "::", "", None}   # a listener's RST names no peer

# TcpExt counter -> cause, for the counters tier (each increment is one reset sent; measured:
# SO_LINGER 0 raises TCPAbortOnData, not TCPAbortOnLinger).
COUNTER_CAUSE = {
    "TCPAbortOnClose": "aborted_connection",
    "TCPAbortOnData": "aborted_connection",
    "TCPAbortOnLinger": "aborted_connection",
    "TCPAbortOnMemory": "buffer_overflow",
}

SCAN_MIN_PORTS = 10          # one peer, this many distinct closed ports in the window: a scan
SYN_ATTACK_MIN_PEERS = 50    # this many distinct peers on one closed port: a SYN-reset attack


@dataclass
class Cause:
    key: str
    title: str
    resets: int
    share: float
    evidence: list[str] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    peers: list[str] = field(default_factory=list)
    next_step: str = ""          # set by evidence/host.py (next_steps.py), naming the host


@dataclass
class PortInfo:
    port: int
    resets: int
    listening: bool | None = None          # None: owners not looked up
    owners: list[dict] = field(default_factory=list)


@dataclass
class HostEvidence:
    tier: str                               # "tracepoint" | "counters" | "capture" | "none"
    evidence_used: list[str]
    causes: list[Cause]
    top_ports: list[PortInfo]
    top_peers: list[tuple[str, int]]
    scan_suspects: list[dict]
    capture_path: str | None = None
    notes: list[str] = field(default_factory=list)
    received: ReceivedResets | None = None  # the other end: resets this host received (received.py)
    expected: "ExpectedResets | None" = None   # expected.py: what declared rules excuse (None: no rule)


def _cause(key: str, resets: int, total: int, evidence: list[str], ports: Counter,
           peers: Counter) -> Cause:
    return Cause(key, CAUSES[key][0], resets, resets / total if total else 0.0, evidence,
                 [p for p, _ in ports.most_common(5)], [p for p, _ in peers.most_common(5)])


def attributed_flows(trace: dict, bare_share: dict | None = None) -> list[tuple[str, object, object, str, int]]:
    """Each traced flow with the cause it is attributed to: [(cause, port, peer, reason, count)].

    flows are [[local port, peer, reason, count], …]; bare_share maps (port, peer) to the
    fraction of that flow's RSTs a capture saw without ACK: those answered a stray segment
    (half-open), the others a SYN (closed port). A flow split that way gives two rows.
    """
    flows = trace.get("flows", [])
    bare_share = bare_share or {}
    peer_ports: dict[str, set] = {}
    port_peers: dict[int, set] = {}
    for port, peer, reason, count in flows:
        if reason == "NO_SOCKET" and peer not in WILDCARD_PEERS:
            peer_ports.setdefault(peer, set()).add(port)
            port_peers.setdefault(port, set()).add(peer)
    scanners = {peer for peer, ports in peer_ports.items() if len(ports) >= SCAN_MIN_PORTS}
    attacked = {port for port, peers in port_peers.items() if len(peers) >= SYN_ATTACK_MIN_PEERS}
    rows = []
    for port, peer, reason, count in flows:
        reason = reason or "UNKNOWN"
        key = REASON_CAUSE.get(reason, "other")
        if reason == "NO_SOCKET" and peer in scanners:
            key = "port_scan"
        elif reason == "NO_SOCKET" and port in attacked:
            key = "syn_reset_attack"
        elif reason == "NO_SOCKET" and bare_share.get((port, peer)):
            half = round(count * bare_share[(port, peer)])
            rows.append(("half_open", port, peer, "NO_SOCKET (bare RST: answer to a non-SYN segment)", half))
            count -= half
        rows.append((key, port, peer, reason, count))
    return [row for row in rows if row[4]]


def from_trace(trace: dict, bare_share: dict | None = None, tcpext: dict | None = None) -> list[Cause]:
    """Causes from the tracepoint's per-reset flows (attributed_flows says how each is attributed)."""
    rows = attributed_flows(trace, bare_share)
    total = sum(row[3] for row in trace.get("flows", []))
    groups: dict[str, tuple[Counter, Counter, Counter]] = {}
    for key, port, peer, reason, count in rows:
        ports, peers, reasons = groups.setdefault(key, (Counter(), Counter(), Counter()))
        ports[port] += count
        if peer not in WILDCARD_PEERS:
            peers[peer] += count
        reasons[reason] += count
    causes = []
    for key, (ports, peers, reasons) in groups.items():
        evidence = [f"tracepoint: {n} × {r}" for r, n in reasons.most_common()]
        evidence += [REASON_NOTE[r] for r in reasons if r in REASON_NOTE]
        if key == "port_scan":
            evidence.append(f"{len(peers)} peer(s) hit ≥ {SCAN_MIN_PORTS} distinct closed ports")
        if key == "syn_reset_attack":
            evidence.append(f"≥ {SYN_ATTACK_MIN_PEERS} distinct peers on one closed port")
        if key == "listen_queue_full" and tcpext and tcpext.get("ListenOverflows"):
            evidence.append(f"TcpExt ListenOverflows +{tcpext['ListenOverflows']}")
        causes.append(_cause(key, sum(reasons.values()), total, evidence, ports, peers))
    return _ordered(causes)


# What an RST on the wire answers, from its own flags and sequence number (RFC 793 reset
# generation; measured for every lab scenario, docs/causes.md "From a capture alone").
CAPTURE_KIND_CAUSE = {"abort": "aborted_connection", "stray": "half_open"}
CAPTURE_EVIDENCE = {
    "syn": "capture: {n} × RST+ACK with seq 0: each answers a SYN (nothing listens on the port, "
           "or a firewall rejects it)",
    "abort": "capture: {n} × RST+ACK with a live sequence number: the sender aborted an open "
             "connection (close() with unread data, SO_LINGER 0, a closing listener's queue)",
    "stray": "capture: {n} × RST without ACK: each answers a segment of a connection the sender "
             "does not have (half-open after a restart; also data after close, a crashed "
             "service's old connections, a full accept queue with tcp_abort_on_overflow=1)",
}


def capture_kind(packet: "ResetPacket") -> str:
    """'syn': RST+ACK with seq 0, the answer to a segment without ACK (a SYN); 'abort': RST+ACK
    with a sequence number, sent by a connection on its own; 'stray': RST without ACK, the answer
    to a segment that carried an ACK, for a connection the sender does not have."""
    if not packet.flags & 0x10:
        return "stray"
    return "syn" if packet.seq == 0 else "abort"


def from_capture(packets: Iterable["ResetPacket"]) -> list[Cause]:
    """Causes of resets one address sent, from the capture alone (its port is the source port,
    its peer the destination). SYN answers split by spread as the tracepoint's NO_SOCKET does."""
    packets = list(packets)
    peer_ports: dict[str, set] = {}
    port_peers: dict[int, set] = {}
    for packet in packets:
        if capture_kind(packet) == "syn":
            peer_ports.setdefault(packet.dst, set()).add(packet.sport)
            port_peers.setdefault(packet.sport, set()).add(packet.dst)
    scanners = {peer for peer, ports in peer_ports.items() if len(ports) >= SCAN_MIN_PORTS}
    attacked = {port for port, peers in port_peers.items() if len(peers) >= SYN_ATTACK_MIN_PEERS}
    groups: dict[str, tuple[Counter, Counter, Counter]] = {}
    for packet in packets:
        kind = capture_kind(packet)
        key = CAPTURE_KIND_CAUSE.get(kind) or ("port_scan" if packet.dst in scanners else
                                               "syn_reset_attack" if packet.sport in attacked else
                                               "closed_port")
        ports, peers, kinds = groups.setdefault(key, (Counter(), Counter(), Counter()))
        ports[packet.sport] += 1
        peers[packet.dst] += 1
        kinds[kind] += 1
    causes = []
    for key, (ports, peers, kinds) in groups.items():
        evidence = [CAPTURE_EVIDENCE[kind].format(n=n) for kind, n in kinds.most_common()]
        if key == "port_scan":
            evidence.append(f"capture: {len(scanners)} peer(s) got resets from ≥ {SCAN_MIN_PORTS} "
                            f"distinct closed ports")
        if key == "syn_reset_attack":
            evidence.append(f"capture: ≥ {SYN_ATTACK_MIN_PEERS} distinct peers on one closed port")
        causes.append(_cause(key, sum(kinds.values()), len(packets), evidence, ports, peers))
    return _ordered(causes)


def from_counters(out_rsts: int, tcpext: dict, sysctls: dict) -> list[Cause]:
    """Causes from TcpExt deltas; what no counter explains goes to closed_port (it has no counter)."""
    causes, explained = [], 0
    by_key: dict[str, list[str]] = {}
    counts: Counter = Counter()

    def attribute(key: str, n: int, evidence: str) -> None:
        """Counters can move for more than resets sent: never attribute more than OutRsts."""
        nonlocal explained
        n = min(n, out_rsts - explained)
        if n <= 0:
            return
        by_key.setdefault(key, []).append(evidence)
        counts[key] += n
        explained += n

    for counter, key in COUNTER_CAUSE.items():
        n = tcpext.get(counter) or 0
        if n:
            attribute(key, n, f"TcpExt {counter} +{n}")
    overflow = tcpext.get("ListenOverflows") or 0
    # Measured: an overflow answered with RST also moves EmbryonicRsts; with the sysctl at 0 the
    # kernel drops the ACK silently and sends nothing, so only as many as EmbryonicRsts can be resets.
    if sysctls.get("net.ipv4.tcp_abort_on_overflow") != 1:
        overflow = min(overflow, tcpext.get("EmbryonicRsts") or 0)
    if overflow:
        attribute("listen_queue_full", overflow,
                  f"TcpExt ListenOverflows +{overflow} (tcp_abort_on_overflow="
                  f"{sysctls.get('net.ipv4.tcp_abort_on_overflow')}, EmbryonicRsts "
                  f"+{tcpext.get('EmbryonicRsts') or 0})")
    for key, evidence in by_key.items():
        causes.append(_cause(key, counts[key], out_rsts, evidence, Counter(), Counter()))
    rest = out_rsts - explained
    if rest:
        causes.append(_cause("closed_port", rest, out_rsts,
                             [f"{rest} of {out_rsts} resets match no TcpExt abort counter: "
                              f"most likely packets to closed ports (no counter of their own)"],
                             Counter(), Counter()))
    return _ordered(causes)


# Counters that a traced reason already accounts for (so the untraced remainder is not counted twice).
REASON_COUNTER = {"TCP_ABORT_ON_CLOSE": "TCPAbortOnClose", "TCP_STATE": "TCPAbortOnData",
                  "TCP_ABORT_ON_DATA": "TCPAbortOnData", "TCP_ABORT_ON_LINGER": "TCPAbortOnLinger",
                  "TCP_ABORT_ON_MEMORY": "TCPAbortOnMemory", "INVALID_SYN": "ListenOverflows"}


def combine(trace: dict, out_rsts: int, tcpext: dict, sysctls: dict,
            bare_share: dict | None = None) -> list[Cause]:
    """Trace-attributed causes, plus counter-attributed ones for resets the trace did not keep.

    The kernel counts every reset in OutRsts; the trace may miss some (a listener's RST whose
    port stopped listening before the window ended names no local address; older kernels trace
    only full sockets). Shares are of OutRsts, the alert's own count.
    """
    traced = from_trace(trace, bare_share, tcpext)
    kept = sum(c.resets for c in traced)
    if out_rsts <= kept:
        return traced
    left = dict(tcpext)
    for port, peer, reason, count in trace.get("flows", []):
        # Kernels before the reason field (5.x) trace full-socket resets only, with no reason:
        # those are the aborts, so they use up the abort counters.
        for counter in [REASON_COUNTER[reason]] if reason in REASON_COUNTER else \
                COUNTER_CAUSE if reason is None else []:
            used = min(count, left.get(counter) or 0)
            left[counter] = (left.get(counter) or 0) - used
            count -= used
    untraced = from_counters(out_rsts - kept, left, sysctls)
    for cause in untraced:
        cause.evidence.append(f"{out_rsts - kept} of {out_rsts} resets were not kept by the "
                              f"tracepoint: attributed from counters")
    causes = _ordered(traced + untraced)
    for cause in causes:
        cause.share = cause.resets / out_rsts
    return causes


def _ordered(causes: list[Cause]) -> list[Cause]:
    merged: dict[str, Cause] = {}
    for cause in causes:
        if cause.key in merged:
            into = merged[cause.key]
            into.resets += cause.resets
            into.share += cause.share
            into.evidence += [e for e in cause.evidence if e not in into.evidence]
        else:
            merged[cause.key] = cause
    return sorted((c for c in merged.values() if c.resets > 0), key=lambda c: (-c.resets, c.key))


def severity(causes: list[Cause]) -> float:
    """Share-weighted severity of a host's causes (1.0 when nothing is known)."""
    if not causes:
        return 1.0
    return sum(c.share * CAUSES[c.key][1] for c in causes) / (sum(c.share for c in causes) or 1.0)
