"""Probe entry point: sample the counters over the window and print one JSON document.

Runs as `python3 -I -B - --window 10` with this package on stdin. It bounds itself (SIGALRM at the
window plus a margin) so that a lost orchestrator can never leave it running.
"""

import json
import resource
import signal
import sys
import time

from . import PROBE_VERSION, SCHEMA
from .counters import TCP_KEYS, counter_deltas, read_snapshot
from .facts import host_facts, read_sysctls, read_uptime

SELF_BOUND_MARGIN_S = 30.0


class UsageError(ValueError):
    pass


# name -> (type, default); argparse would cost the probe ~5 ms of imports on every host.
OPTIONS = {
    "window": (float, 10.0),
    "max-runtime": (float, None),
}


def parse_args(argv):
    """`--name value` pairs into a dict keyed like OPTIONS (dashes kept)."""
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


def _give_up(signum, frame):
    sys.stderr.write("rstprobe: exceeded its own time bound, exiting\n")
    sys.stderr.flush()
    # os._exit: no cleanup handlers that might block; nothing of ours is on disk to clean.
    import os
    os._exit(124)


def sample_window(window_s, sleep=time.sleep, clock=time.monotonic, read=read_snapshot):
    """Read the counters, wait the window, read again; the elapsed time is measured, not assumed."""
    started_at = time.time()
    t0 = clock()
    first = read()
    sleep(window_s)
    last = read()
    elapsed = clock() - t0
    return started_at, elapsed, first, last


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
    usage = resource.getrusage(resource.RUSAGE_SELF)
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
        "cost": {"cpu_s": usage.ru_utime + usage.ru_stime, "max_rss_kb": usage.ru_maxrss},
    }


def main(argv=None):
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        sys.stderr.write("rstprobe: %s\n" % exc)
        return 2
    window = args["window"]
    if not 0 <= window <= 3600:
        sys.stderr.write("rstprobe: --window must be between 0 and 3600 seconds\n")
        return 2
    bound = args["max-runtime"] or window + SELF_BOUND_MARGIN_S
    signal.signal(signal.SIGALRM, _give_up)
    signal.alarm(max(1, int(bound + 0.999)))
    started_at, elapsed, first, last = sample_window(window)
    document = build_document(window, started_at, elapsed, first, last, read_uptime())
    sys.stdout.write(json.dumps(document, sort_keys=True) + "\n")
    sys.stdout.flush()
    signal.alarm(0)
    return 0
