"""Carry out a Plan: the sweep (or triage's two phases) with live progress, captures stored, and
the reports written whole — also after Ctrl-C, marked partial (interrupt.py says how it works)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace
from typing import Callable

from ..analysis import EXIT_INTERRUPTED, assess, exit_code
from ..evidence.captures import store_captures
from ..inventory import Host
from ..report import emit
from ..results import HostResult, Status
from ..transport import Transport
from .coverage import left_out_notes
from .interrupt import Interrupt
from .gc_policy import fewer_collections
from .pool import SweepSettings, sweep_fleet
from .progress import Progress
from .triage import Phase2, triage
from .window import fleet_window


@dataclass
class Outcome:
    results: list[HostResult]     # one per planned host, in plan order
    phase2: Phase2 | None         # triage only: what became of phase 2 on each host
    wall_s: float
    interrupted: bool = False
    fleet_window: dict | None = None   # the sweep's (triage: phase 1's) window span, window.FleetWindow

    @property
    def partial(self) -> bool:
        """Ctrl-C cut the run: some host is cancelled or stopped early."""
        return self.interrupted or any(r.status == Status.CANCELLED for r in self.results)


def run_plan(plan, transport_for: Callable[[Host], Transport], interrupt: Interrupt | None = None) -> Outcome:
    started, stamp = time.monotonic(), time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    interrupt = interrupt or Interrupt()
    sweeps = []

    def run_phase(hosts: list[Host], settings: SweepSettings) -> list[HostResult]:
        """One fan-out, with live progress when a person is watching."""
        progress = Progress.for_terminal(len(hosts), settings.window_s, plan.outputs.quiet)
        if progress:
            progress.start()
        try:
            with fewer_collections():
                sweeps.append(sweep_fleet(hosts, transport_for, settings,
                                          on_result=progress.on_result if progress else None, interrupt=interrupt))
            return sweeps[-1].results
        finally:
            if progress:
                progress.close()

    if plan.phase2 is not None:
        results, phase2 = triage(plan, run_phase, interrupt)
    else:
        results, phase2 = run_phase(list(plan.hosts), plan.sweep), None
    store_captures(results, plan.outputs.run_dir, stamp)
    first = sweeps[0] if sweeps else None
    window = fleet_window([r.probe for r in first.results], first.groups, first.split_reason) if first else None
    return Outcome(results, phase2, time.monotonic() - started, interrupt.is_set(),
                   window.as_dict() if window else None)


def interruption_summary(outcome: Outcome) -> str:
    """One line for stderr: what Ctrl-C left measured, stopped early and cancelled."""
    results = outcome.results
    cancelled = sum(r.status == Status.CANCELLED for r in results)
    line = (f"rstfleet: interrupted (Ctrl-C): {len(results) - cancelled} of {len(results)} host(s) "
            f"measured, {cancelled} cancelled")
    phase2 = outcome.phase2
    if phase2 is not None:
        parts = [f"{label} on {', '.join(names)}" for label, names in (
            ("finished", phase2.finished), ("stopped early, the packets so far kept,", phase2.stopped_early),
            ("cancelled", phase2.cancelled)) if names]
        line += "; phase 2 " + ("; ".join(parts) if parts else "did not run")
    else:
        early = [r.host for r in results if r.probe and r.probe["window"].get("stopped_early")]
        line += f"; stopped early, what they measured kept: {', '.join(early)}" if early else ""
    return line


def report_outcome(plan, outcome: Outcome, interrupt: Interrupt) -> int:
    """Assess and write the reports; the exit code. A Ctrl-C while they are written does not cut
    them (the Interrupt only counts it): the report file is then written again, marked partial."""
    def write(outputs, partial: bool) -> int:
        assessments = assess(outcome.results, plan.thresholds, plan.expected)
        code = EXIT_INTERRUPTED if partial else exit_code(assessments, plan.fail_on)
        meta = {"window_s": plan.window_s, "wall_s": round(outcome.wall_s, 3), "exit_code": code,
                "partial": partial, "expected_rules": plan.expected, "ssh_engine": plan.ssh.engine}
        if outcome.phase2 is not None:
            meta["phase2_hosts"] = outcome.phase2.finished
            meta["phase2_left_out"] = left_out_notes(outcome.phase2, assessments, plan)
            meta["phase2_bound"] = plan.phase2_top
        if outcome.fleet_window is not None:
            meta["fleet_window"] = outcome.fleet_window
        emit(outputs, assessments, plan.thresholds, meta)
        return code

    partial = outcome.partial or interrupt.is_set()
    code = write(plan.outputs, partial)
    if not partial and interrupt.is_set():
        code = write(replace(plan.outputs, quiet=True), True) if plan.outputs.path else EXIT_INTERRUPTED
    if code == EXIT_INTERRUPTED:
        print(interruption_summary(outcome), file=sys.stderr)
    return code
