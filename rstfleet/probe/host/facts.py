"""Host facts and sysctls that frame the counters: who we are, what tools exist, how TCP is tuned."""

import os
import sys

# The sysctls the alert guide and the listen-queue/time-wait causes turn on.
SYSCTLS = (
    "net.ipv4.tcp_syn_retries",
    "net.ipv4.tcp_abort_on_overflow",
    "net.core.somaxconn",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.tcp_max_tw_buckets",
    "net.ipv4.tcp_syncookies",
)
# Non-root PATHs often lack the sbin directories where tcpdump lives.
TOOL_DIRS = ("/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/local/bin")


def read_sysctls(names=SYSCTLS, root="/proc/sys"):
    """{name: int or str or None}; None when the kernel or namespace does not expose it."""
    values = {}
    for name in names:
        try:
            with open(os.path.join(root, *name.split("."))) as handle:
                text = handle.read().strip()
        except OSError:
            values[name] = None
            continue
        try:
            values[name] = int(text)
        except ValueError:
            values[name] = text
    return values


def find_tool(name):
    """Path of a tool on PATH or in the usual sbin/bin directories, else None.

    (shutil.which would do, but importing shutil costs the probe a few ms on every host.)
    """
    for directory in os.environ.get("PATH", "").split(os.pathsep) + list(TOOL_DIRS):
        candidate = os.path.join(directory or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def read_uptime(path="/proc/uptime"):
    try:
        with open(path) as handle:
            return float(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def host_facts():
    """Identity and capabilities, so the orchestrator can explain what could not be done and why."""
    tcpdump = find_tool("tcpdump")
    lsof = find_tool("lsof")
    uname = os.uname()
    return {
        "hostname": uname.nodename,
        "kernel": uname.release,
        "uid": os.getuid(),
        "python": "%d.%d.%d" % sys.version_info[:3],
        "python_executable": sys.executable,
        "tcpdump": tcpdump,
        "lsof": lsof,
        "has_tcpdump": tcpdump is not None,
        "has_lsof": lsof is not None,
    }
