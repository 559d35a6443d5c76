"""Triage, the guide's two steps for a fleet: sweep everyone, then dig into the worst hosts.

Phase 1 measures every host over the alert's window; phase 2 captures RSTs and looks up the
owners of the top ports on the ``top`` worst hosts that sent resets, in parallel. Phase 1's rate
stays the host's rate (it is the alert's window); phase 2 adds evidence to it.
"""

from __future__ import annotations

from typing import Callable

from ..analysis import assess
from ..inventory import Host
from ..results import HostResult, Status
from .pool import SweepSettings

RunPhase = Callable[[list[Host], SweepSettings], list[HostResult]]


def merge_phase2(first: HostResult, second: HostResult) -> HostResult:
    """Keep phase 1's rate (the alert's window) and add phase 2's evidence to it."""
    if second.status != Status.OK or not second.probe or not first.probe:
        if first.probe is not None:
            first.probe.setdefault("notes", []).append(
                f"phase 2 (capture) failed: {second.status}: {second.reason}")
        return first
    probe = dict(first.probe)
    for key in ("trace", "capture", "owners"):
        if key in second.probe:
            probe[key] = second.probe[key]
    probe["phase2_window"] = second.probe.get("window")
    return HostResult(first.host, first.address, first.status, first.reason, probe,
                      first.elapsed_s + second.elapsed_s, first.groups)


def worst_hosts(results: list[HostResult], plan) -> list[str]:
    """The ``plan.phase2_top`` worst hosts that sent resets, by phase 1's ranking."""
    ranked = assess(results, plan.thresholds)
    return [a.host for a in ranked
            if a.rank is not None and (a.resets_sent_per_s or 0) > 0][:plan.phase2_top]


def triage(plan, run_phase: RunPhase) -> tuple[list[HostResult], list[str]]:
    """(every host's result, the hosts phase 2 dug into). No phase 2 after an interrupt."""
    hosts = list(plan.hosts)
    results = run_phase(hosts, plan.sweep)
    worst = worst_hosts(results, plan)
    if not worst or any(r.status == Status.CANCELLED for r in results):
        return results, worst
    by_name = {h.name: h for h in hosts}
    second = {r.host: r for r in run_phase([by_name[name] for name in worst], plan.phase2)}
    return [merge_phase2(r, second[r.host]) if r.host in second else r for r in results], worst


def triage_banner(plan) -> str:
    """What triage will do and its bound, said before phase 1 starts."""
    bound = plan.sweep.host_budget_s + plan.phase2.host_budget_s + 10
    return (f"triage: phase 1 sweeps {len(plan.hosts)} host(s) for {plan.sweep.window_s:g} s, phase 2 "
            f"captures {plan.phase2.window_s:g} s on the worst {plan.phase2_top}; done within {bound:.0f} s")
