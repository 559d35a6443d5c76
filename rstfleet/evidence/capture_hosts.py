"""Hosts out of the captures a person already has (`rstfleet analyze`), with evidence from the
capture alone. Pure: the files are read by evidence/captures.py and decoded by pcap.py.

Each address that sent resets becomes one host (its name is the address); with ``local``
addresses (the capturing host's, ``--local``) that host is the only one: what it sent is ranked,
what it received is shown as received. Both directions are counted per pair of addresses, so the
counts can be checked against ``tcpdump -r FILE 'tcp[tcpflags] & tcp-rst != 0 and src A and dst B'``.

    hosts = capture_hosts([CaptureRead("rst.pcap", read_resets(data))])
    hosts[0].name, hosts[0].sent, hosts[0].evidence.causes[0].key  ->  "198.18.0.2", 5, "closed_port"
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Iterable

from .capture_summary import local_set, summarize
from .causes import HostEvidence, PortInfo, from_capture
from .pcap import ResetList, ResetPacket

MIN_SPAN_S = 1.0        # a capture with one reset (or all in one instant) still spans a second
TOP_SENDERS = 5         # received resets: the senders named per host
MAX_PAIRS = 10_000      # directions listed in the JSON (a SYN-reset attack has one per peer)


@dataclass
class CaptureRead:
    name: str               # the file as the user named it
    packets: ResetList      # its resets, and how reading went


@dataclass
class CaptureHost:
    name: str
    addresses: tuple[str, ...]
    sent: int
    received: int
    evidence: HostEvidence
    received_from: dict[str, int] = field(default_factory=dict)   # sender -> resets


def capture_span(captures: Iterable[CaptureRead]) -> float:
    """Seconds the captures cover: the union of each file's first-to-last record (overlapping
    captures of one incident count once), at least MIN_SPAN_S."""
    spans = sorted((c.packets.first_ts, c.packets.last_ts) for c in captures
                   if c.packets.first_ts is not None)
    total, end = 0.0, None
    for first, last in spans:
        if end is None or first > end:
            total, end = total + (last - first), last
        elif last > end:
            total, end = total + (last - end), last
    return max(total, MIN_SPAN_S)


def file_note(capture: CaptureRead) -> str:
    """'capture rst.pcap: 1204 records read, 35 resets; 1 record(s) longer than … skipped'."""
    packets = capture.packets
    text = f"capture {capture.name}: {packets.records} records read, {len(packets)} resets"
    return "; ".join([text] + packets.notes())


def _direction_note(sent: list[ResetPacket], local: bool) -> list[str]:
    """What the capture's own direction (Linux cooked headers, pcapng flags) says of the sender."""
    directions = {p.direction for p in sent}
    if directions == {"out"} and not local:
        return [f"all {len(sent)} captured as outgoing: an address of the capturing host "
                f"(--local ADDR reports that host alone, with what it received)"]
    if directions == {"in"}:
        return [f"all {len(sent)} captured as incoming: " + ("sent by a remote host as the capture "
                "sees it; is --local right?" if local else "a remote address resetting the "
                "capturing host's connections")]
    return []


def _received_note(received: list[ResetPacket]) -> tuple[str, dict[str, int]]:
    """'received 8 resets: from 198.18.0.2 (5: closed_port 5, its ports 9), from …' and counts."""
    by_sender: dict[str, list[ResetPacket]] = defaultdict(list)
    for packet in received:
        by_sender[packet.src].append(packet)
    counts = {sender: len(packets) for sender, packets in by_sender.items()}
    parts = []
    for sender, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_SENDERS]:
        causes = ", ".join(f"{c.key} {c.resets}" for c in from_capture(by_sender[sender]))
        ports = [str(p) for p, _ in Counter(p.sport for p in by_sender[sender]).most_common(5)]
        parts.append(f"from {sender} ({n}: {causes}; its port(s) {', '.join(ports)})")
    more = len(counts) - TOP_SENDERS
    return (f"received {len(received)} resets: " + ", ".join(parts)
            + (f" and {more} more sender(s)" if more > 0 else "")), counts


def _host(name: str, addresses: set[str], sent: list, received: list, notes: list[str],
          files: list[str], local: bool) -> CaptureHost:
    summary = summarize(sent, addresses)
    received_line, received_from = _received_note(received) if received else ("", {})
    notes = [received_line] * bool(received) + (_direction_note(sent, local) if sent else []) + notes
    evidence = HostEvidence("capture", ["capture"], from_capture(sent),
                            [PortInfo(port, n) for port, n in summary.top_local_ports],
                            summary.top_peers, summary.scan_suspects, ", ".join(files) or None, notes)
    return CaptureHost(name, tuple(sorted(addresses)), len(sent), len(received), evidence, received_from)


def capture_hosts(captures: list[CaptureRead], local: Iterable[str] = ()) -> list[CaptureHost]:
    """One host per sender (or the one ``local`` host), in order of first appearance."""
    local = local_set(local)
    by_src: dict[str, list] = defaultdict(list)
    by_dst: dict[str, list] = defaultdict(list)
    files_of: dict[str, list[str]] = defaultdict(list)
    for capture in captures:
        for packet in capture.packets:
            by_src[packet.src].append(packet)
            by_dst[packet.dst].append(packet)
            for address in (packet.src, packet.dst):
                if not files_of[address] or files_of[address][-1] != capture.name:
                    files_of[address].append(capture.name)
    notes = {c.name: file_note(c) for c in captures}
    groups = [(", ".join(sorted(local)), local)] if local else [(src, {src}) for src in by_src]
    hosts = []
    for name, addresses in groups:
        sent = [p for a in sorted(addresses) for p in by_src.get(a, ())]
        received = [p for a in sorted(addresses) for p in by_dst.get(a, ()) if p.src not in addresses]
        files = list(dict.fromkeys(f for a in sorted(addresses) for f in files_of.get(a, ())))
        host_notes = [notes[f] for f in files]
        if local:
            outside = sum(len(c.packets) for c in captures) - len(sent) - len(received)
            if outside:
                host_notes.append(f"{outside} resets neither from nor to {name} (another host's "
                                  f"traffic in the capture): not counted")
            if not sent and not received:
                host_notes.append(f"no reset in these captures was sent by or to {name}")
        hosts.append(_host(name, addresses, sent, received, host_notes, files, bool(local)))
    return hosts


def pairs(captures: list[CaptureRead], limit: int = MAX_PAIRS) -> tuple[list[dict], int]:
    """Resets per direction, most first: ([{"sender", "receiver", "resets"}] at most ``limit``,
    how many pairs there are) — each checkable with tcpdump -r."""
    counts = Counter((p.src, p.dst) for c in captures for p in c.packets)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return [{"sender": s, "receiver": r, "resets": n} for (s, r), n in ranked], len(counts)
