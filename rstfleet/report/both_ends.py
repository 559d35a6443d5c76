"""What every format says about both ends of a reset, worded once (view.py's companion).

What hosts received, and each received reset paired with its sender's (rstfleet/pairing.py,
rstfleet/evidence/received.py). Plain, *unescaped* sentences; each renderer escapes them:

    h2's connections to h1:9 are reset by h1's kernel: nothing listens on 9 (4,000 received, 4,000 sent: NO_SOCKET 4,000)
    h2's connections to h1:8443 are reset by something between or in front of h1 (a firewall REJECT
    rule, a middlebox or spoofing), not by h1's TCP stack: h2 received 50, h1's kernel sent none of them
"""

from __future__ import annotations

from ..analysis import Assessment
from ..fleet import FleetSummary
from ..pairing import HostEnds, PairVerdict, ResetPair, address_owners
from .view import cause_title, checked


MAX_RECEIVING_HOSTS = 20
IN_FRONT = "something between or in front of {host} (a firewall REJECT rule, a middlebox or spoofing)"
REASON_WHY = {
    "TCP_ABORT_ON_CLOSE": "the application closed with unread data",
    "TCP_ABORT_ON_LINGER": "the application closed with SO_LINGER 0",
    "TCP_ABORT_ON_DATA": "the application closed with SO_LINGER 0",
    "TCP_STATE": "a close with SO_LINGER 0, or a listener that closed with connections queued",
    "TCP_TIMEWAIT_SOCKET": "data arrived after it had closed the connection (TIME_WAIT)",
    "TCP_FLAGS": "a segment for a connection it does not have (half-open)",
    "TCP_INVALID_ACK_SEQUENCE": "a segment for a connection it does not have (half-open)",
    "TCP_OLD_ACK": "a segment for a connection it does not have (half-open)",
    "INVALID_SYN": "its accept queue was full (tcp_abort_on_overflow=1)",
    "TCP_ABORT_ON_MEMORY": "memory pressure (TCP buffers)",
}


def address_names(assessments: list[Assessment]) -> dict[str, str]:
    """Address -> host name, for the addresses exactly one checked host of this report has."""
    hosts = [HostEnds(a.host, frozenset(a.result.document.addresses) | {a.result.address}, a.result.document)
             for a in checked(assessments) if a.result.document is not None]
    return {address: host.host for address, host in address_owners(hosts).items()}


def _end(host: str, port: int | None) -> str:
    return f"{host}:{port}" if port is not None else host


def _connections(pair: ResetPair) -> str:
    """Whose connections, named from the receiver's side; a port None is a client's ephemeral one."""
    receiver, sender = pair.receiver, pair.sender
    if pair.sender_port is not None and pair.receiver_port is None:
        return f"{receiver}'s connections to {sender}:{pair.sender_port}"
    if pair.receiver_port is not None and pair.sender_port is None:
        return f"{receiver}'s connections from {sender} on port {pair.receiver_port}"
    return f"{receiver}'s connections {_end(receiver, pair.receiver_port)} ↔ {_end(sender, pair.sender_port)}"


def reset_why(pair: ResetPair) -> str:
    """The sender's reason in words: 'nothing listens on 9'."""
    main = next(iter(pair.reasons), None)
    if main == "NO_SOCKET":
        return (f"nothing listens on {pair.sender_port}" if pair.sender_port is not None
                else "it has no socket for the connection")
    if main in REASON_WHY:
        return REASON_WHY[main]
    if main in (None, "None"):
        return "its kernel gives no reason (before Linux 6.10)"
    return cause_title(pair.cause or "other").lower() + f" ({main})"


def pair_sentence(pair: ResetPair) -> str:
    """One sentence a pair: who reset whose connections, and what did it."""
    reasons = ", ".join(f"{reason} {n:,}" for reason, n in pair.reasons.items())
    counts = f"{pair.received:,} received, {pair.sent:,} sent" + (f": {reasons}" if reasons else "")
    in_front = IN_FRONT.format(host=pair.sender)
    if pair.verdict == PairVerdict.PAIRED:
        return f"{_connections(pair)} are reset by {pair.sender}'s kernel: {reset_why(pair)} ({counts})"
    if pair.verdict == PairVerdict.NOT_SENT:
        return (f"{_connections(pair)} are reset by {in_front}, not by {pair.sender}'s TCP stack: "
                f"{pair.receiver} received {pair.received:,}, {pair.sender}'s kernel sent none of them")
    if pair.verdict == PairVerdict.PARTLY_SENT:
        return (f"{_connections(pair)}: {pair.sent:,} of {pair.received:,} resets were sent by {pair.sender}'s "
                f"kernel ({reset_why(pair)}), the other {pair.received - pair.sent:,} by {in_front}")
    if pair.verdict == PairVerdict.NOT_RECEIVED:
        assassination = (": a time-wait assassination (the reset of a connecting socket killed a TIME_WAIT one, "
                         "which fires no receive)" if next(iter(pair.reasons), None) == "TCP_INVALID_ACK_SEQUENCE"
                         else " (its socket was gone or in TIME_WAIT, or they were dropped on the way)")
        return (f"{pair.sender}'s kernel sent {pair.sent:,} resets to {_end(pair.receiver, pair.receiver_port)} "
                f"from {_end(pair.sender, pair.sender_port)} ({reset_why(pair)}) that no socket of {pair.receiver} "
                f"received as a reset{assassination}")
    return f"{_connections(pair)}: {pair.receiver} received {pair.received:,} resets from {pair.sender}, unconfirmed"


