"""Probe entry point: sample the counters over the window and print one JSON document.

Runs as `python3 -I -B - --window 10` with this package on stdin (or, started before the fleet's
start is known, as go.py says). It bounds itself (SIGALRM) so a lost orchestrator never leaves it running.

Finishing early: the orchestrator's user may press Ctrl-C in the middle of a 60 s capture and still
want the packets so far. The SSH session cannot carry that request (the probe's stdin ends with
the payload, and a closed session would lose the document), so the orchestrator runs a second,
tiny probe, `--stop-run RUN_ID`, which sends SIGUSR1 to this host's probes started with
`--run-id RUN_ID`. SIGUSR1 ends the window or the capture at once; the document is printed as
usual, its window marked `stopped_early` (owners are skipped: lsof may take seconds).

Starting together: the orchestrator reaches hosts one after another, then gives every probe the
fleet's common start, `--start-at EPOCH` (this host's clock; NTP keeps a fleet within
milliseconds) and `--start-in SECONDS` (the same instant as the orchestrator counted it when it
sent the command). The probe waits until its clock reads EPOCH, but never longer than SECONDS, so
a host whose clock is behind does not wait for a time that never comes; one whose clock is ahead
starts early by its skew. With `--start-on-stdin` both come later, on stdin (go.py). The first snapshot is taken at the start; the trace is set up before
(with --baseline exact the minute comes first, then the trace, so it covers the window only).
"""

import json
import os
import resource
import select
import signal
import sys
import time

from . import PROBE_VERSION, SCHEMA
from .counters import TCP_KEYS, counter_deltas, read_snapshot
from .facts import host_facts, read_sysctls, read_uptime
from .limits import (BASELINES, CAPTURE_BYTES, CAPTURE_PACKETS, EXACT_MINUTE_S, MAX_NETDATA_LOOKBACK_S,
                     MAX_START_WAIT_S, MAX_WINDOW_S, NETDATA_LOOKBACK_S, SELF_BOUND_MARGIN_S, TRACE_DRAIN_S,
                     WINDOW_S, measured_window, probe_lead_s, start_wait_s)


class UsageError(ValueError):
    pass


class Stop(Exception):
    """Raised by a signal or a lost orchestrator so every finally-block (trace, tcpdump) runs."""


# name -> (type, default); argparse would cost the probe ~5 ms of imports on every host.
OPTIONS = {
    "window": (float, WINDOW_S),
    "max-runtime": (float, None),
    "trace": (bool, False),
    "trace-auto": (bool, False),   # trace where it is this host's own and cheap (trace_wanted)
    "capture": (float, 0.0),
    "capture-packets": (int, CAPTURE_PACKETS),
    "capture-bytes": (int, CAPTURE_BYTES),
    "force-long-capture": (bool, False),
    "owners": (str, ""),
    "netdata": (str, "off"),          # auto | off | a loopback URL (see netdata.py)
    "netdata-lookback": (int, NETDATA_LOOKBACK_S),
    "baseline": (str, "lifetime"),    # lifetime | exact (the minute before the window, measured)
    "run-id": (str, ""),       # names this probe for --stop-run (hex, from the orchestrator)
    "stop-run": (str, ""),     # ask this host's probes of that run id to finish early, then exit
    "check": (bool, False),      # `rstfleet check`: facts and tracefs only, no window (check.py)
    "start-at": (float, 0.0),    # the fleet's common start, epoch seconds (0: start at once)
    "start-in": (float, 0.0),    # ... as the orchestrator counted it: the longest wait
    "start-on-stdin": (bool, False),  # both come later, as a go line on stdin (go.py)
}
RUN_ID_CHARS = frozenset("0123456789abcdef")
_stop_requested = []           # set by SIGUSR1: finish the window or capture early


def parse_args(argv):
    """`--name value` pairs (and bare `--flag`s) into a dict keyed like OPTIONS."""
    values = dict((name, default) for name, (kind, default) in OPTIONS.items())
    items = list(argv)
    while items:
        flag = items.pop(0)
        name = flag[2:] if flag.startswith("--") else None
        if name not in OPTIONS:
            raise UsageError("unknown option %r" % flag)
        kind = OPTIONS[name][0]
        if kind is bool:
            values[name] = True
            continue
        if not items:
            raise UsageError("option %s needs a value" % flag)
        try:
            values[name] = kind(items.pop(0))
        except ValueError:
            raise UsageError("option %s needs a %s" % (flag, kind.__name__))
    return values


