"""Carry out a Plan: the sweep (or triage's two phases) with live progress, captures stored."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from ..evidence.captures import store_captures
from ..inventory import Host
from ..results import HostResult, Status
from ..transport import Transport
from .pool import SweepSettings, sweep
from .progress import Progress
from .triage import triage


@dataclass
class Outcome:
    results: list[HostResult]     # one per planned host, in plan order
    phase2_hosts: list[str] | None
    wall_s: float

    @property
    def partial(self) -> bool:
        """The run was interrupted: some hosts are cancelled."""
        return any(r.status == Status.CANCELLED for r in self.results)


def run_plan(plan, transport_for: Callable[[Host], Transport]) -> Outcome:
    started, stamp = time.monotonic(), time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())

    def run_phase(hosts: list[Host], settings: SweepSettings) -> list[HostResult]:
        """One fan-out, with live progress when a person is watching."""
        progress = Progress.for_terminal(len(hosts), settings.window_s, plan.outputs.quiet)
        if progress:
            progress.start()
        try:
            return sweep(hosts, transport_for, settings, on_result=progress.on_result if progress else None)
        finally:
            if progress:
                progress.close()

    if plan.phase2 is not None:
        results, phase2_hosts = triage(plan, run_phase)
    else:
        results, phase2_hosts = run_phase(list(plan.hosts), plan.sweep), None
    store_captures(results, plan.outputs.run_dir, stamp)
    return Outcome(results, phase2_hosts, time.monotonic() - started)
