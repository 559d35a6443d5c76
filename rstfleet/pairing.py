"""Both ends of a reset across the fleet: each reset a host received, matched with the reset the
sender's kernel sent — or shown to have been sent by no kernel. Pure: probe documents in, records out.

Only the sender knows why it reset a connection (the tracepoint's reason); only the receiver
knows its connection was hit. When both are in the sweep and both traced, their counts meet under
mirrored keys (a client's ephemeral port is None on both sides: probe/host/tally.py):

    h2 received  (198.18.0.3, None) <- (198.18.0.2, 9)    4,000
    h1 sent      (198.18.0.2, 9)    -> (198.18.0.3, None) 4,000  NO_SOCKET
    => "h2's connections to h1:9 are reset by h1's kernel: nothing listens on 9"

Pairing is by key and count first: clocks differ between real hosts, and measured on one machine
the receive is stamped −9 µs … +51 µs from the send (either order). Timestamps only choose among
sampled resets with the same 4-tuple, and give the delay between the two ends' stamps.

**Resets no kernel sent**: a netfilter REJECT with tcp-reset (iptables, nftables, kube-proxy) or a
middlebox sends an RST the host's TCP stack never sees: its OutRsts does not move and
tcp_send_reset does not fire (measured: docs/causes.md). So a reset received "from" a fleet host
whose trace counted none to that connection was made by something between or in front of it.
That is said only when the sender's trace could have seen it: it ran, lost no event, had room for
every key, its kernel counted no reset its trace missed, and the two windows overlapped.
"""

from __future__ import annotations

import ipaddress
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from enum import Enum

from .evidence.causes import REASON_CAUSE, WILDCARD_PEERS
from .probe.document import ProbeDocument, SampledReset
from .probe.host.tally import canonical_ports

MAX_PAIRS = 50              # pair records kept in a report (the rest counted)
EDGE_SLACK = 2              # resets a receiver may count beyond the sender's at the edges of the windows
EDGE_SHARE = 0.05           # ... or this share of them
MIN_OVERLAP = 0.5           # the two windows must overlap this share of the shorter one


class PairVerdict(str, Enum):
    PAIRED = "paired"                       # the sender's kernel sent them
    NOT_SENT = "not_sent_by_kernel"         # none sent by the sender's TCP stack: firewall, middlebox, spoofing
    PARTLY_SENT = "partly_sent"             # some sent by the kernel, the rest by something in front
    NOT_RECEIVED = "not_received"           # sent by a kernel, hit no socket of the receiver
    UNVERIFIED = "unverified"               # the sender's trace cannot say (evidence says why)

    __str__ = str.__str__
    __format__ = str.__format__


@dataclass
class HostEnds:
    """One checked host as pairing sees it: its name, its addresses and its probe document."""
    host: str
    addresses: frozenset[str]
    document: ProbeDocument
    _sent: dict | None = field(default=None, repr=False)

    def sent_rows(self) -> dict[tuple, Counter]:
        """(local, local port, peer, peer port) -> reason -> count of this host's traced sends."""
        if self._sent is None:
            self._sent = defaultdict(Counter)
            for row in self.document.resets:
                if row.direction == "sent":
                    self._sent[(row.local, row.local_port, row.peer, row.peer_port)][row.reason] += row.count
        return self._sent


@dataclass
class ResetPair:
    receiver: str
    sender: str
    receiver_address: str
    sender_address: str
    receiver_port: int | None          # None: the receiver's ephemeral ports (it was the client)
    sender_port: int | None            # None: the sender's ephemeral ports
    received: int                      # counted by the receiver's tcp:tcp_receive_reset
    sent: int                          # counted by the sender's tcp:tcp_send_reset for the same key
    reasons: dict[str, int]            # the sender's reasons for them
    cause: str | None                  # the sender's main reason as a cause key (evidence/causes.py)
    verdict: PairVerdict
    evidence: list[str] = field(default_factory=list)
    matched_sample: int = 0            # sampled resets paired by exact 4-tuple
    delay_us: list[float] = field(default_factory=list)   # [min, max] of receive − send stamps
    example: str = ""                  # one 4-tuple, receiver first


@dataclass
class BothEnds:
    pairs: list[ResetPair]
    received: int = 0                  # resets received by hosts that traced their received side
    from_fleet: int = 0                # ... from an address of another host of this sweep
    from_outside: int = 0              # ... from addresses no host of this sweep has
    outside_peers: list[tuple[str, int]] = field(default_factory=list)
    by_verdict: dict[str, int] = field(default_factory=dict)   # verdict -> resets received
    pairs_cut: int = 0                 # pair records beyond MAX_PAIRS (counted above)


