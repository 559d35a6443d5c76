"""A Plan: one plain record of what a run will do, checked before any host is touched.

Built from the command line (``Plan.from_args(options)``, options being the parsed flags as a
plain mapping) or from a playbook play (``Plan.from_play(play, hosts, options)``); both go
through the same ``_checked`` rules, so ``--window 0`` and ``window: 0`` fail alike:

    Plan.from_args({... "window": 0 ...})  ->  PlanError("--window: must be > 0 and ≤ 3600 s, not 0")

A Plan holds the selected hosts (after inventory, limit and shard), the sweep's settings (window,
probe options, deadlines), triage's phase 2 when there is one, thresholds, SSH settings and
outputs. Nothing here opens a connection; the sweep stages read a Plan and nothing else.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from .analysis import Thresholds
from .expected import rules_for_hosts
from .playbook import load_expected
from .inventory import Host, Inventory, load_inventory, localhost_inventory
from .probe import needs_python
from .probe.host.limits import (BASELINE_DEFAULT, BASELINES, CAPTURE_BYTES, CONNECT_TIMEOUT_S, FAIL_ON,
                                FAIL_ON_DEFAULT, FORKS, MAX_CAPTURE_BYTES, MAX_CAPTURE_PACKETS, MAX_CAPTURE_S,
                                MAX_WINDOW_S, MIN_CAPTURE_BYTES, NETDATA_DEFAULT, PHASE2_TOP, PROBE_MARGIN_S,
                                SPIKE_FLOOR, measured_window, probe_lead_s)
from .probe.host.netdata import parse_agent_url
from .sweep.coverage import dig_argv
from .sweep.pool import SweepSettings
from .textsafe import printable
from .transport import SSHSettings, engine_problem
from .transport.target import checked_settings

HOST_PROBES = ("auto", "shell", "python")   # auto: python, the shell probe where python3 is missing
MIN_MAX_OUTPUT = 64 * 1024          # a probe document with trace flows needs tens of KiB
CAPTURE_READ_S_PER_BYTE = 1 / 4e6   # extra deadline for reading a capture back (4 MB/s)


class PlanError(ValueError):
    """What is wrong with the run's settings, named as the user wrote it: '--window: …'."""


@dataclass(frozen=True)
class ProbeOptions:
    """What the probe does on each host besides reading counters."""

    trace: bool = False
    trace_auto: bool = False         # trace where the host's kernel is its own and we are root
    capture_s: float = 0.0
    capture_packets: int = 0
    capture_bytes: int = CAPTURE_BYTES
    force_long_capture: bool = False
    owners: bool = False
    netdata: str = "off"                 # auto | off | a loopback URL: ask the host's Netdata agent
    baseline: str = BASELINE_DEFAULT     # lifetime | exact (+60 s: the minute before the window)

    @property
    def lead_s(self) -> float:
        return probe_lead_s(self.baseline, self.netdata)

    def argv(self) -> tuple[str, ...]:
        """The probe's command-line options (every value is ours, never text from a host)."""
        options = ["--trace"] if self.trace else ["--trace-auto"] if self.trace_auto else []
        if self.capture_s:
            options += ["--capture", repr(self.capture_s), "--capture-packets", str(self.capture_packets),
                        "--capture-bytes", str(self.capture_bytes)]
            if self.force_long_capture:
                options.append("--force-long-capture")
        if self.owners:
            options += ["--owners", "auto"]
        if self.netdata != "off":
            options += ["--netdata", self.netdata]
        if self.baseline != "lifetime":
            options += ["--baseline", self.baseline]
        return tuple(options)


@dataclass(frozen=True)
class Outputs:
    format: str = "table"
    path: str | None = None       # the --format report goes here; the table still to stdout
    quiet: bool = False
    run_dir: str = "rstfleet-runs"


