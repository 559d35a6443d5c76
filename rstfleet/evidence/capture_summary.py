"""Summarise the resets read by :func:`rstfleet.pcap.read_resets` for one host.

A reset is *sent* when its source address is one of the host's
``local_addresses`` (or, when that set is empty, when the capture recorded it
as outgoing, ``direction == "out"``); every other reset is *received*.  For a
sent reset the local port is its source port and the peer is its destination.

Note for loopback: both ends are local, so every reset on ``lo`` counts as
sent (from the closed port, to the connecting client's address).
"""
from __future__ import annotations

import ipaddress
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, List, Optional, Set, Tuple

if TYPE_CHECKING:  # pragma: no cover
    from .pcap import ResetPacket

__all__ = ["CaptureSummary", "summarize", "bare_rst_share", "is_sent", "sent_flows", "TOP_N"]

TOP_N = 10
RST_ACK = 0x14


@dataclass
class CaptureSummary:
    packets: int = 0
    sent: int = 0
    received: int = 0
    top_local_ports: List[Tuple[int, int]] = field(default_factory=list)  # (local port, resets sent from it)
    top_peers: List[Tuple[str, int]] = field(default_factory=list)        # (peer address, resets sent to it)
    # [{"peer": addr, "distinct_ports": n, "resets": m}]: peers that got resets
    # from >= scan_min_ports distinct local ports -- the signature of a port scan.
    scan_suspects: List[dict] = field(default_factory=list)
    truncated: bool = False                                               # max_packets was hit


def _canonical(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address.strip().split("%", 1)[0]))
    except ValueError:
        return address


def _top(counter: Counter) -> list:
    """Most common first; ties broken by key so the output is deterministic."""
    return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_N]


def local_set(local_addresses: Iterable[str] | None) -> Set[str]:
    return {_canonical(a) for a in local_addresses or ()}


def is_sent(pkt: "ResetPacket", local: Set[str]) -> bool:
    """Sent by the host: from one of its addresses (or, with none known, captured outgoing)."""
    return pkt.src in local if local else pkt.direction == "out"


def bare_rst_share(packets: Iterable["ResetPacket"], local_addresses: Set[str]) -> dict:
    """(local port, peer) -> share of that flow's sent RSTs without ACK. A bare RST answers a
    segment of a connection the host does not have (half-open); RST+ACK answers a SYN."""
    local = local_set(local_addresses)
    flows: dict = {}
    for pkt in packets:
        if is_sent(pkt, local):
            seen = flows.setdefault((pkt.sport, pkt.dst), [0, 0])
            seen[0] += 1
            seen[1] += pkt.flags & RST_ACK != RST_ACK
    return {flow: bare / n for flow, (n, bare) in flows.items() if bare}


def sent_flows(packets: Iterable["ResetPacket"], local_addresses: Set[str]) -> Counter:
    """(local port, peer) -> resets the host sent on it (what expected-reset rules match)."""
    local = local_set(local_addresses)
    return Counter((pkt.sport, _canonical(pkt.dst)) for pkt in packets if is_sent(pkt, local))


def summarize(packets: Iterable["ResetPacket"], local_addresses: Set[str],
              scan_min_ports: int = 10, *, truncated: Optional[bool] = None) -> CaptureSummary:
    """Count sent/received resets, rank local ports and peers, flag scan-like peers.

    ``truncated`` defaults to the ``truncated`` attribute of the list that
    :func:`~rstfleet.pcap.read_resets` returned (False for a plain list).
    """
    if truncated is None:
        truncated = bool(getattr(packets, "truncated", False))
    local = local_set(local_addresses)
    ports: Counter = Counter()
    peers: Counter = Counter()
    peer_ports: dict = defaultdict(set)
    total = sent = 0
    for pkt in packets:
        total += 1
        if not is_sent(pkt, local):
            continue
        sent += 1
        ports[pkt.sport] += 1
        peers[pkt.dst] += 1
        peer_ports[pkt.dst].add(pkt.sport)
    suspects = [{"peer": peer, "distinct_ports": len(seen), "resets": peers[peer]}
                for peer, seen in peer_ports.items() if len(seen) >= scan_min_ports]
    suspects.sort(key=lambda s: (-s["distinct_ports"], -s["resets"], s["peer"]))
    return CaptureSummary(packets=total, sent=sent, received=total - sent,
                          top_local_ports=_top(ports), top_peers=_top(peers),
                          scan_suspects=suspects, truncated=truncated)
