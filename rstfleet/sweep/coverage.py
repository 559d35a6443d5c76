r"""Phase 2's coverage: which hosts triage digs into, and for each host it left out, why and the
exact command that digs into it.

By default phase 2 covers every host at or over warn, worst first, up to a stated bound
(``--top``, default limits.PHASE2_TOP); a fleet where no host is at or over warn still gets
evidence from its worst hosts that sent resets (at most limits.PHASE2_QUIET). A host at or over
warn that phase 2 did not dig into — the bound was reached, Ctrl-C, its phase 2 failed — or a
host phase 1 could not check is never silently shallower: it carries a note and a command,

    phase 2 dug into the 3 worst of 6 hosts at or over warn (--top 3); h05 ranked #5 in phase 1
    rstfleet triage -i inventories/lab.yml -l h05 --capture 60

built from this run's own values only: numbers the Plan validated, and the operator's own paths
and host names, each word shell-quoted (shlex.join); a word with a control character, or a host
name that is also a pattern or a group (so ``-l NAME`` would not select exactly it), gets no
command, and the note says why.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Iterable, Mapping

from ..analysis import Assessment, Verdict
from ..probe.host import limits

AT_OR_OVER_WARN = (Verdict.WARN, Verdict.CRIT)
_PATTERN_CHARS = re.compile(r"[\s,:&!~*?\[\]]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class LeftOut:
    """A host phase 2 did not dig into (fully): why, and the command that would."""

    host: str
    why: str
    argv: tuple[str, ...] = ()          # () when no exact command can be printed (why says so)

    @property
    def line(self) -> str:
        return shlex.join(self.argv) if self.argv else ""

    def to_json(self) -> dict:
        return {"host": self.host, "why": self.why, "argv": list(self.argv), "line": self.line}


def phase2_selection(ranked: list[Assessment], bound: int) -> tuple[list[str], dict[str, str]]:
    """(hosts phase 2 digs into, {host left out: why}) from phase 1's ranking, worst first."""
    alerting = [a for a in ranked if a.rank is not None and a.verdict in AT_OR_OVER_WARN]
    if alerting:
        chosen = [a.host for a in alerting[:bound]]
        left = {a.host: f"phase 2 dug into the {bound} worst of {len(alerting)} hosts at or over warn "
                        f"(--top {bound}); this one ranked #{a.rank} in phase 1"
                for a in alerting[bound:]}
    else:
        quiet = [a for a in ranked if a.rank is not None and a.counted_per_s > 0]
        chosen, left = [a.host for a in quiet[:min(bound, limits.PHASE2_QUIET)]], {}
    for a in ranked:
        if a.rank is None:
            left[a.host] = f"phase 1 could not check it ({a.result.status}: {a.result.reason[:200]})"
    return chosen, left


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def dig_argv(options: Mapping) -> tuple[str, ...]:
    """``rstfleet triage`` with this run's values, without a limit (left-out hosts add ``-l``).

    Carried: inventory, connection and evidence settings, thresholds and the expected-resets file
    when they differ from the defaults; not carried: output files and formats (the dig must not
    overwrite this run's report), --limit, --shard and --top (``-l HOST`` picks the one host).
    """
    argv = ["rstfleet", "triage"]
    for key, flag in (("inventory", "-i"), ("user", "-u"), ("private_key", "--private-key"),
                      ("ssh_config", "--ssh-config"), ("expected", "--expected")):
        if options.get(key):
            argv += [flag, str(options[key])]
    for path in options.get("known_hosts") or ():
        argv += ["--known-hosts", str(path)]
    for key, flag in (("become", "-b"), ("ask_become_pass", "-K"), ("accept_new_host_keys", "--accept-new-host-keys"),
                      ("no_trace", "--no-trace"), ("force_long_capture", "--force-long-capture")):
        if options.get(key):
            argv.append(flag)
    defaults = {"window": limits.WINDOW_S, "warn": limits.WARN, "crit": limits.CRIT,
                "spike_factor": limits.SPIKE_FACTOR, "capture_packets": limits.CAPTURE_PACKETS,
                "capture_bytes": limits.CAPTURE_BYTES, "max_output": limits.MAX_OUTPUT,
                "connect_timeout": None}
    for key, default in defaults.items():
        value = options.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value != default:
            argv += ["--" + key.replace("_", "-"), _number(value)]
    if options.get("fail_on", limits.FAIL_ON_DEFAULT) != limits.FAIL_ON_DEFAULT:
        argv += ["--fail-on", str(options["fail_on"])]
    if (options.get("run_dir") or "rstfleet-runs") != "rstfleet-runs":
        argv += ["--run-dir", str(options["run_dir"])]
    argv += ["--capture", _number(options.get("capture") or limits.CAPTURE_S)]
    return tuple(argv)


def dig_command(base: tuple[str, ...], host: str, groups: Iterable[str]) -> tuple[tuple[str, ...], str]:
    """(argv digging into exactly ``host``, or () and why not)."""
    if not base:
        return (), "no dig command for a run that is not a triage"
    if _PATTERN_CHARS.search(host) or host in ("all", "ungrouped") or host in set(groups):
        return (), (f"no exact command: the name {host!r} is also a host pattern or a group, so -l "
                    f"would select more; give a pattern that selects only it")
    if any(_CONTROL.search(word) for word in (*base, host)):
        return (), "no command printed: a value of this run holds control characters"
    limit = ("--limit=" + host,) if host.startswith("-") else ("-l", host)
    at = 4 if base[2:3] == ("-i",) else 2          # rstfleet triage [-i INV] -l HOST ...
    return base[:at] + limit + base[at:], ""


def left_out_notes(phase2, ranked: list[Assessment], plan) -> list[LeftOut]:
    """Every host phase 2 did not fully dig into, in the report's rank order, with its command.
    ``phase2`` is triage's Phase2 (what became of phase 2 on each host); ``plan`` gives the dig
    command's base (Plan.dig), what it does not carry (Plan.dig_note) and the group names."""
    why = dict(phase2.left_out)
    why.update({host: "phase 2 stopped early (Ctrl-C): its evidence is the packets so far"
                for host in phase2.stopped_early})
    why.update({host: "phase 2 interrupted (Ctrl-C) before this host sent its capture"
                for host in phase2.cancelled})
    why.update({host: f"phase 2 failed: {reason}" for host, reason in phase2.failed.items()})
    notes = []
    for a in ranked:
        if a.host in why:
            argv, problem = dig_command(plan.dig, a.host, plan.groups)
            caveats = [text for text in (problem, plan.dig_note if argv else "") if text]
            notes.append(LeftOut(a.host, "; ".join([why[a.host], *caveats]), argv))
    return notes
