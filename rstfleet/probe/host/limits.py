"""The one home of rstfleet's defaults and bounds (stdlib only: it also ships to every host).

The command line, playbooks, the Plan, the probe and the Ansible module generator import these
names instead of restating a number, so a default or a bound changes in one place.
"""

WINDOW_S = 10.0            # the alert's own window: Netdata's 10s_ipv4_tcp_resets_sent
MAX_WINDOW_S = 3600.0      # the probe refuses longer windows
CAPTURE_S = 60.0           # triage's phase 2 capture: the guide's 60 s minimum
MAX_CAPTURE_S = 300.0      # the guide's 5 minutes; longer needs force
CAPTURE_PACKETS = 10000
MAX_CAPTURE_PACKETS = 2 ** 31 - 1          # tcpdump -c takes a C int
CAPTURE_BYTES = 8 * 1024 * 1024            # default and cap of one host's pcap
MIN_CAPTURE_BYTES = 1024
MAX_CAPTURE_BYTES = 8 * 1024 * 1024        # base64 of it stays well under MAX_OUTPUT
PHASE2_TOP = 20            # triage's phase 2 covers every host at or over warn, at most this many:
                           # each capture may hold 8 MiB (16 MiB read), so 20 bound the controller's
                           # memory near 320 MiB; 20 host sections are still read; a wider incident
                           # shows in the fleet's shared ports and peers, and each host left out
                           # gets its own dig command
PHASE2_QUIET = 5           # no host at or over warn: phase 2 digs into this many worst that sent resets
TRACE_KEYS = 2000          # the probe's reset counts: at most this many distinct keys (the rest counted)
TRACE_SAMPLE = 1000        # ... and this many single resets with timestamps and 4-tuples, per direction
TRACE_DRAIN_S = 0.25       # the trace buffer is read this often during the window (256 KB a CPU)
EPHEMERAL_PORT_MIN = 32768  # Linux's default ip_local_port_range starts here: a client's side
REPORT_WHOLE_UP_TO = 50    # the table and HTML list every host up to this many; past it they summarise
REPORT_TOP = 20            # ... the worst this many in full, the rest as counts (the JSON keeps all)

FORKS = 200                # handshakes (connect + host key + auth) in flight at once, like Ansible's forks
ASYNCSSH_FROM_HOSTS = 500  # --ssh-engine auto: the event-loop engine from this many SSH hosts (docs/benchmarks.md)
PARAMIKO_MAX_SESSIONS = 1000  # paramiko engine: sessions held at once (2,000 held: 640 ok; docs/benchmarks.md)
SESSION_MEMORY_BYTES = 256 * 1024  # a held session's orchestrator memory (measured 58-88 KB: sessions.py)
START_LEAD_S = 0.5         # the common start is chosen at least this far ahead of the last handshake ...
START_EXEC_SHARE = 0.6     # ... plus this share of the handshakes' controller CPU (the exec burst, measured ~0.5)
START_LEAD_MAX_S = 10.0    # ... and never more than this, nor more than half the window
GO_LEAD_S = 0.3            # probes started at connect (the go, window.py): this lead at least ...
GO_SEND_S = 0.001          # ... plus this per held session, to write each its go line
GO_AT_CONNECT_MAX = 2000   # ... for window groups up to this size; larger ones exec at the start (10,000: 278 timeouts)
FANOUT_GC_YOUNG = 20000    # a young garbage collection every this many new objects in a fan-out
STRAGGLER_MIN_S = 2.0      # handshakes still running this long (and 2x the slowest one done) start late
MAX_START_WAIT_S = 120.0   # the probe waits at most this long for the common start (and for the go)
NO_GO_EXIT = 5             # a probe started before the go (--start-on-stdin) that got none exits so
CONNECT_TIMEOUT_S = 10.0
MAX_OUTPUT = 16 * 1024 * 1024              # bytes read from one host
PROBE_MARGIN_S = 15.0      # a host's deadline beyond connect + window: python start-up, reply
INVENTORY_SCRIPT_S = 30.0  # an executable inventory's whole run (--list, or every --host)
INVENTORY_SCRIPT_OUTPUT = 64 * 1024 * 1024  # bytes read from an inventory script
SELF_BOUND_MARGIN_S = 30.0  # the probe stops itself this long after its window, whatever happens
JUMP_CHANNELS = 64         # hosts one jump-host connection carries at once; past it another opens
MAX_JUMP_HOPS = 8          # a ProxyJump chain, the first hop's own ProxyJump included
PROXY_STDERR_BYTES = 4096  # tail of a ProxyCommand's stderr kept for the host's reason
STOP_EARLY_WAIT_S = 3.0    # on Ctrl-C, capturing probes get this long to send the packets so far
CHECK_MARGIN_S = 10.0      # `rstfleet check`: a host's deadline beyond connect (measured: ~0.15 s of work)

WARN = 10.0                # resets sent/s
CRIT = 100.0
SPIKE_FACTOR = 10.0        # window rate over this multiple of the lifetime baseline is a spike
SPIKE_FLOOR = 5.0          # ... with the baseline floored at this many resets/s
FAIL_ON = ("warn", "crit", "never")
FAIL_ON_DEFAULT = "warn"

# Netdata's rule (health.d/tcp_resets.conf): warn when the 10 s average exceeds
# max(1 min average measured 10 s earlier, 5) x (1 when already WARNING else 10).
NETDATA_FLOOR = 5.0
NETDATA_FACTOR = 10.0
NETDATA_MIN_UPTIME_S = 60.0   # `$netdata.uptime.uptime > 60`
EXACT_MINUTE_S = 60.0         # --baseline exact: the minute before the window, measured by the probe
BASELINES = ("lifetime", "exact")
BASELINE_DEFAULT = "lifetime"  # free; exact costs every host 60 s more
NETDATA_DEFAULT = "auto"       # ask a Netdata agent on the host's loopback, if one listens
NETDATA_PORT = 19999
NETDATA_TIMEOUT_S = 1.0        # the whole conversation with the agent, all requests
NETDATA_MAX_BYTES = 256 * 1024  # one reply from the agent
NETDATA_LOOKBACK_S = 300       # OutRsts history asked of the agent
MAX_NETDATA_LOOKBACK_S = 3600
MAX_HISTORY_POINTS = 600       # history points kept in a probe document


def measured_window(window_s, capture_s):
    """A capture replaces the window: the counters are sampled around it (one rule, used by the
    probe and by the controller's deadlines)."""
    return capture_s or window_s


def probe_lead_s(baseline, netdata):
    """Seconds a probe spends besides its window: the exact baseline's minute before it, and the
    bounded conversation with a Netdata agent after it (the probe's self-bound and the
    controller's per-host deadline both add this)."""
    return (EXACT_MINUTE_S if baseline == "exact" else 0.0) + (0.0 if netdata in (None, "", "off")
                                                               else NETDATA_TIMEOUT_S)


def start_wait_s(start_at, start_in, now):
    """Seconds to wait for the common start (main.py's docstring).

    >>> start_wait_s(1000.0, 2.0, 998.5), start_wait_s(1000.0, 2.0, 990.0), start_wait_s(1000.0, 2.0, 1001.0)
    (1.5, 2.0, 0.0)
    """
    if not start_at:
        return 0.0
    return max(0.0, min(start_at - now, start_in, MAX_START_WAIT_S))
