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
PHASE2_TOP = 5             # triage digs into this many worst hosts

FORKS = 200                # handshakes (connect + host key + auth) in flight at once, like Ansible's forks
SESSION_MEMORY_BYTES = 256 * 1024  # a held session's orchestrator memory (measured 58-88 KB: sessions.py)
START_LEAD_S = 0.5         # the common start is chosen at least this far ahead of the last handshake ...
START_EXEC_SHARE = 0.6     # ... plus this share of the handshakes' controller CPU (the exec burst, measured ~0.5)
START_LEAD_MAX_S = 10.0    # ... and never more than this, nor more than half the window
STRAGGLER_MIN_S = 2.0      # handshakes still running this long (and 2x the slowest one done) start late
MAX_START_WAIT_S = 120.0   # the probe waits at most this long for the common start
CONNECT_TIMEOUT_S = 10.0
MAX_OUTPUT = 16 * 1024 * 1024              # bytes read from one host
PROBE_MARGIN_S = 15.0      # a host's deadline beyond connect + window: python start-up, reply
INVENTORY_SCRIPT_S = 30.0  # an executable inventory's whole run (--list, or every --host)
INVENTORY_SCRIPT_OUTPUT = 64 * 1024 * 1024  # bytes read from an inventory script
SELF_BOUND_MARGIN_S = 30.0  # the probe stops itself this long after its window, whatever happens
STOP_EARLY_WAIT_S = 3.0    # on Ctrl-C, capturing probes get this long to send the packets so far
CHECK_MARGIN_S = 10.0      # `rstfleet check`: a host's deadline beyond connect (measured: ~0.15 s of work)

WARN = 10.0                # resets sent/s
CRIT = 100.0
SPIKE_FACTOR = 10.0        # window rate over this multiple of the lifetime baseline is a spike
SPIKE_FLOOR = 5.0          # ... with the baseline floored at this many resets/s
FAIL_ON = ("warn", "crit", "never")
FAIL_ON_DEFAULT = "warn"


def measured_window(window_s, capture_s):
    """A capture replaces the window: the counters are sampled around it (one rule, used by the
    probe and by the controller's deadlines)."""
    return capture_s or window_s