@dataclass(frozen=True)
class Plan:
    """Everything a run will do; see the module docstring."""

    hosts: tuple[Host, ...]
    sweep: SweepSettings                 # the sweep, or triage's phase 1
    phase2: SweepSettings | None         # triage only: capture and owners on the worst hosts
    phase2_top: int
    thresholds: Thresholds
    fail_on: str
    ssh: SSHSettings
    outputs: Outputs
    name: str = ""                       # the play's name, for `run`
    warnings: tuple[str, ...] = ()       # said once per run before any host (ssh_config not followed)
    expected: dict = field(default_factory=dict, hash=False)   # host -> its expected-reset rules (expected.py)
    dig: tuple[str, ...] = ()            # triage: the command that digs into one host (coverage.py)
    dig_note: str = ""                   # what that command does not carry (a play's own rules)
    groups: frozenset = frozenset()      # the inventory's group names (a dig's -l must not name one)

    @property
    def window_s(self) -> float:
        return self.sweep.window_s

    @classmethod
    def from_args(cls, options: Mapping[str, Any], hosts: list[Host] | None = None,
                  groups: frozenset = frozenset()) -> "Plan":
        """The command line's plan; ``options`` holds its flags by destination name."""
        return _checked(dict(options), hosts, groups)

    @classmethod
    def from_play(cls, play, hosts: list[Host], options: Mapping[str, Any], index: int = 1,
                  plays: int = 1, groups: frozenset = frozenset()) -> "Plan":
        """A playbook play over the command line's options (the play's settings win; its
        expected_resets add to those of --expected)."""
        merged = dict(options, expected_rules=play.expected_resets)
        merged.update(window=play.window, warn=play.warn, crit=play.crit, spike_factor=play.spike_factor,
                      spike_floor=options.get("spike_floor", SPIKE_FLOOR), fail_on=play.fail_on, forks=play.forks or options.get("forks", FORKS),
                      become=play.become or options.get("become", False),
                      owners=play.owners and play.capture is None, capture=0.0, triage=False,
                      name=play.name)
        if play.capture:
            merged.update(triage=True, capture=play.capture.duration, capture_packets=play.capture.packets,
                          capture_bytes=play.capture.bytes, force_long_capture=play.capture.force,
                          top=play.capture.top, phase2_owners=play.owners)
        output = options.get("output")
        if output and plays > 1:
            stem, ext = os.path.splitext(output)     # a dot in a folder name is not an extension
            merged["output"] = f"{stem}-{index}{ext}"
        return _checked(merged, hosts, groups)


# --- hosts ---------------------------------------------------------------------------------------

def parse_shard(text: str) -> tuple[int, int]:
    """'2/5' -> (2, 5); PlanError otherwise."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise PlanError(f"--shard wants K/N like 2/5, not {text!r}") from None
    if not 1 <= k <= n:
        raise PlanError(f"--shard {text}: K must be between 1 and N")
    return k, n


def in_shard(hosts: list[Host], k: int, n: int) -> list[Host]:
    """Stable: a host's shard depends only on its name and N, not on inventory order or size."""
    return [h for h in hosts
            if int.from_bytes(hashlib.sha256(h.name.encode()).digest()[:8], "big") % n == k - 1]


def load_fleet(inventory: str | None) -> Inventory:
    """The inventory, or the implicit localhost; what it asks for and rstfleet will not honour
    is said once on stderr, before any host is touched."""
    fleet = load_inventory(inventory) if inventory else localhost_inventory()
    for warning in fleet.warnings:
        print(f"rstfleet: warning: {printable(warning, 2000)}", file=sys.stderr)
    return fleet


def select_hosts(inventory: Inventory, limit: str | None, shard: tuple[int, int] | None = None) -> list[Host]:
    hosts = inventory.select(limit)
    if not hosts:
        raise PlanError(f"no hosts in {inventory.source} match {limit or 'all'!r}")
    return in_shard(hosts, *shard) if shard else hosts


# --- the one rule set --------------------------------------------------------------------------