def pair_lines(pair: ResetPair) -> list[tuple[str, str]]:
    """The sentence, then its evidence: counts, doubts, the sampled 4-tuples and their delay."""
    label = {PairVerdict.NOT_SENT: "not sent by a kernel", PairVerdict.PARTLY_SENT: "partly sent by a kernel"}
    lines = [(label.get(pair.verdict, "pair"), pair_sentence(pair))]
    lines += [("evidence", text) for text in pair.evidence]
    if pair.matched_sample:
        delay = (f"; the receive stamped {pair.delay_us[0]:+,.0f} … {pair.delay_us[1]:+,.0f} µs from the send"
                 if pair.delay_us else "")
        lines.append(("evidence", f"{pair.matched_sample:,} sampled resets matched by 4-tuple, e.g. "
                                  f"{pair.example}{delay}"))
    elif pair.example:
        lines.append(("evidence", f"e.g. {pair.example}"))
    return lines


def both_ends_lines(summary: FleetSummary) -> list[tuple[str, str]]:
    """The fleet-wide pairing: one summary line, then every pair with its evidence."""
    ends = summary.both_ends
    if not ends.received and not ends.pairs:
        return []
    verdicts = ends.by_verdict
    parts = [f"{verdicts.get(PairVerdict.PAIRED, 0):,} paired with the sender's kernel"]
    for verdict, words in ((PairVerdict.NOT_SENT, "sent by no kernel"), (PairVerdict.PARTLY_SENT, "partly sent"),
                           (PairVerdict.UNVERIFIED, "unconfirmed")):
        if verdicts.get(verdict):
            parts.append(f"{verdicts[verdict]:,} {words}")
    outside = ", ".join(f"{peer} ({n:,})" for peer, n in ends.outside_peers[:5])
    lines = [("both ends", f"{ends.received:,} resets received by hosts that traced them: {ends.from_fleet:,} from "
                           f"hosts of this sweep ({', '.join(parts)}), {ends.from_outside:,} from outside it"
                           + (f" ({outside})" if outside else ""))]
    for pair in ends.pairs:
        lines += pair_lines(pair)
    if ends.pairs_cut:
        lines.append(("pairs", f"{ends.pairs_cut:,} more pairs not shown (the JSON report has the counts above)"))
    return lines


def receiving_hosts(assessments: list[Assessment]) -> list[Assessment]:
    """Checked hosts whose connections were reset in the window, most resets first (bounded)."""
    def count(a: Assessment) -> int:
        received = a.evidence.received if a.evidence else None
        if received is None:
            return 0
        return received.resets if received.resets is not None else (received.attempt_fails or 0) + (received.estab_resets or 0)
    found = sorted((a for a in checked(assessments) if count(a) > 0), key=lambda a: (-count(a), a.host))
    return found[:MAX_RECEIVING_HOSTS]


def received_lines(a: Assessment, names: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """(label, line) pairs for one host's received side: from whom, on which connections, counters."""
    received = a.evidence.received if a.evidence else None
    if received is None:
        return []
    names = names or {}
    who = lambda address: f"{names[address]} ({address})" if address in names else address  # noqa: E731
    lines = []
    if received.resets is not None:
        peers = ", ".join(f"{who(peer)} {n:,}" for peer, n in received.peers[:5])
        lines.append(("received", f"{received.resets:,} resets received ({received.tier})"
                                  + (f" from {peers}" if peers else "")))
    for row in received.connections[:5]:
        peer = names.get(row["peer"], row["peer"])
        where = (f"to {peer}:{row['peer_port']}" if row["peer_port"] is not None and row["local_port"] is None
                 else f"on port {row['local_port']} from {peer}" if row["peer_port"] is None
                 else f"port {row['local_port']} ↔ {peer}:{row['peer_port']}")
        lines.append(("connections", f"{where}: {row['resets']:,}"))
    if received.flags:
        lines.append(("flags", ", ".join(f"{flag} {n:,}" for flag, n in sorted(received.flags.items()))
                               + " (RST+ACK answers a SYN; a bare RST hits a connection that carried data)"))
    counters = [f"AttemptFails +{received.attempt_fails:,} (connection attempts that failed: refused SYNs "
                f"among them)" if received.attempt_fails is not None else "",
                f"EstabResets +{received.estab_resets:,} (established connections reset, by either end)"
                if received.estab_resets is not None else ""]
    if any(counters):
        lines.append(("counters", ", ".join(text for text in counters if text)))
    lines.extend(("note", note) for note in received.notes)
    return lines
