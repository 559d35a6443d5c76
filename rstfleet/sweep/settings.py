"""What a sweep is asked to do (SweepSettings) and what it did as a whole (Sweep)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..probe.host.limits import CONNECT_TIMEOUT_S, FORKS, PROBE_MARGIN_S, WINDOW_S
from ..results import PROBE_KIND, HostResult
from ..transport import DEFAULT_MAX_OUTPUT


@dataclass
class SweepSettings:
    window_s: float = WINDOW_S
    forks: int = FORKS                    # handshakes in flight (not sessions held: sessions.py)
    connect_timeout_s: float = CONNECT_TIMEOUT_S
    margin_s: float = PROBE_MARGIN_S         # time allowed beyond the window for python start-up and reply
    max_output: int = DEFAULT_MAX_OUTPUT
    lead_s: float = 0.0                   # probe time besides the window (limits.probe_lead_s)
    probe_options: tuple[str, ...] = ("--trace-auto",)  # or ("--trace",), ("--capture", "60", ...), ()
    host_probe: str = "python-or-shell"   # or "python", or "shell" (probe/shell.py: counters only)
    document_kind: str = PROBE_KIND       # the document the probe must print ("rstfleet-check": --check)
    sessions: int | None = None           # cap on sessions held at once (None: what the machine allows)

    @property
    def host_budget_s(self) -> float:
        """The probe's bound from the common start: connect + window + lead (exact baseline,
        agent) + margin (probe_run.py)."""
        return self.connect_timeout_s + self.window_s + self.lead_s + self.margin_s

    @property
    def handshake_budget_s(self) -> float:
        """The handshake's bound: the TCP connect, the banner, the key exchange and the
        authentication each get the connect timeout (transport/ssh.py)."""
        return 4 * self.connect_timeout_s

    @property
    def aligned(self) -> bool:
        """Windows are worth aligning; `rstfleet check` has none."""
        return self.document_kind == PROBE_KIND

    @property
    def finishes_early_on_interrupt(self) -> bool:
        """Captures are worth keeping: on Ctrl-C their probes are asked to finish early."""
        return "--capture" in self.probe_options


@dataclass
class Sweep:
    results: list[HostResult]                # one per host, in inventory order
    groups: int = 1                          # successive window groups (1: one window)
    split_reason: str = ""                   # why there was more than one
    sessions: int = 0                        # sessions held at once at most (the bound used)
    starts: list[float] = field(default_factory=list)   # each group's common start (epoch s)
