"""One probe run on one host: which probe, its command, and what its output means.

The Python probe (probe/host, shipped on stdin) does everything; the shell probe (probe/shell.py)
reads counters only but needs no python3. "python-or-shell" runs the Python probe and, on a host
without python3, the shell probe on the same connection, so such a host is still measured.

Either is run one of two ways: once the fleet's start is known, with it on the command line
(run_probe), or started right after the host's handshake and told the start later by a go line
on stdin (run_started; window.py, "The go").
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Callable, Optional, Tuple

from ..inventory import Host
from ..probe import needs_python, probe_argv, probe_script_for
from ..probe.schema import ShapeError, check_document
from ..probe.shell import ShellOutputError, parse_shell_output, shell_argv
from ..results import HostResult, ProbeOutputError, Status, parse_probe_output
from ..textsafe import last_line, printable
from ..transport import Running, RunResult, Transport, TransportError

if TYPE_CHECKING:
    from .settings import SweepSettings
    from .window import StartInstant

# until_start(ended) -> (the fleet's start or None if not chosen yet, the probe's deadline), or
# None when the run stops; it returns early once ended() (the probe exited before the go)
UntilStart = Callable[[Callable[[], bool]], Optional[Tuple[Optional["StartInstant"], float]]]

log = logging.getLogger("rstfleet.orchestrator")

SHELL_FALLBACK_NOTE = ("python3 is missing on this host: its counters were read by the shell probe "
                       "(no trace, capture, owners or Netdata verdict here)")


def classify(run: RunResult, settings: "SweepSettings", engine: str = "python",
             python: str | None = None) -> tuple[Status, str, dict | None]:
    """Turn a finished command into (status, reason, probe document); engine: "python" or "shell"."""
    stderr = run.stderr.decode("utf-8", "replace")
    if run.timed_out:
        return Status.TIMEOUT, (f"probe did not finish within its deadline "
                         f"({settings.host_budget_s:.0f} s); the host may be overloaded or hung"), None
    if run.truncated:
        return Status.PROBE_ERROR, (f"probe output exceeded {settings.max_output} bytes and was cut; "
                             f"raise --max-output if this host is trusted"), None
    if "sudo:" in stderr and run.exit_code not in (0, None):
        if "password is required" in stderr or "a terminal is required" in stderr:
            return Status.BECOME_FAILED, "sudo needs a password on this host: rerun with -K", None
        if "incorrect password" in stderr:
            return Status.BECOME_FAILED, "sudo rejected the become password given with -K", None
        return Status.BECOME_FAILED, f"sudo failed: {last_line(run.stderr)}", None
    if run.exit_code is None:
        return Status.UNREACHABLE, ("connection lost before the probe finished (the host went down or its "
                             "sshd was killed); check the host, then rerun"), None
    if run.exit_code == -1 and not stderr.strip():
        return Status.PROBE_ERROR, ("the probe was killed on the host before it finished (exit signal, "
                             "no exit status); check the host's OOM killer: dmesg | tail"), None
    interpreter = python or "python3"
    if engine == "python" and (run.exit_code == 127 or (interpreter in stderr and (
            "not found" in stderr or (run.exit_code == 126 and "ermission denied" in stderr)))):
        if python:
            return Status.NO_PYTHON, (f"the inventory's interpreter {printable(python, 200)} "
                                      f"(ansible_python_interpreter) cannot run on this host"), None
        return Status.NO_PYTHON, ("python3 is not installed or not on PATH on this host "
                                  "(Debian/Ubuntu: apt-get install python3-minimal)"), None
    if run.exit_code != 0:
        return Status.PROBE_ERROR, f"probe exited with {run.exit_code}: {last_line(run.stderr)}", None
    try:
        if engine == "shell":
            return Status.OK, "", check_document(parse_shell_output(run.stdout, settings.window_s))
        return Status.OK, "", parse_probe_output(run.stdout, kind=settings.document_kind)
    except (ProbeOutputError, ShellOutputError, ShapeError) as exc:
        return Status.PROBE_ERROR, printable(str(exc)), None


def run_probe(host: Host, transport: Transport, settings: "SweepSettings", deadline: float,
              run_id: str | None = None, start: "StartInstant | None" = None) -> tuple[Status, str, dict | None]:
    """Run the probe the settings ask for; TransportError propagates (the pool maps it).
    ``run_id`` tags a Python probe so a Ctrl-C can ask it to finish early (interrupt.py);
    ``start``: the fleet's common start, which the probe waits for (window.py)."""
    def shell() -> RunResult:
        delay = start.shell_delay_s() if start else 0.0
        return transport.run(shell_argv(settings.window_s, delay), b"", deadline, settings.max_output)

    if settings.host_probe == "shell":
        return classify(shell(), settings, "shell")
    options = list(settings.probe_options) + (["--run-id", run_id] if run_id else [])
    options += start.probe_options() if start else []
    argv = probe_argv(settings.window_s, options, host.python)
    run = transport.run(argv, probe_script_for(settings.probe_options), deadline, settings.max_output)
    status, reason, probe = classify(run, settings, python=host.python)
    if not _falls_back(status, host, settings):
        return status, reason, probe
    return _after_fallback(status, reason, classify(shell(), settings, "shell"))


def _falls_back(status: str, host: Host, settings: "SweepSettings") -> bool:
    """Whether a Python probe's ``status`` sends this host to the shell probe ("python-or-shell");
    an interpreter the inventory names is not second-guessed."""
    return status == Status.NO_PYTHON and settings.host_probe == "python-or-shell" \
        and not needs_python(settings.probe_options) and not host.python