def _stop(signum, frame):
    # A second alarm shortly after is the hard stop, in case cleanup itself hangs.
    signal.signal(signal.SIGALRM, _hard_stop)
    signal.alarm(3)
    raise Stop("signal %d" % signum)


def _finish_early(signum, frame):
    _stop_requested.append(signum)


def stop_requested():
    return bool(_stop_requested)


def _hard_stop(signum, frame):
    sys.stderr.write("rstprobe: cleanup exceeded its bound, exiting hard\n")
    os._exit(124)


def orphaned():
    """True when nobody reads our stdout any more (the SSH session or the orchestrator is gone)."""
    poller = select.poll()
    poller.register(1, select.POLLERR | select.POLLHUP)
    return any(mask & (select.POLLERR | select.POLLHUP) for _, mask in poller.poll(0))


def wait_window(seconds, clock=time.monotonic, tick=None, slice_s=0.5, on_tick=None):
    """Sleep the window in short slices, leaving early if the orchestrator went away (Stop) or
    asked to finish early (return); ``tick()`` runs after each slice (the trace's drain; True: busy),
    then on_tick (the exact baseline's sampler, which samples once a second whatever the slice)."""
    end, busy = clock() + seconds, False
    while True:
        left = end - clock()
        if left <= 0 or stop_requested():
            return
        time.sleep(min(left, slice_s / 10 if busy else slice_s))  # a busy trace is read 10 times as often
        busy = bool(tick()) if tick is not None else False
        if orphaned():
            raise Stop("orchestrator went away")
        if on_tick is not None:
            on_tick()


def build_document(window_s, started_at, elapsed, first, last, uptime):
    tcp_delta = counter_deltas(first["Tcp"], last["Tcp"])
    per_s = {}
    for key in TCP_KEYS:
        if tcp_delta.get(key) is not None and elapsed > 0:
            per_s[key] = tcp_delta[key] / elapsed
    out_rsts_total = last["Tcp"].get("OutRsts")
    baseline = None
    if out_rsts_total is not None and uptime:
        baseline = out_rsts_total / uptime
    return {
        "schema": SCHEMA,
        "kind": "rstfleet-probe",
        "probe_version": PROBE_VERSION,
        "facts": host_facts(),
        "window": {"requested_s": window_s, "measured_s": elapsed, "started_at": started_at},
        "tcp": {
            "start": {k: first["Tcp"][k] for k in TCP_KEYS if k in first["Tcp"]},
            "end": {k: last["Tcp"][k] for k in TCP_KEYS if k in last["Tcp"]},
            "delta": {k: tcp_delta[k] for k in TCP_KEYS if k in tcp_delta},
            "per_s": per_s,
        },
        "tcpext_delta": counter_deltas(first["TcpExt"], last["TcpExt"]),
        "baseline": {"uptime_s": uptime, "OutRsts_total": out_rsts_total,
                     "OutRsts_per_s_lifetime": baseline},
        "sysctls": read_sysctls(),
    }


def trace_wanted(args):
    """--trace always; --trace-auto (the default sweep) as root on a kernel of the host's own,
    where it costs ~0.1 s of wall in parallel with every other host (docs/design-notes.md)."""
    if args["trace"] or not args["trace-auto"] or os.geteuid() != 0:
        return args["trace"]
    from .tracefs import shares_its_kernel
    return not shares_its_kernel()


def _start_trace(document):
    """The tracepoint tier: None (and the reason recorded) when this host cannot give it."""
    from .tracefs import ResetTrace, TraceUnavailable
    try:
        trace = ResetTrace()
        trace.start()
        return trace
    except TraceUnavailable as exc:
        document["trace"] = {"available": False, "reason": str(exc)}
    except Exception as exc:  # never let the optional tier sink the counters
        document["trace"] = {"available": False, "reason": "tracing failed: %r" % (exc,)}
    return None


def _finish_trace(trace, document):
    """The trace section: counts by key for both directions (bounded by keys, never by events),
    the sample, and what was lost: in the kernel (ring buffer full between two drains) or foreign."""
    trace.stop()
    stats = trace.stats
    section = {"available": True, "dropped": stats.get("lost_in_kernel", 0), "foreign": stats.get("foreign", 0),
               "errors": stats.get("errors", [])[:5]}
    section.update(trace.tally.document())
    section["received"].update(trace.received)
    document["trace"] = section


