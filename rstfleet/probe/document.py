"""The probe's document as typed records, built once from a document schema.py has checked.

Consumers (analysis, evidence) read these fields instead of indexing the JSON by key; the raw
document stays on the HostResult for the JSON report (the schema is unchanged). The trace,
capture, owners, netdata and exact-baseline sections keep their checked JSON shape: the cause,
capture and alert-rule code reads them as the probe wrote them (docs/report-schema.json).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ResetRow:
    """Resets of one key, counted on the host (probe/host/tally.py): a port is None where it was a
    client's ephemeral port, so the sender's and the receiver's rows of the same resets mirror."""
    direction: str                       # "sent" | "received"
    local: str                           # this host's address (0.0.0.0/:: for a wildcard listener's RST)
    local_port: int | None
    peer: str
    peer_port: int | None
    reason: str | None                   # the sender's reason; None on the received side
    count: int
    first_ts: float | None
    last_ts: float | None


@dataclass(frozen=True)
class SampledReset:
    """One reset from the host's bounded sample, with its full 4-tuple and timestamp."""
    direction: str
    ts: float | None
    local: str
    local_port: int | None
    peer: str
    peer_port: int | None
    reason: str | None


@dataclass(frozen=True)
class ProbeDocument:
    requested_s: float | None            # the window asked for
    measured_s: float                    # the window actually measured (counter snapshots apart)
    started_at: float | None             # epoch seconds of the first snapshot
    tcp_delta: dict                      # Tcp: counter -> growth over the window (None: went backwards)
    tcpext_delta: dict                   # TcpExt: counter -> growth
    baseline_per_s: float | None         # lifetime OutRsts / uptime
    sysctls: dict
    addresses: tuple[str, ...]           # this host's own addresses (trace and capture runs)
    notes: tuple[str, ...]
    trace: dict = field(default_factory=dict)      # {} when the tracepoint was not asked for
    capture: dict = field(default_factory=dict)
    owners: dict = field(default_factory=dict)
    resets: tuple[ResetRow, ...] = ()              # both directions, from the tracepoints
    reset_sample: tuple[SampledReset, ...] = ()
    netdata: dict = field(default_factory=dict)    # the host's Netdata agent, {} when not asked
    exact_baseline: dict = field(default_factory=dict)  # --baseline exact: the minute before the window

    @property
    def received_traced(self) -> bool:
        """True when tcp:tcp_receive_reset ran for the whole window on this host."""
        return bool(self.trace.get("available") and (self.trace.get("received") or {}).get("available"))

    @property
    def out_rsts(self) -> int | None:
        """The alert's own figure: resets sent during the window."""
        return self.tcp_delta.get("OutRsts")

    @classmethod
    def from_checked(cls, document: dict) -> "ProbeDocument":
        window = document["window"]
        return cls(requested_s=window.get("requested_s"), measured_s=window["measured_s"],
                   started_at=window.get("started_at"), tcp_delta=document["tcp"]["delta"],
                   tcpext_delta=document.get("tcpext_delta") or {},
                   baseline_per_s=(document.get("baseline") or {}).get("OutRsts_per_s_lifetime"),
                   sysctls=document.get("sysctls") or {},
                   addresses=tuple((document.get("facts") or {}).get("addresses") or ()),
                   notes=tuple(document.get("notes") or ()), trace=document.get("trace") or {},
                   capture=document.get("capture") or {}, owners=document.get("owners") or {},
                   resets=tuple(ResetRow(*row) for row in (document.get("trace") or {}).get("resets", [])),
                   reset_sample=tuple(SampledReset(direction, *event) for direction in ("sent", "received")
                                      for event in ((document.get("trace") or {}).get("sample") or {}).get(direction, [])),
                   netdata=document.get("netdata") or {},
                   exact_baseline=(document.get("baseline") or {}).get("exact") or {})
