"""`rstfleet check`: before the incident, can every host give rstfleet everything? (`ansible -m ping`)

The sweep's own pool and transports run the probe's `--check` mode (probe/host/check.py: facts and
tracefs, no window), so a host is reached exactly as a sweep would reach it. Each host becomes a
row of eight checks, in the order they can fail; a check after the one that failed is "-" (not
tried), never a guess:

    host  reach  host key  auth  python  root  tcpdump  lsof  tracefs    ready
    h01   ok     ok        ok    3.11.2  yes   yes      yes   mountable  ready
    h03   no     -         -     -       -     -        -     -          no: reach
    h05   ok     ok        ok    3.11.2  yes   no       yes   mounted    no: tcpdump

followed by what each missing check means and what to do. "ready" means every evidence tier works:
exit 0 when every host is ready, 8 (the sweep's "hosts missed" bit) when some are not, 2 for an
input error before any host is touched. Rows are built by `readiness` (pure); `run_check` does I/O.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field

from .analysis import EXIT_HOSTS_MISSED, EXIT_OK, Thresholds
from .inventory import Host
from .probe.host.facts import TOOL_DIRS
from .probe.host.limits import CHECK_MARGIN_S, WINDOW_S
from .results import CHECK_KIND, HostResult, Status

CHECKS = ("reach", "host key", "auth", "python", "root", "tcpdump", "lsof", "tracefs")
SSH_CHECKS = CHECKS[:3]
OK, MISSING, UNTRIED, NOT_APPLICABLE = "ok", "missing", "untried", "n/a"
EXIT_INTERRUPTED = 130          # as cli.py's: Ctrl-C before every host answered
REPORT_SCHEMA = "rstfleet.check/1"
# The status a host ended with -> the first check that failed (the ones before it passed).
FAILED_AT = {Status.UNREACHABLE: "reach", Status.TIMEOUT: "reach", Status.HOST_KEY_REJECTED: "host key",
             Status.AUTH_FAILED: "auth", Status.NO_PYTHON: "python", Status.BECOME_FAILED: "root",
             Status.PROBE_ERROR: "python", Status.CANCELLED: "reach"}
INSTALL = {"tcpdump": "install tcpdump (Debian/Ubuntu: apt-get install tcpdump); without it no capture",
           "lsof": "install lsof (Debian/Ubuntu: apt-get install lsof); without it port owners come "
                   "from /proc only"}


@dataclass(frozen=True)
class Check:
    name: str
    state: str                 # ok | missing | untried | n/a
    shown: str                 # the table cell
    detail: str = ""           # what is wrong and what to do (missing), or what was found


@dataclass
class Readiness:
    host: str
    address: str
    status: str
    reason: str
    checks: list[Check] = field(default_factory=list)
    facts: dict | None = None

    @property
    def missing(self) -> list[str]:
        return [c.name for c in self.checks if c.state == MISSING]

    @property
    def ready(self) -> bool:
        return self.status == Status.OK and not self.missing


def _failed_at(result: HostResult) -> str:
    """A timeout after the session opened is the check itself hanging, not the network."""
    if result.status == Status.TIMEOUT and result.reason.startswith("probe did not finish"):
        return "python"
    return FAILED_AT.get(result.status, "python")


def _from_document(document: dict, become: bool) -> list[Check]:
    facts = document.get("facts") or {}
    version = str(facts.get("python") or "?")
    try:
        too_old = tuple(int(part) for part in version.split(".")[:2]) < (3, 6)
    except ValueError:
        too_old = False
    checks = [Check("python", MISSING if too_old else OK, version,
                    f"Python {version} at {facts.get('python_executable')}: the probe needs ≥ 3.6"
                    if too_old else str(facts.get("python_executable") or ""))]
    root = document.get("euid", facts.get("uid")) == 0
    checks.append(Check("root", OK, "sudo" if become else "yes") if root else
                  Check("root", MISSING, "no", f"runs as uid {facts.get('uid')}: the tracepoint and the "
                                               f"capture need root: rerun with -b (sudo)"))
    for tool in ("tcpdump", "lsof"):
        found = facts.get(tool)
        checks.append(Check(tool, OK, "yes", str(found)) if found else
                      Check(tool, MISSING, "no",
                            f"not on PATH nor in {', '.join(TOOL_DIRS)}: {INSTALL[tool]}"))
    trace = document.get("tracefs") or {}
    if not root:
        checks.append(Check("tracefs", UNTRIED, "-", "needs root"))
    elif trace.get("available"):
        how = "mounted" if trace.get("mounted") else "mountable"
        event = "tcp:tcp_send_reset" + (" with its reason field" if trace.get("reason_field") else
                                        " without a reason field (older kernel: causes from counters)")
        checks.append(Check("tracefs", OK, how, f"{trace.get('path')} {how}, {event}"))
    else:
        checks.append(Check("tracefs", MISSING, "no", str(trace.get("reason") or "not available")))
    return checks


def readiness(host: Host, result: HostResult, become: bool = False) -> Readiness:
    """One host's row from its check result (pure)."""
    row = Readiness(result.host, result.address, result.status, result.reason)
    local = host.connection == "local"
    failed = None if result.status == Status.OK else _failed_at(result)
    for name in SSH_CHECKS if failed is None else CHECKS:
        if name in SSH_CHECKS and local:
            row.checks.append(Check(name, NOT_APPLICABLE, "n/a", "local connection, no SSH"))
        elif name == failed:
            row.checks.append(Check(name, MISSING, "no", f"{result.status}: {result.reason}"))
        elif name in SSH_CHECKS and (failed is None or CHECKS.index(name) < CHECKS.index(failed)):
            row.checks.append(Check(name, OK, "ok"))
        else:                   # after the failure (python and root: sudo fails before python runs)
            row.checks.append(Check(name, UNTRIED, "-"))
    if failed is None and result.probe is not None:
        row.checks += _from_document(result.probe, become or host.become)
        row.facts = result.probe.get("facts")
    return row