def _number(options: dict, key: str, flag: str, low: float, high: float | None = None,
            low_open: bool = False, integer: bool = False) -> float:
    value = options.get(key)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and integer:
        ok = float(value).is_integer()
    if ok:
        ok = (value > low if low_open else value >= low) and (high is None or value <= high)
    if not ok:
        bound = f"{'>' if low_open else '≥'} {low:g}" + (f" and ≤ {high:g}" if high is not None else "")
        kind = "an integer" if integer else "a number"
        raise PlanError(f"{flag}: must be {kind} {bound}, not {value!r}")
    return int(value) if integer else float(value)


def netdata_option(value) -> str:
    """--netdata: auto, off, or the agent's URL on the host's loopback (checked like the probe will)."""
    value = NETDATA_DEFAULT if value is None else value
    if value in ("auto", "off"):
        return value
    try:
        parse_agent_url(value)
    except ValueError as exc:
        raise PlanError(f"--netdata: must be auto, off or http://127.0.0.1:PORT (loopback only): {exc}") from None
    return value


def _checked(o: dict, hosts: list[Host] | None, groups: frozenset = frozenset()) -> Plan:
    """Validate every number and combination, then build the Plan; PlanError names the flag."""
    window = _number(o, "window", "--window", 0.0, MAX_WINDOW_S, low_open=True)
    forks = _number(o, "forks", "--forks", 1, None, integer=True)
    connect_given = o.get("connect_timeout") is not None
    if not connect_given:            # ssh_config's ConnectTimeout applies, else this default
        o["connect_timeout"] = CONNECT_TIMEOUT_S
    connect = _number(o, "connect_timeout", "--connect-timeout", 0.0, MAX_WINDOW_S, low_open=True)
    max_output = _number(o, "max_output", "--max-output", MIN_MAX_OUTPUT, None, integer=True)
    thresholds = Thresholds(_number(o, "warn", "--warn", 0.0, None, low_open=True),
                            _number(o, "crit", "--crit", 0.0, None, low_open=True),
                            _number(o, "spike_factor", "--spike-factor", 1.0),
                            _number(o, "spike_floor", "--spike-floor", 0.0))
    if thresholds.warn > thresholds.crit:
        raise PlanError(f"--warn ({thresholds.warn:g}/s) must not be above --crit ({thresholds.crit:g}/s)")
    fail_on = o.get("fail_on", FAIL_ON_DEFAULT)
    if fail_on not in FAIL_ON:
        raise PlanError(f"--fail-on: must be one of {', '.join(FAIL_ON)}, not {fail_on!r}")
    if o.get("trace") and o.get("no_trace"):
        raise PlanError("--trace and --no-trace contradict each other; give one")
    capture = _number(o, "capture", "--capture", 0.0, MAX_WINDOW_S)
    triage = bool(o.get("triage"))
    if triage and not capture:
        raise PlanError("--capture: triage's phase 2 needs a capture of at least 1 s")
    probe_capture = ProbeOptions()
    if capture:
        if capture > MAX_CAPTURE_S and not o.get("force_long_capture"):
            raise PlanError(f"--capture: a {capture:g} s capture is over the guide's 5 minutes; "
                            f"add --force-long-capture if you mean it")
        probe_capture = ProbeOptions(
            capture_s=_number(o, "capture", "--capture", 1.0, MAX_WINDOW_S),
            capture_packets=_number(o, "capture_packets", "--capture-packets", 1, MAX_CAPTURE_PACKETS,
                                    integer=True),
            capture_bytes=_number(o, "capture_bytes", "--capture-bytes", MIN_CAPTURE_BYTES,
                                  MAX_CAPTURE_BYTES, integer=True),
            force_long_capture=bool(o.get("force_long_capture")))
    top = _number(o, "top", "--top", 1, None, integer=True) if triage else PHASE2_TOP
    baseline = o.get("baseline") or BASELINE_DEFAULT
    if baseline not in BASELINES:
        raise PlanError(f"--baseline: must be one of {', '.join(BASELINES)}, not {baseline!r}")
    alert = {"netdata": netdata_option(o.get("netdata")), "baseline": baseline}
    no_trace = bool(o.get("no_trace"))

    host_probe = o.get("host_probe") or "auto"
    if host_probe not in HOST_PROBES:
        raise PlanError(f"--host-probe: must be one of {', '.join(HOST_PROBES)}, not {host_probe!r}")

    def settings(probe: ProbeOptions) -> SweepSettings:
        """The plain sweep reads counters only (the alert's figure, cheapest; the shell probe where
        python3 is missing, or everywhere with --host-probe shell); evidence runs add the tracepoint
        (measured: a tracefs instance costs ~80 ms wall per host) and need the Python probe."""
        probe = replace(probe, trace=(bool(o.get("trace")) or bool(probe.capture_s)) and not no_trace,
                        trace_auto=not no_trace and host_probe != "shell")
        if host_probe == "shell" and needs_python(probe.argv()):
            raise PlanError("--host-probe shell reads counters only: --trace, --capture, --owners, "
                            "--netdata URL, --baseline exact and triage's phase 2 need the Python probe")
        engine = ("python" if needs_python(probe.argv()) or host_probe == "python" else
                  "shell" if host_probe == "shell" else "python-or-shell")
        margin = PROBE_MARGIN_S + (probe.capture_bytes * CAPTURE_READ_S_PER_BYTE if probe.capture_s else 0.0)
        return SweepSettings(window_s=measured_window(window, probe.capture_s), forks=forks,
                             connect_timeout_s=connect, margin_s=margin,
                             max_output=max(max_output, 2 * probe.capture_bytes if probe.capture_s else 0),
                             probe_options=probe.argv(), lead_s=probe.lead_s, host_probe=engine)

    # The alert rule's inputs (agent, exact minute) belong to the verdict: phase 1, never phase 2.
    if triage:
        sweep, phase2 = settings(ProbeOptions(**alert)), settings(replace(probe_capture, owners=bool(o.get("phase2_owners", True))))
    else:
        sweep, phase2 = settings(replace(probe_capture, owners=bool(o.get("owners")), **alert)), None
    fmt = o.get("format") or "table"
    outputs = Outputs(fmt, o.get("output"), bool(o.get("quiet")), o.get("run_dir") or "rstfleet-runs")
    engine = o.get("ssh_engine") or "auto"
    if engine_problem(engine):
        raise PlanError(f"--ssh-engine: {engine_problem(engine)}")
    ssh = SSHSettings(user=o.get("user"), key_file=o.get("private_key"),
                      known_hosts_files=tuple(o.get("known_hosts") or ()),
                      accept_new_host_keys=bool(o.get("accept_new_host_keys")), connect_timeout=connect,
                      connect_timeout_given=connect_given,
                      ssh_config_path=o.get("ssh_config"), become=bool(o.get("become") or o.get("ask_become_pass")),
                      ask_become_pass=bool(o.get("ask_become_pass")), engine=engine)
    declared = tuple(o.get("expected_rules") or ()) + (load_expected(o["expected"]) if o.get("expected") else ())
    if hosts is None:
        shard = o.get("shard")
        if isinstance(shard, str):
            shard = parse_shard(shard)
        fleet = load_fleet(o.get("inventory"))
        hosts, groups = select_hosts(fleet, o.get("limit"), shard), frozenset(fleet.groups)
    expected, unmatched = rules_for_hosts(hosts, declared)
    groups = frozenset(groups) | {g for h in hosts for g in h.groups}
    dig = dig_argv(dict(o, connect_timeout=connect if connect_given else None)) if triage else ()
    ssh, warnings = checked_settings(ssh, hosts)   # the transports connect with these targets
    return Plan(tuple(hosts), sweep, phase2, top, thresholds, fail_on, ssh, outputs, o.get("name") or "",
                warnings + tuple(unmatched), expected, dig,
                "the play's expected_resets are not applied by this command" if o.get("expected_rules") else "",
                groups)

