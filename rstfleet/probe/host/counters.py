"""Kernel TCP counters from /proc/net/snmp and /proc/net/netstat, parsed by header name.

Both files hold pairs of lines, a header and its values, sharing a prefix:

    Tcp: RtoAlgorithm RtoMin ... OutRsts InCsumErrors
    Tcp: 1 200 ... 61 0

Kernels add (and occasionally drop) columns, so values are matched to names, never to positions,
and a counter a kernel lacks is simply absent.
"""

SNMP_PATH = "/proc/net/snmp"
NETSTAT_PATH = "/proc/net/netstat"

# The alert's own counter and its context, from the "Tcp:" line of /proc/net/snmp.
TCP_KEYS = ("OutRsts", "InErrs", "EstabResets", "AttemptFails", "ActiveOpens", "PassiveOpens",
            "InSegs", "OutSegs", "RetransSegs", "CurrEstab")
# Gauges are levels, not events: their "delta" means nothing, so they are reported as read.
GAUGES = ("CurrEstab", "RtoAlgorithm", "RtoMin", "RtoMax", "MaxConn")


def parse_proc_table(text):
    """Parse /proc/net/snmp or /proc/net/netstat text into {prefix: {name: int}}.

    A header line without a matching value line, a value that is not an integer, or a value line
    shorter than its header costs only the affected counters.
    """
    tables = {}
    lines = [line for line in text.splitlines() if ":" in line]
    for header, values in zip(lines[0::2], lines[1::2]):
        prefix, _, names = header.partition(":")
        vprefix, _, numbers = values.partition(":")
        if prefix.strip() != vprefix.strip():
            continue
        table = tables.setdefault(prefix.strip(), {})
        for name, number in zip(names.split(), numbers.split()):
            try:
                table[name] = int(number)
            except ValueError:
                continue
    return tables


def read_snapshot(snmp_path=SNMP_PATH, netstat_path=NETSTAT_PATH):
    """One reading of both files: {'Tcp': {...}, 'TcpExt': {...}} (missing file -> empty table)."""
    snapshot = {"Tcp": {}, "TcpExt": {}}
    for path, prefix in ((snmp_path, "Tcp"), (netstat_path, "TcpExt")):
        try:
            with open(path) as handle:
                snapshot[prefix] = parse_proc_table(handle.read()).get(prefix, {})
        except OSError:
            pass
    return snapshot


def counter_deltas(start, end):
    """Event counters' growth between two readings of one table; gauges and vanished names skipped.

    A counter that went backwards (namespace re-created, counter reset) is reported as None rather
    than as a huge or negative number.
    """
    deltas = {}
    for name, first in start.items():
        if name in GAUGES or name not in end:
            continue
        growth = end[name] - first
        deltas[name] = growth if growth >= 0 else None
    return deltas
