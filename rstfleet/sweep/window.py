"""One window for the fleet: when the probes start, and what the windows they measured span.

**The start.** Hosts are reached one handshake at a time per fork, so the last host is reached
seconds after the first. Run each probe as soon as its host is reached and the windows start as
far apart as the connection ramp is long (measured on main: 13 s for 500 lab hosts with `-f 500`).
So the pool holds every reached session until the handshakes are done, then picks one start
instant a short lead ahead and hands it to every probe (`--start-at`); each waits for it and takes
its first snapshot then. The lead covers the exec burst on the controller — opening a channel and
sending the probe to every held session — which costs about half the CPU of the handshakes
(measured: 0.92 s against 1.81 s for 500 lab hosts), so: START_LEAD_S + START_EXEC_SHARE x the
handshakes' CPU, at most START_LEAD_MAX_S and half the window. A host whose probe is not running by
then (a slow host, or on the lab, hosts that share the controller's 2 cores) starts late, at once.

**The go.** That exec burst still made the windows start apart: measured on main, 500 lab hosts'
probes began 10.8 s apart, because opening 500 channels, sending 500 payloads and starting 500
Pythons on 2 shared cores takes longer than any lead. So over SSH (a transport with start()) each
probe is started right after its host's handshake with `--start-on-stdin` and does its set-up
while the other hosts are reached; when no handshake is left the pool picks the start and each
session sends one line, `go EPOCH START_IN` (probe/host/go.py). The lead then covers only writing
those lines: GO_LEAD_S + GO_SEND_S per held session (go_lead_s; 500 lab hosts: starts 0.33 s
apart with 1 ms a session, 0.85 s with 0.5 ms). A probe with no go (Ctrl-C, the
orchestrator killed) sees its stdin end and exits, leaving nothing behind.

**Stragglers.** A dead host that drops packets holds its handshake for the whole connect timeout.
Once no host waits for a handshake slot, handshakes that have run STRAGGLER_MIN_S and twice the
slowest successful one are not waited for: the others start, the straggler starts when reached.

**The span.** From each measured document (started_at, measured_s — the host's clock): the
earliest start, the latest end, and whether one instant lies inside every window (the latest start
before the earliest end). Hosts' clocks on a real fleet agree to NTP's milliseconds; the probe
waits for the start by its own clock but never longer than the controller asked (`--start-in`),
so a host whose clock is behind starts at most the delivery time late.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from ..probe.host.limits import (GO_LEAD_S, GO_SEND_S, START_EXEC_SHARE, START_LEAD_MAX_S, START_LEAD_S,
                                 STRAGGLER_MIN_S)


@dataclass(frozen=True)
class StartInstant:
    """The common start, on both clocks: wall (sent to the probes) and monotonic (deadlines)."""
    wall: float
    monotonic: float

    @classmethod
    def after(cls, lead_s: float) -> "StartInstant":
        """``lead_s`` from now, to the millisecond the probes are told."""
        wall, mono = time.time() + lead_s, time.monotonic() + lead_s
        return cls(round(wall, 3), mono + round(wall, 3) - wall)

    def probe_options(self) -> list[str]:
        """`--start-at EPOCH --start-in SECONDS`: the second, counted from now, bounds the wait
        on a host whose clock is behind."""
        return ["--start-at", f"{self.wall:.3f}", "--start-in", f"{max(0.0, self.wall - time.time()):.3f}"]

    def go_line(self) -> bytes:
        """The go for a probe started before the start was known (module docstring)."""
        return f"go {self.wall:.3f} {max(0.0, self.wall - time.time()):.3f}\n".encode("ascii")

    def shell_delay_s(self) -> float:
        """The shell probe has no sub-second wall clock in POSIX sh: it sleeps this long first."""
        return max(0.0, self.wall - time.time())


def start_lead_s(handshake_cpu_s: float, window_s: float) -> float:
    """How far ahead of now the common start is put (module docstring).

    >>> start_lead_s(1.81, 10.0)      # 500 lab hosts' handshakes
    1.586
    >>> start_lead_s(60.0, 10.0)      # capped: half the window
    5.0
    """
    lead = START_LEAD_S + START_EXEC_SHARE * max(0.0, handshake_cpu_s)
    return round(min(lead, START_LEAD_MAX_S, window_s / 2), 3)


def go_lead_s(sessions: int, window_s: float) -> float:
    """The lead when every held probe already runs and waits for its go line (module docstring).

    >>> go_lead_s(500, 10.0)
    0.8
    """
    return round(min(GO_LEAD_S + GO_SEND_S * max(0, sessions), START_LEAD_MAX_S, window_s / 2), 3)


def only_stragglers_left(running_since: list[float], slowest_done_s: float, now: float) -> bool:
    """True when every handshake still running is a straggler (module docstring); the caller
    checks that no host is still waiting for a handshake slot."""
    cutoff = max(STRAGGLER_MIN_S, 2 * slowest_done_s)
    return all(now - began > cutoff for began in running_since)


@dataclass
class FleetWindow:
    """What the fleet's windows spanned; ``groups`` > 1 when the fleet was split (``split_reason``)."""
    hosts_measured: int
    earliest_start: float | None = None      # epoch seconds, the hosts' clocks
    latest_start: float | None = None
    earliest_end: float | None = None
    latest_end: float | None = None
    overlap: bool = False                    # one instant lies inside every measured window
    groups: int = 1
    split_reason: str = ""

    @property
    def span_s(self) -> float | None:
        if self.earliest_start is None or self.latest_end is None:
            return None
        return self.latest_end - self.earliest_start

    @property
    def start_spread_s(self) -> float | None:
        if self.earliest_start is None or self.latest_start is None:
            return None
        return self.latest_start - self.earliest_start

    def as_dict(self) -> dict:
        out = asdict(self)
        out.update(span_s=self.span_s, start_spread_s=self.start_spread_s)
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}


def fleet_window(documents: list[dict], groups: int = 1, split_reason: str = "") -> FleetWindow:
    """The span of the measured windows (probe documents' window.started_at + measured_s)."""
    windows = []
    for document in documents:
        window = (document or {}).get("window") or {}
        started, measured = window.get("started_at"), window.get("measured_s")
        if isinstance(started, (int, float)) and isinstance(measured, (int, float)):
            windows.append((float(started), float(started) + float(measured)))
    result = FleetWindow(len(windows), groups=groups, split_reason=split_reason)
    if windows:
        starts, ends = [s for s, _ in windows], [e for _, e in windows]
        result.earliest_start, result.latest_start = min(starts), max(starts)
        result.earliest_end, result.latest_end = min(ends), max(ends)
        result.overlap = max(starts) <= min(ends)
    return result