def exit_code(rows: list[Readiness]) -> int:
    if any(r.status == Status.CANCELLED for r in rows):
        return EXIT_INTERRUPTED
    return EXIT_OK if all(r.ready for r in rows) else EXIT_HOSTS_MISSED


# --- rendering ------------------------------------------------------------------------------------

def _verdict(row: Readiness) -> str:
    return "ready" if row.ready else "no: " + ", ".join(row.missing or [str(row.status)])


def headline(rows: list[Readiness], wall_s: float) -> str:
    ready = sum(r.ready for r in rows)
    return (f"rstfleet check: {len(rows)} host(s), {ready} ready, {len(rows) - ready} not ready "
            f"({wall_s:.1f} s)")


def render_table(rows: list[Readiness], wall_s: float) -> str:
    """The terminal table; every piece of host text through escape.terminal."""
    from tabulate import tabulate
    from .report.escape import terminal
    lines = [headline(rows, wall_s), "",
             tabulate([[terminal(r.host, 60)] + [terminal(c.shown, 20) for c in r.checks] + [_verdict(r)]
                       for r in rows], headers=["host", *CHECKS, "ready"], disable_numparse=True)]
    missing = [[terminal(r.host, 60), c.name, terminal(c.detail, 300)]
               for r in rows for c in r.checks if c.state == MISSING]
    if missing:
        lines += ["", "What is missing:", tabulate(missing, headers=["host", "check", "why, and what to do"],
                                                   disable_numparse=True)]
    return "\n".join(lines) + "\n"


def render_json(rows: list[Readiness], wall_s: float) -> str:
    """Host text kept exactly (JSON is its own escaping; ensure_ascii writes controls as \\u00XX)."""
    hosts = [{"host": r.host, "address": r.address, "status": r.status, "reason": r.reason,
              "ready": r.ready, "missing": r.missing, "facts": r.facts,
              "checks": {c.name: {"state": c.state, "shown": c.shown, "detail": c.detail} for c in r.checks}}
             for r in rows]
    ready = sum(r.ready for r in rows)
    return json.dumps({"schema": REPORT_SCHEMA, "wall_s": round(wall_s, 3), "exit_code": exit_code(rows),
                       "summary": {"hosts": len(rows), "ready": ready, "not_ready": len(rows) - ready},
                       "hosts": hosts}, indent=2) + "\n"


RENDERERS = {"table": render_table, "json": render_json}
FORMATS = tuple(RENDERERS)


# --- the command ----------------------------------------------------------------------------------

def run_check(options: dict, ask_become_password) -> int:
    """`rstfleet check`: the plan from the flags (one rule set with sweep), the pool in check mode,
    rows, the report. ``ask_become_password([plan])`` asks for -K's password before any host."""
    from .plan import Plan
    from .preflight_inputs import check_local_inputs
    from .sweep.pool import sweep
    from .sweep.progress import Progress
    from .transport import transport_factory

    defaults = dict(dataclasses.asdict(Thresholds()), window=WINDOW_S, capture=0.0)
    plan = check_local_inputs(Plan.from_args({**defaults, **options}))
    settings = dataclasses.replace(plan.sweep, window_s=0.0, margin_s=CHECK_MARGIN_S,
                                   probe_options=("--check",), document_kind=CHECK_KIND)
    started = time.monotonic()
    progress = Progress.for_terminal(len(plan.hosts), 0.0, plan.outputs.quiet)
    try:
        if progress:
            progress.start()
        with transport_factory(plan.ssh, ask_become_password([plan])) as transport_for:
            results = sweep(list(plan.hosts), transport_for, settings, progress.on_result if progress else None)
    finally:
        if progress:
            progress.close()
    wall = time.monotonic() - started
    rows = [readiness(host, result, plan.ssh.become) for host, result in zip(plan.hosts, results)]
    outputs = plan.outputs
    if outputs.path:
        with open(outputs.path, "w", encoding="utf-8") as handle:
            handle.write(RENDERERS[outputs.format](rows, wall))
    if not outputs.quiet:
        sys.stdout.write(RENDERERS["table" if outputs.path else outputs.format](rows, wall))
    return exit_code(rows)