def _watch_orchestrator(done):
    """While a blocking capture runs, notice a lost orchestrator and stop the probe cleanly.

    The signal lands in the main thread, where Stop unwinds through capture's finally (tcpdump
    stopped) and the trace's (instance removed).
    """
    while not done.wait(1.0):
        if orphaned():
            os.kill(os.getpid(), signal.SIGTERM)
            return


def _capture(args, document, tools, tick=None):
    import threading
    from .capture import CaptureUnavailable, capture
    done = threading.Event()
    threading.Thread(target=_watch_orchestrator, args=(done,), daemon=True).start()
    try:
        document["capture"] = capture(args["capture"], args["capture-packets"], args["capture-bytes"],
                                      tcpdump_path=tools.get("tcpdump"),
                                      force=args["force-long-capture"],
                                      should_stop=lambda: (tick and tick(), stop_requested())[1])
    except (CaptureUnavailable, ValueError) as exc:
        document["capture"] = {"available": False, "reason": str(exc)}
        wait_window(args["capture"], tick=tick, slice_s=TRACE_DRAIN_S if tick else 0.5)
    finally:
        done.set()


def _owners(args, document, tools):
    wanted = args["owners"]
    if wanted == "auto":
        ports = []
        for port, _, _, _ in document.get("trace", {}).get("flows", []):
            if port not in ports:
                ports.append(port)
    else:
        ports = [int(p) for p in wanted.split(",") if p.strip().isdigit()]
    if not ports:
        return
    if stop_requested():
        document["owners"] = {"available": False, "reason": "skipped: the orchestrator asked this "
                              "probe to finish early (Ctrl-C), and lsof may take seconds"}
        return
    from .owners import port_owners
    try:
        document["owners"] = port_owners(ports[:10], lsof_path=tools.get("lsof"))
    except Exception as exc:
        document["owners"] = {"available": False, "reason": "owner lookup failed: %r" % (exc,)}


def _minute_before(args):
    """--baseline exact: the minute before the window, sampled (before the trace starts, so the
    tracepoint covers the window only). Returns (sampler, monotonic start, epoch start)."""
    if args["baseline"] != "exact":
        return None, None, None
    from .exact import OutRstsSampler
    sampler = OutRstsSampler()
    started_at, started = time.time(), sampler.last[0]
    wait_window(EXACT_MINUTE_S, on_tick=sampler.tick)
    return sampler, started, started_at


def run(args):
    window = measured_window(args["window"], args["capture"])
    extra = {}
    traced = trace_wanted(args)    # set up before the common start (module docstring)
    trace = _start_trace(extra) if traced and args["baseline"] != "exact" else None
    sampler = minute_t0 = minute_at = None
    try:
        if args["start-on-stdin"]:
            from .go import go_or_exit
            args["start-at"], args["start-in"] = go_or_exit()
        wait_window(start_wait_s(args["start-at"], args["start-in"], time.time()))
        sampler, minute_t0, minute_at = _minute_before(args)
        if traced and trace is None:
            trace = _start_trace(extra)
        started_at, t0 = time.time(), time.monotonic()
        first = read_snapshot()
        tick = trace.drain if trace is not None else None
        if args["capture"]:
            _capture(args, extra, host_facts(), tick)
        else:
            wait_window(window, tick=tick, slice_s=TRACE_DRAIN_S if tick else 0.5,
                        on_tick=sampler.tick if sampler else None)
        last = read_snapshot()
        elapsed = time.monotonic() - t0
    finally:
        if trace is not None:
            _finish_trace(trace, extra)
    document = build_document(window, started_at, elapsed, first, last, read_uptime())
    if stop_requested():
        document["window"]["stopped_early"] = True
    if args["start-at"]:
        document["window"]["start_at"] = args["start-at"]
    document.update(extra)
    if sampler is not None:
        from .exact import minute_section
        document["baseline"]["exact"] = minute_section(minute_at, sampler.first_out_rsts,
                                                       first["Tcp"].get("OutRsts"), t0 - minute_t0,
                                                       sampler.history)
    if args["netdata"] != "off":       # after the window: its requests never enter the measurement
        from .netdata import ask_agent
        document["netdata"] = ask_agent(args["netdata"], args["netdata-lookback"])
    if traced or args["capture"]:
        from .tracefs import local_addresses
        document["facts"]["addresses"] = sorted(local_addresses())
    if args["owners"]:
        _owners(args, document, document["facts"])
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    document["cost"] = {"cpu_s": usage.ru_utime + usage.ru_stime,
                        "children_cpu_s": children.ru_utime + children.ru_stime,
                        "max_rss_kb": usage.ru_maxrss}
    return document