def _after_fallback(status: str, reason: str, shell: tuple[str, str, dict | None]) -> tuple[str, str, dict | None]:
    """The host's outcome once the shell probe ran for a host without python3."""
    fallback, why, probe = shell
    if fallback != Status.OK:
        return status, f"{reason}; the shell probe failed too: {why}", None
    probe.setdefault("notes", []).append(SHELL_FALLBACK_NOTE)    # the schema check drops host notes
    return Status.OK, "", probe


def run_started(host: Host, transport: Transport, settings: "SweepSettings", run_id: str | None,
                until_start: UntilStart) -> tuple[str, str, dict | None] | None:
    """Start the probe now, right after the handshake, with --start-on-stdin (the shell probe with
    its go argument): it sets up while other hosts are reached. Once ``until_start`` gives the
    fleet's start, send the go line and collect. A probe that ended before (no python3: exit 127)
    is collected at once, and on "python-or-shell" the shell probe takes its place, started the
    same way. None: the run stopped before the go (the caller's closing the session ends the
    probe: EOF). TransportError propagates (the pool maps it)."""
    def launch(engine: str) -> Running:
        begin_by = time.monotonic() + settings.handshake_budget_s    # a channel, the payload
        if engine == "shell":
            return transport.start(shell_argv(settings.window_s, go=True), b"", begin_by, settings.max_output)
        options = list(settings.probe_options) + (["--run-id", run_id] if run_id else []) + ["--start-on-stdin"]
        script = probe_script_for(options)
        return transport.start(probe_argv(settings.window_s, options, host.python, len(script)), script,
                               begin_by, settings.max_output)

    engine = "shell" if settings.host_probe == "shell" else "python"
    running, first = launch(engine), None
    while True:
        timing = until_start(running.ended)
        if timing is None:
            return None
        start, deadline = timing
        if start is not None and not running.ended():
            running.send(start.go_line())
        status, reason, probe = classify(running.wait(deadline), settings, engine, host.python)
        if engine == "shell" or not _falls_back(status, host, settings):
            return (status, reason, probe) if first is None else _after_fallback(*first, (status, reason, probe))
        engine, first = "shell", (status, reason)
        running = launch(engine)


def prepare_payloads(settings: "SweepSettings") -> None:
    """Read the probe's payloads from the package now, before any connection: with every session
    held at the open-file limit there is no descriptor left to read them (EMFILE, measured under
    ulimit -n 256); probe_script caches them for the run."""
    probe_script_for(settings.probe_options)
    probe_script_for(())          # ask_to_finish_early's, for Ctrl-C


def ask_to_finish_early(host: Host, transport_for: Callable[[Host], Transport], run_id: str,
                        settings: "SweepSettings", deadline: float) -> None:
    """On a fresh session, ask this host's probes of ``run_id`` to finish early (main.py's
    --stop-run); their documents then come back on their own sessions. Best effort."""
    try:
        transport = transport_for(host)
        try:
            transport.run(probe_argv(settings.window_s, ["--stop-run", run_id], host.python),
                          probe_script_for(()), deadline, 64 * 1024)
        finally:
            transport.close()
    except BaseException:  # noqa: B902 - a failed request leaves that host cancelled
        log.debug("asking %s to finish early failed", host.name, exc_info=True)


def internal_error(host: Host, exc: BaseException, elapsed_s: float = 0.0) -> HostResult:
    """A bug or an unforeseen library error, of any kind, as this host's result (the reason says
    what; the traceback is logged with -v, not printed once per host)."""
    log.debug("unexpected error on %s", host.name, exc_info=(type(exc), exc, exc.__traceback__))
    return HostResult(host.name, host.address, Status.PROBE_ERROR,
                      printable(f"internal error: {type(exc).__name__}: {exc}"), None, elapsed_s, host.groups)


def probe_deadline(settings: "SweepSettings", start: "StartInstant | None") -> float:
    """The probe phase's end: the host's budget (connect timeout + window + lead + margin) from the
    common start, or from now if later. The connect timeout stays in it although the handshake
    is done: opening the channel and starting the probe is another round with the host's sshd,
    and an overloaded host answers it as late as a handshake (measured on the lab: 1,000 probes
    started at once on 2 shared cores took 16 s to all be running)."""
    begins = max(time.monotonic(), start.monotonic if start else 0.0)
    return begins + settings.host_budget_s


def probe_host(host: Host, transport: Transport, settings: "SweepSettings", run_id: str | None = None,
               start: StartInstant | None = None, began: float | None = None,
               deadline: float | None = None, until_start: UntilStart | None = None) -> HostResult | None:
    """Run the probe on one reached host and say what happened; never raises. ``start``: the
    common start the probe waits for; ``began``: when its handshake began (for elapsed_s);
    ``until_start``: start the probe now and send the go later (run_started; None if the run
    stopped before it)."""
    began = time.monotonic() if began is None else began
    try:
        if until_start is not None:
            outcome = run_started(host, transport, settings, run_id, until_start)
            if outcome is None:
                return None
            status, reason, probe = outcome
        else:
            deadline = probe_deadline(settings, start) if deadline is None else deadline
            status, reason, probe = run_probe(host, transport, settings, deadline, run_id, start)
    except TransportError as exc:
        status, reason, probe = exc.status, printable(exc.reason, 400), None
    except BaseException as exc:  # noqa: B902 - nothing in one host's path may sink the sweep
        return internal_error(host, exc, time.monotonic() - began)
    log.debug("%s: %s %s", host.name, status, reason)
    return HostResult(host.name, host.address, status, reason, probe, time.monotonic() - began, host.groups)