def _usable(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return not (ip.is_loopback or ip.is_unspecified or ip.is_link_local)


def address_owners(hosts: list[HostEnds]) -> dict[str, HostEnds]:
    """Address -> the one host of the sweep that has it (addresses two hosts claim are left out)."""
    claims: dict[str, list[HostEnds]] = defaultdict(list)
    for host in hosts:
        for address in host.addresses:
            if _usable(address):
                claims[address].append(host)
    return {address: owners[0] for address, owners in claims.items() if len(owners) == 1}


def _window(document: ProbeDocument) -> tuple[float, float] | None:
    if document.started_at is None:
        return None
    return document.started_at, document.started_at + document.measured_s


def _overlap(a: ProbeDocument, b: ProbeDocument) -> float | None:
    """Share of the shorter window both windows cover (None: a window's start is unknown)."""
    first, second = _window(a), _window(b)
    if first is None or second is None:
        return None
    shorter = min(first[1] - first[0], second[1] - second[0])
    both = min(first[1], second[1]) - max(first[0], second[0])
    return 1.0 if shorter <= 0 else max(0.0, both) / shorter


def _doubt(traced: HostEnds, direction: str, other: HostEnds, unexplained: int) -> str | None:
    """Why the trace of ``direction`` on ``traced`` could have missed ``unexplained`` resets (its
    kernel's, or ones that reached it); None when it could not have."""
    document, trace = traced.document, traced.document.trace
    if not trace.get("available"):
        return f"{traced.host}'s probe did not trace ({trace.get('reason') or 'no --trace'})"
    if trace.get("dropped"):
        return f"{traced.host}'s trace buffer lost {trace['dropped']:,} events"
    if (trace.get("resets_cut") or {}).get(direction):
        return f"{traced.host}'s trace had no room for {trace['resets_cut'][direction]:,} resets' keys"
    untraced = (document.out_rsts or 0) - (trace.get("events") or 0)
    if direction == "sent" and untraced >= unexplained:
        return (f"{traced.host}'s kernel counted {untraced:,} resets its tracepoint did not show "
                f"(OutRsts +{document.out_rsts:,}, {trace.get('events') or 0:,} traced)")
    overlap = _overlap(traced.document, other.document)
    if overlap is not None and overlap < MIN_OVERLAP:
        return f"{traced.host}'s and {other.host}'s windows overlapped {overlap:.0%} of the shorter one"
    return None


def _index(sample: tuple[SampledReset, ...], direction: str) -> dict[tuple, list[float | None]]:
    found: dict[tuple, list] = defaultdict(list)
    for event in sample:
        if event.direction == direction:
            found[(event.local, event.local_port, event.peer, event.peer_port)].append(event.ts)
    return found


def _match_sample(pair: ResetPair, receiver: HostEnds, sender: HostEnds) -> None:
    """Sampled resets of this pair matched by exact 4-tuple (the nearest stamp among equals)."""
    sent = _index(sender.document.reset_sample, "sent")
    delays = []
    for event in receiver.document.reset_sample:
        if event.direction != "received" or (event.local, event.peer) != (pair.receiver_address, pair.sender_address):
            continue
        if canonical_ports(event.local_port, event.peer_port) != (pair.receiver_port, pair.sender_port):
            continue
        pair.example = pair.example or (f"{event.local}:{event.local_port} <- {event.peer}:{event.peer_port}")
        stamps = sent.get((event.peer, event.peer_port, event.local, event.local_port))
        if not stamps:
            continue
        pair.matched_sample += 1
        known = [ts for ts in stamps if ts is not None]
        if event.ts is not None and known:
            delays.append((event.ts - min(known, key=lambda ts: abs(event.ts - ts))) * 1e6)
    if delays:
        pair.delay_us = [round(min(delays), 1), round(max(delays), 1)]


def _judge(pair: ResetPair, receiver: HostEnds, sender: HostEnds) -> None:
    rest = pair.received - pair.sent
    if pair.received == 0:
        doubt = _doubt(receiver, "received", sender, pair.sent)
        pair.verdict = PairVerdict.UNVERIFIED if doubt else PairVerdict.NOT_RECEIVED
    elif pair.sent and rest <= max(EDGE_SLACK, int(pair.received * EDGE_SHARE)):
        pair.verdict, doubt = PairVerdict.PAIRED, None
        if rest > 0:
            pair.evidence.append(f"{rest:,} received near the edges of the two windows")
        elif rest < -max(EDGE_SLACK, int(pair.sent * EDGE_SHARE)):
            pair.evidence.append(f"{-rest:,} sent that {receiver.host} did not receive as a reset (its socket "
                                 f"was gone, or they were dropped on the way)")
    else:
        doubt = _doubt(sender, "sent", receiver, rest)
        pair.verdict = (PairVerdict.UNVERIFIED if doubt else
                        PairVerdict.NOT_SENT if pair.sent == 0 else PairVerdict.PARTLY_SENT)
    if doubt:
        pair.evidence.append(doubt)


def _pair(receiver: HostEnds, sender: HostEnds, key: tuple, received: int) -> ResetPair:
    """One (receiver, sender, ports) key: the receiver's count against the sender's."""
    local, local_port, peer, peer_port = key
    sent_rows = sender.sent_rows()
    reasons = Counter(sent_rows.get((peer, peer_port, local, local_port), Counter()))
    listener: Counter = Counter()      # a listener's RST names no peer (0.0.0.0:0): it may be these
    for (address, port, to, _), by in sent_rows.items():
        if to in WILDCARD_PEERS and port == peer_port and address in (peer, "0.0.0.0", "::"):
            listener.update(by)
    if listener and sum(reasons.values()) < received:
        reasons.update(listener)
    sent = sum(reasons.values())
    main = reasons.most_common(1)[0][0] if reasons else None
    pair = ResetPair(receiver.host, sender.host, local, peer, local_port, peer_port, received, sent,
                     {str(reason): n for reason, n in reasons.most_common()},
                     REASON_CAUSE.get(main, "other") if reasons else None, PairVerdict.UNVERIFIED)
    document = sender.document
    counted = (f"; {sender.host}'s OutRsts +{document.out_rsts:,}, {document.trace.get('events') or 0:,} "
               f"traced to every peer" if document.out_rsts is not None else "")
    def end(address: str, port: int | None) -> str:
        return f"{address}:{port}" if port is not None else f"{address} (ephemeral ports)"

    pair.evidence.append(f"{receiver.host} received {received:,} from {end(peer, peer_port)}; {sender.host}'s "
                         f"tcp_send_reset counted {sent:,} to {end(local, local_port)}{counted}")
    if listener and sent:
        pair.evidence.append(f"{sum(listener.values()):,} of {sender.host}'s resets on this port came from a "
                             f"listener, which names no peer: counted as these")
    _judge(pair, receiver, sender)
    _match_sample(pair, receiver, sender)
    return pair


def _order(pair: ResetPair) -> tuple:
    weight = {PairVerdict.NOT_SENT: 0, PairVerdict.PARTLY_SENT: 1, PairVerdict.PAIRED: 2,
              PairVerdict.UNVERIFIED: 3, PairVerdict.NOT_RECEIVED: 4}
    return weight[pair.verdict], -max(pair.received, pair.sent), pair.receiver, pair.sender, str(pair.sender_port)


def pair_resets(hosts: list[HostEnds]) -> BothEnds:
    """Every reset a tracing host received from another host of the sweep, paired with its sender's."""
    owners = address_owners(hosts)
    ends = BothEnds([])
    outside: Counter = Counter()
    by_verdict: Counter = Counter()
    seen_sent: set = set()
    for receiver in hosts:
        if not receiver.document.received_traced:
            continue
        received: Counter = Counter()
        for row in receiver.document.resets:
            if row.direction == "received":
                received[(row.local, row.local_port, row.peer, row.peer_port)] += row.count
        ends.received += (receiver.document.trace.get("received") or {}).get("events") or sum(received.values())
        for key, count in received.items():
            sender = owners.get(key[2])
            if sender is None and _usable(key[2]):
                outside[key[2]] += count
            if sender is None or sender is receiver:
                continue
            pair = _pair(receiver, sender, key, count)
            seen_sent.add((sender.host, key[2], key[3], key[0], key[1]))
            ends.from_fleet += count
            by_verdict[pair.verdict] += count
            ends.pairs.append(pair)
    ends.pairs += _unreceived(hosts, owners, seen_sent)
    ends.from_outside = sum(outside.values())
    ends.outside_peers = outside.most_common(10)
    ends.by_verdict = {str(verdict): n for verdict, n in by_verdict.items()}
    ends.pairs.sort(key=_order)
    ends.pairs_cut = max(0, len(ends.pairs) - MAX_PAIRS)
    ends.pairs = ends.pairs[:MAX_PAIRS]
    return ends


def _unreceived(hosts: list[HostEnds], owners: dict[str, HostEnds], seen: set) -> list[ResetPair]:
    """Resets a kernel sent to a host of the sweep whose received side traced none of them."""
    pairs = []
    for sender in hosts:
        for row in sender.document.resets:
            receiver = owners.get(row.peer)
            if (row.direction != "sent" or receiver is None or receiver is sender
                    or not receiver.document.received_traced
                    or (sender.host, row.local, row.local_port, row.peer, row.peer_port) in seen):
                continue
            key = (row.peer, row.peer_port, row.local, row.local_port)
            seen.add((sender.host, row.local, row.local_port, row.peer, row.peer_port))
            pair = _pair(receiver, sender, key, 0)
            pairs.append(pair)
    return pairs


def fleet_ends(hosts: list[tuple[str, str, ProbeDocument | None]]) -> BothEnds:
    """(host, inventory address, document) for each host -> the pairing; hosts without a document skipped."""
    ends = []
    for name, address, document in hosts:
        if document is None:
            continue
        addresses = set(document.addresses) | ({address} if _usable(address) else set())
        ends.append(HostEnds(name, frozenset(addresses), document))
    return pair_resets(ends)


