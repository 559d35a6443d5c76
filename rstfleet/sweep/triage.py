"""Triage, the guide's two steps for a fleet: sweep everyone, then dig into the worst hosts.

Phase 1 measures every host over the alert's window; phase 2 captures RSTs and looks up the
owners of the top ports on every host at or over warn, worst first, up to ``top`` (coverage.py
chooses, and says for each host left out why and how to dig into it), in parallel. Phase 1's rate
stays the host's rate (it is the alert's window); phase 2 adds evidence to it.

Ctrl-C: during phase 1 or between the phases, phase 2 does not start (no host is named as dug
into); during phase 2, captures are asked to finish early (pool.py) and each host says whether
its phase 2 finished, stopped early with the packets so far, or was cancelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..analysis import assess
from ..inventory import Host
from ..results import HostResult, Status
from .coverage import phase2_selection
from .interrupt import Interrupt
from .pool import SweepSettings, run_deadline_s

RunPhase = Callable[[list[Host], SweepSettings], list[HostResult]]


@dataclass
class Phase2:
    """What became of phase 2 on each host it dug into."""

    finished: list[str] = field(default_factory=list)
    stopped_early: list[str] = field(default_factory=list)   # Ctrl-C: the packets so far kept
    cancelled: list[str] = field(default_factory=list)       # Ctrl-C: nothing of phase 2 kept
    failed: dict[str, str] = field(default_factory=dict)     # host -> "timeout: …"
    left_out: dict[str, str] = field(default_factory=dict)   # not dug into: host -> why

    @classmethod
    def of(cls, second: list[HostResult], left_out: dict[str, str] | None = None) -> "Phase2":
        fate = cls(left_out=dict(left_out or {}))
        for result in second:
            early = result.probe is not None and result.probe["window"].get("stopped_early")
            if result.status not in (Status.OK, Status.CANCELLED):
                fate.failed[result.host] = f"{result.status}: {result.reason[:200]}"
                continue
            (fate.cancelled if result.status == Status.CANCELLED else
             fate.stopped_early if early else fate.finished).append(result.host)
        return fate


def merge_phase2(first: HostResult, second: HostResult) -> HostResult:
    """Keep phase 1's rate (the alert's window) and add phase 2's evidence to it."""
    if second.status != Status.OK or not second.probe or not first.probe:
        if first.probe is not None:
            first.probe.setdefault("notes", []).append(
                "phase 2 (capture) interrupted (Ctrl-C) before this host sent its capture: none of "
                "it is kept" if second.status == Status.CANCELLED
                else f"phase 2 (capture) failed: {second.status}: {second.reason}")
        return first
    probe = dict(first.probe)
    for key in ("trace", "capture", "owners"):
        if key in second.probe:
            probe[key] = second.probe[key]
    probe["phase2_window"] = second.probe.get("window")
    probe["notes"] = list(first.probe.get("notes", [])) + [f"phase 2: {note}" for note in second.probe.get("notes", [])]
    return HostResult(first.host, first.address, first.status, first.reason, probe,
                      first.elapsed_s + second.elapsed_s, first.groups)


def worst_hosts(results: list[HostResult], plan) -> tuple[list[str], dict[str, str]]:
    """(hosts phase 2 digs into, {host left out: why}), by phase 1's ranking (coverage.py)."""
    return phase2_selection(assess(results, plan.thresholds, plan.expected), plan.phase2_top)


def triage(plan, run_phase: RunPhase, interrupt: Interrupt | None = None) -> tuple[list[HostResult], Phase2]:
    """(every host's result, what became of phase 2). Phase 2 never starts after Ctrl-C."""
    interrupt = interrupt or Interrupt()
    hosts = list(plan.hosts)
    results = run_phase(hosts, plan.sweep)
    worst, left_out = worst_hosts(results, plan)
    if interrupt.is_set():
        left_out.update({name: "Ctrl-C before phase 2 started" for name in worst})
        return results, Phase2(left_out=left_out)
    if not worst:
        return results, Phase2(left_out=left_out)
    by_name = {h.name: h for h in hosts}
    second = run_phase([by_name[name] for name in worst], plan.phase2)
    by_host = {r.host: r for r in second}
    return ([merge_phase2(r, by_host[r.host]) if r.host in by_host else r for r in results],
            Phase2.of(second, left_out))


def triage_banner(plan) -> str:
    """What triage will do and its bound, said before phase 1 starts."""
    bound = (run_deadline_s(len(plan.hosts), plan.sweep.forks, plan.sweep)
             + run_deadline_s(plan.phase2_top, plan.phase2.forks, plan.phase2))
    return (f"triage: phase 1 sweeps {len(plan.hosts)} host(s) for {plan.sweep.window_s:g} s, phase 2 "
            f"captures {plan.phase2.window_s:g} s on every host at or over warn, worst first, at most "
            f"{plan.phase2_top} (--top); done within {bound:.0f} s")