def _probes_of_run(run_id, proc="/proc"):
    """Pids of this host's probes started with ``--run-id run_id`` by this same interpreter (a
    `sudo` in front of a probe carries the same argv but is not signalled: it is not python)."""
    own_pid, own_exe = os.getpid(), os.readlink("/proc/self/exe")
    wanted, found = ["--run-id", run_id], []
    for name in os.listdir(proc):
        if not name.isdigit() or int(name) == own_pid:
            continue
        try:
            with open("%s/%s/cmdline" % (proc, name), "rb") as handle:
                argv = handle.read().decode("utf-8", "replace").split("\0")
            exe = os.readlink("%s/%s/exe" % (proc, name))
        except OSError:
            continue
        if exe == own_exe and any(argv[i:i + 2] == wanted for i in range(len(argv) - 1)):
            found.append(int(name))
    return found


def request_stop(run_id):
    """`--stop-run RUN_ID`: SIGUSR1 to that run's probes here; 0 when one was asked, else 3."""
    asked = 0
    try:
        pids = _probes_of_run(run_id)
    except OSError as exc:
        sys.stderr.write("rstprobe: cannot list this host's processes: %s\n" % exc)
        return 3
    for pid in pids:
        try:
            os.kill(pid, signal.SIGUSR1)
            asked += 1
        except OSError:
            pass
    sys.stderr.write("rstprobe: asked %d probe(s) of run %s to finish early\n" % (asked, run_id))
    return 0 if asked else 3


def main(argv=None):
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        for name in ("run-id", "stop-run"):
            if args[name] and not (len(args[name]) <= 64 and set(args[name]) <= RUN_ID_CHARS):
                raise UsageError("--%s wants up to 64 lowercase hex digits" % name)
    except UsageError as exc:
        sys.stderr.write("rstprobe: %s\n" % exc)
        return 2
    if args["stop-run"]:
        return request_stop(args["stop-run"])
    window = measured_window(args["window"], args["capture"])
    if not 0 <= args["window"] <= MAX_WINDOW_S or args["capture"] < 0:
        sys.stderr.write("rstprobe: --window must be between 0 and %g seconds\n" % MAX_WINDOW_S)
        return 2
    if args["baseline"] not in BASELINES or not 1 <= args["netdata-lookback"] <= MAX_NETDATA_LOOKBACK_S:
        sys.stderr.write("rstprobe: --baseline must be one of %s; --netdata-lookback 1..%d s\n"
                         % (", ".join(BASELINES), MAX_NETDATA_LOOKBACK_S))
        return 2
    if args["start-at"] < 0 or not 0 <= args["start-in"] <= MAX_START_WAIT_S:
        sys.stderr.write("rstprobe: --start-in must be between 0 and %g seconds\n" % MAX_START_WAIT_S)
        return 2
    bound = args["max-runtime"] or (window + probe_lead_s(args["baseline"], args["netdata"]) + SELF_BOUND_MARGIN_S
                                    + (2 * MAX_START_WAIT_S if args["start-on-stdin"]    # the go, then the start
                                       else args["start-in"] if args["start-at"] else 0))
    for signum in (signal.SIGALRM, signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, _stop)
    signal.signal(signal.SIGUSR1, _finish_early)
    signal.alarm(max(1, int(bound + 0.999)))
    try:
        if args["check"]:
            from .check import readiness
            document = readiness()
        else:
            document = run(args)
    except Stop as exc:
        sys.stderr.write("rstprobe: stopped early (%s); cleaned up\n" % exc)
        return 125
    signal.alarm(0)
    try:
        sys.stdout.write(json.dumps(document, sort_keys=True) + "\n")
        sys.stdout.flush()
    except (BrokenPipeError, OSError):
        return 125
    return 0
