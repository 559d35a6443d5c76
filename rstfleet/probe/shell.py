"""The counters-only probe as a POSIX shell script: no Python needed on the host.

The plain sweep (the alert's own figure, no trace, capture or owners) only reads /proc twice, so
a few lines of `sh` do it: minimal images and appliances without python3 can be swept, and each
host spends a fraction of the Python probe's CPU (bench/host_probe_cost.py measures both). The
output is raw /proc text between markers; it is parsed here, on the controller, into the same
probe document the Python probe prints, and checked by the same schema.

    @@rstfleet-shell 1
    @@btime 1764400000          <- /proc/stat: boot time, so started_at = btime + uptime
    @@uptime 12345.67            <- /proc/uptime, before the window
    Tcp: RtoAlgorithm … OutRsts …  <- /proc/net/snmp and /proc/net/netstat
    @@end
    … the same after the window, then @@sysctl NAME VALUE lines, @@host NAME, @@kernel RELEASE, @@uid N
"""

from __future__ import annotations

import shlex

from .host import PROBE_VERSION, SCHEMA
from .host.counters import TCP_KEYS, counter_deltas, parse_proc_table
from .host.facts import SYSCTLS

FORMAT = "@@rstfleet-shell 1"

# $1 is the window in seconds, $2 how long to wait before it (the fleet's common start); with $3 "go"
# the script starts right after the handshake and that wait comes later, as the go line on stdin
# (`go EPOCH START_IN`, probe/host/go.py): EOF or another line exits 5 at once. Measured (bench/host_probe_cost.py): dash's `read` reads one byte
# per system call, so the /proc/net tables go through one `cat` each snapshot and /proc/stat through
# `grep`; and /proc/sys files answer a read at an offset with EOF ("4096" read as "4"), so one
# `grep '' FILES` prints the sysctls (POSIX: the file name before each line). `sleep` with a
# fraction is GNU/busybox (POSIX sleep takes whole seconds: the fraction is then skipped, the
# window is measured by /proc/uptime anyway). The window is slept a second at a time with a tick
# written after each: when the orchestrator goes away (Ctrl-C, SIGKILL) the next tick meets a
# closed pipe and SIGPIPE ends the script within a second. Nothing is written to disk.
SCRIPT = r"""# rstfleet-shell probe (counters only)
LC_ALL=C
snap() { echo "@@$1"; read -r up rest < /proc/uptime; echo "@@uptime $up"; cat /proc/net/snmp /proc/net/netstat; echo "@@end"; }
pause() {
n=${1%%.*}; i=0
while [ "$i" -lt "$n" ]; do sleep 1; echo "@@tick" || exit 1; i=$((i + 1)); done
[ "${1#*.}" = "$1" ] || [ "${1#*.}" = 0 ] || sleep "0.${1#*.}" 2>/dev/null || true
}
echo "%(format)s"
grep '^btime ' /proc/stat | while read -r key value; do echo "@@btime $value"; done
if [ "${3:-}" = go ]; then
read -r word epoch delay || { echo "rstprobe: the orchestrator closed the session before the go" >&2; exit 5; }
case "$word $delay" in "go "[0-9]*) case $delay in *[!0-9.]*) word=bad;; esac;; *) word=bad;; esac
[ "$word" = go ] || { echo "rstprobe: not a go line" >&2; exit 5; }
pause "$delay"
else pause "${2:-0}"; fi
snap begin
pause "$1"
snap finish
grep '' %(sysctls)s 2>/dev/null | while IFS=: read -r path value; do echo "@@sysctl $path $value"; done
read -r v < /proc/sys/kernel/hostname; echo "@@host $v"
read -r v < /proc/sys/kernel/osrelease; echo "@@kernel $v"
while read -r key real rest; do [ "$key" = Uid: ] && echo "@@uid $real"; done < /proc/self/status
exit 0
""" % {"format": FORMAT,
       "sysctls": " ".join("/proc/sys/" + name.replace(".", "/") for name in SYSCTLS)}


class ShellOutputError(ValueError):
    """The shell probe's output is not what the script prints."""


def shell_argv(window_s: float, delay_s: float = 0.0, go: bool = False) -> list[str]:
    """`sh -c SCRIPT rstfleet-shell WINDOW DELAY [go]`: every word is ours (the transport quotes
    them); ``go``: the delay comes on stdin (SCRIPT's comment)."""
    return ["sh", "-c", SCRIPT, "rstfleet-shell", repr(float(window_s)),
            f"{delay_s:.2f}" if delay_s > 0 else "0"] + (["go"] if go else [])


