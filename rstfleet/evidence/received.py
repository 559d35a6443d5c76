"""The other end: resets this host RECEIVED in the window — from whom, on which connections.

Pure. Evidence tiers, best first (the tier used is recorded):
    tracepoint  tcp:tcp_receive_reset, counted on the host by (peer, peer port, local port): every
                reset that hit one of this host's sockets, refused SYNs and established
                connections alike (measured: docs/causes.md, "Both ends of a reset")
    capture     the RSTs on the wire addressed to this host, with their flags (RST+ACK answers a
                SYN; a bare RST hits a connection with data)
    counters    Tcp AttemptFails (this host's connection attempts that failed: a refused SYN
                among them; Netdata's 10s_ipv4_tcp_resets_received) and EstabResets (established
                connections reset, by either end): always shown, they say which kind of
                connection was reset, which the tracepoint does not
Only the sender knows why: the cause of a received reset comes from pairing it with the sender's
traced reset when both ends are in the sweep (rstfleet/pairing.py).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ..probe.document import ProbeDocument
from ..probe.host.tally import canonical_ports
from .capture_summary import local_set
from .pcap import ResetPacket

TOP = 10
RST_ACK = 0x14


@dataclass
class ReceivedResets:
    tier: str                                  # "tracepoint" | "capture" | "counters" | "none"
    resets: int | None                         # counted resets received (None: counters only)
    attempt_fails: int | None                  # Tcp AttemptFails over the window
    estab_resets: int | None                   # Tcp EstabResets over the window
    peers: list[tuple[str, int]] = field(default_factory=list)        # who reset this host's connections
    connections: list[dict] = field(default_factory=list)   # {"peer", "peer_port", "local_port", "resets"}
    flags: dict[str, int] = field(default_factory=dict)     # capture only: {"RST+ACK": n, "RST": m}
    notes: list[str] = field(default_factory=list)


def _connection_rows(counts: Counter) -> list[dict]:
    """Most first; a port None stands for a client's ephemeral ports (many connections)."""
    rows = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0][0], str(kv[0][1]), str(kv[0][2])))
    return [{"peer": peer, "peer_port": peer_port, "local_port": local_port, "resets": n}
            for (peer, peer_port, local_port), n in rows[:TOP]]


def _from_trace(document: ProbeDocument, received: ReceivedResets) -> None:
    trace = document.trace
    section = trace.get("received") or {}
    peers, connections = Counter(), Counter()
    for row in document.resets:
        if row.direction == "received":
            peers[row.peer] += row.count
            connections[(row.peer, row.peer_port, row.local_port)] += row.count
    received.tier, received.resets = "tracepoint", section.get("events", sum(peers.values()))
    received.peers, received.connections = peers.most_common(TOP), _connection_rows(connections)
    cut = (trace.get("resets_cut") or {}).get("received") or 0
    if cut:
        received.notes.append(f"{cut:,} of {received.resets:,} received resets found no room among the "
                              f"counted keys: in the total, not by peer")
    kept = section.get("kept_sample")
    if kept is not None and received.resets and kept < received.resets:
        received.notes.append(f"sample: {kept:,} of {received.resets:,} received resets traced kept with "
                              f"time and 4-tuple (for pairing); the counts cover all {received.resets:,}")


def _from_capture(packets: list[ResetPacket], local_addresses, received: ReceivedResets) -> None:
    local = local_set(local_addresses)
    peers, connections, flags = Counter(), Counter(), Counter()
    for packet in packets:
        if packet.dst not in local or packet.src in local:
            continue
        local_port, peer_port = canonical_ports(packet.dport, packet.sport)
        peers[packet.src] += 1
        connections[(packet.src, peer_port, local_port)] += 1
        flags["RST+ACK" if packet.flags & RST_ACK == RST_ACK else "RST"] += 1
    received.tier, received.resets = "capture", sum(peers.values())
    received.peers, received.connections, received.flags = peers.most_common(TOP), _connection_rows(connections), dict(flags)


def received_resets(document: ProbeDocument, packets: list[ResetPacket] | None = None) -> ReceivedResets:
    """This host's received side, from the best evidence its document (and capture) has."""
    delta = document.tcp_delta
    received = ReceivedResets("counters", None, delta.get("AttemptFails"), delta.get("EstabResets"))
    if document.received_traced:
        _from_trace(document, received)
    elif packets is not None:
        _from_capture(packets, document.addresses, received)
        if document.trace.get("available"):
            received.notes.append(f"no tcp:tcp_receive_reset: {(document.trace.get('received') or {}).get('reason')}")
    elif received.attempt_fails is None and received.estab_resets is None:
        received.tier = "none"
    return received
