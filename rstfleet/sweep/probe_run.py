"""One probe run on one host: which probe, its command, and what its output means.

The Python probe (probe/host, shipped on stdin) does everything; the shell probe (probe/shell.py)
reads counters only but needs no python3. "python-or-shell" runs the Python probe and, on a host
without python3, the shell probe on the same connection, so such a host is still measured.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Callable

from ..inventory import Host
from ..probe import needs_python, probe_argv, probe_script_for
from ..probe.schema import ShapeError, check_document
from ..probe.shell import ShellOutputError, parse_shell_output, shell_argv
from ..results import HostResult, ProbeOutputError, Status, parse_probe_output
from ..textsafe import last_line, printable
from ..transport import RunResult, Transport, TransportError

if TYPE_CHECKING:
    from .settings import SweepSettings
    from .window import StartInstant

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
    if status != Status.NO_PYTHON or settings.host_probe != "python-or-shell" \
            or needs_python(settings.probe_options) \
            or host.python:            # an interpreter the inventory names is not second-guessed
        return status, reason, probe
    fallback, why, probe = classify(shell(), settings, "shell")
    if fallback != Status.OK:
        return status, f"{reason}; the shell probe failed too: {why}", None
    probe.setdefault("notes", []).append(SHELL_FALLBACK_NOTE)    # the schema check drops host notes
    return Status.OK, "", probe


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
               deadline: float | None = None) -> HostResult:
    """Run the probe on one reached host and say what happened; never raises. ``start``: the
    common start the probe waits for; ``began``: when its handshake began (for elapsed_s)."""
    began = time.monotonic() if began is None else began
    deadline = probe_deadline(settings, start) if deadline is None else deadline
    try:
        status, reason, probe = run_probe(host, transport, settings, deadline, run_id, start)
    except TransportError as exc:
        status, reason, probe = exc.status, printable(exc.reason, 400), None
    except BaseException as exc:  # noqa: B902 - nothing in one host's path may sink the sweep
        return internal_error(host, exc, time.monotonic() - began)
    log.debug("%s: %s %s", host.name, status, reason)
    return HostResult(host.name, host.address, status, reason, probe, time.monotonic() - began, host.groups)