def _sections(text: str) -> tuple[dict, dict, dict]:
    """({'begin': (uptime, proc text), 'finish': …}, {marker: value}, {sysctl: value})."""
    snaps, markers, sysctls = {}, {}, {}
    current, lines, uptime = None, [], None
    for line in text.splitlines():
        if current is not None:
            if line == "@@end":
                snaps[current] = (uptime, "\n".join(lines))
                current, lines, uptime = None, [], None
            elif line.startswith("@@uptime "):
                uptime = line.split()[1] if len(line.split()) > 1 else None
            else:
                lines.append(line)
        elif line in ("@@begin", "@@finish"):
            current = line[2:]
        elif line.startswith("@@sysctl "):
            _, path, *value = line.split(" ", 2)     # /proc/sys/net/core/somaxconn 4096
            name = path[len("/proc/sys/"):].replace("/", ".")
            sysctls[name] = value[0].strip() if value and value[0].strip() else None
        elif line.startswith("@@") and " " in line:
            key, _, value = line[2:].partition(" ")
            markers[key] = value.strip()
    return snaps, markers, sysctls


def _number(text, what: str, kind=float):
    try:
        return kind(text)
    except (TypeError, ValueError):
        raise ShellOutputError(f"shell probe: {what} is not a number: {str(text)[:40]!r}") from None


def parse_shell_output(stdout: bytes, window_s: float) -> dict:
    """The shell probe's output as a probe document (the Python probe's shape, counters only)."""
    text = stdout.decode("utf-8", "replace")
    if not text.startswith(FORMAT):
        raise ShellOutputError("shell probe output does not start with its header "
                               f"(got {text[:40]!r}); is /bin/sh a POSIX shell?")
    snaps, markers, raw_sysctls = _sections(text)
    if "begin" not in snaps or "finish" not in snaps:
        raise ShellOutputError("shell probe output lacks a counters snapshot (cut short?)")
    up_first = _number(snaps["begin"][0], "uptime before the window")
    up_last = _number(snaps["finish"][0], "uptime after the window")
    first = {k: v for k, v in parse_proc_table(snaps["begin"][1]).items() if k in ("Tcp", "TcpExt")}
    last = {k: v for k, v in parse_proc_table(snaps["finish"][1]).items() if k in ("Tcp", "TcpExt")}
    if "OutRsts" not in first.get("Tcp", {}) or "OutRsts" not in last.get("Tcp", {}):
        raise ShellOutputError("shell probe output has no Tcp OutRsts counter (/proc/net/snmp unreadable?)")
    elapsed = max(0.0, up_last - up_first)          # /proc/uptime: 10 ms resolution
    tcp_delta = counter_deltas(first["Tcp"], last["Tcp"])
    out_rsts_total = last["Tcp"]["OutRsts"]
    sysctls = {name: (int(v) if v is not None and v.lstrip("-").isdigit() else v)
               for name, v in raw_sysctls.items() if name in SYSCTLS}
    uid = markers.get("uid", "")
    btime = _number(markers.get("btime"), "boot time (/proc/stat btime)")
    return {
        "schema": SCHEMA, "kind": "rstfleet-probe", "probe_version": PROBE_VERSION + "+sh",
        "facts": {"hostname": markers.get("host", "")[:255], "kernel": markers.get("kernel", "")[:255],
                  "uid": int(uid) if uid.isdigit() else None, "python": None, "probe": "shell"},
        "window": {"requested_s": window_s, "measured_s": elapsed,
                   "started_at": btime + up_first},
        "tcp": {"start": {k: first["Tcp"][k] for k in TCP_KEYS if k in first["Tcp"]},
                "end": {k: last["Tcp"][k] for k in TCP_KEYS if k in last["Tcp"]},
                "delta": {k: tcp_delta[k] for k in TCP_KEYS if k in tcp_delta},
                "per_s": {k: tcp_delta[k] / elapsed for k in TCP_KEYS
                          if tcp_delta.get(k) is not None and elapsed > 0}},
        "tcpext_delta": counter_deltas(first.get("TcpExt", {}), last.get("TcpExt", {})),
        "baseline": {"uptime_s": up_last, "OutRsts_total": out_rsts_total,
                     "OutRsts_per_s_lifetime": out_rsts_total / up_last if up_last else None},
        "sysctls": sysctls,
        "notes": [],
    }


def describe() -> str:
    """The remote command as a person would type it (for -v logs)."""
    return shlex.join(shell_argv(10.0)[:2]) + " …"
