"""Who owns a local TCP port: the alert guide's ``lsof -i:PORT -P -n``, with a /proc fallback.

One lsof call covers all ports (``-iTCP:8080,9000``) in field output (``-F``), with ``-b -w`` so
it avoids kernel calls that can block (stale NFS) and a subprocess timeout on top. Without lsof,
or when it fails, the kernel's own table answers: ``/proc/net/tcp`` and ``/proc/net/tcp6`` (this
network namespace's sockets: address, port, state, inode) joined with a bounded walk of
``/proc/*/fd`` (socket inodes) and ``/proc/PID/comm`` and ``status``.

An owner is a socket whose *local* port is the port asked about (lsof's ``-i:PORT`` also lists
clients whose remote port it is; those are left out). A port without a LISTEN socket in this
namespace reports ``listening: False``: nothing listens there (a crashed service or a scan).

Network namespaces: sockets belong to the namespace they were created in, and /proc/net/tcp* lists
only this namespace's. lsof 4.95 resolves socket inodes against those same files, so on the lab
(namespaces sharing one PID namespace) a process of another namespace shows up as a bare ``sock``
that ``-i`` does not select (measured). Older or other lsof builds may differ, so every owner lsof
reports is checked: its ``/proc/PID/fd/FD`` inode must be in this namespace's table.

Process names are data from the host: returned as read (non-UTF-8 bytes as ``\\xNN``); lsof
escapes unprintable characters itself (``\\n``, ``^A``). The orchestrator escapes for display.
"""

import os
import socket
import subprocess
import sys
import time

from .facts import find_tool

MAX_PORTS = 10
MAX_OWNERS_PER_PORT = 50
LSOF_TIMEOUT_S = 10.0
MAX_TABLE_LINES = 500000        # per /proc/net/tcp* file
MAX_FD_LINKS = 200000           # readlink calls in the /proc walk
WALK_BUDGET_S = 5.0
LSOF_FIELDS = "pcuLftnT"
TCP_STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
              6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN",
              11: "CLOSING", 12: "NEW_SYN_RECV"}
NET_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
_PROC_FIELDS = {"c": "command", "u": "uid", "L": "user", "g": "pgid", "R": "ppid"}
_FILE_FIELDS = {"f": "fd", "t": "type", "n": "name"}
_TCP_INFO = {"ST": "state", "QR": "recv_q", "QS": "send_q"}


class OwnersUnavailable(Exception):
    """The requested method cannot run here; ``reason`` says what to do about it."""

    def __init__(self, reason):
        Exception.__init__(self, reason)
        self.reason = reason


def _hex_address(text, byteorder=sys.byteorder):
    """/proc/net/tcp's address: 32-bit words printed in host byte order, hex."""
    if len(text) not in (8, 32):
        raise ValueError("not an address: %r" % text)
    words = [int(text[i:i + 8], 16).to_bytes(4, byteorder) for i in range(0, len(text), 8)]
    raw = b"".join(words)
    family = {4: socket.AF_INET, 16: socket.AF_INET6}[len(raw)]
    return socket.inet_ntop(family, raw)


def format_endpoint(addr, port):
    """lsof's spelling: 127.0.0.1:80, [::1]:80."""
    return ("[%s]:%d" if ":" in addr else "%s:%d") % (addr, port)


def parse_proc_net_tcp(text, byteorder=sys.byteorder, max_lines=MAX_TABLE_LINES):
    """Parse /proc/net/tcp or tcp6 text into socket dicts; malformed lines are skipped."""
    sockets = []
    for number, line in enumerate(text.splitlines()):
        if number > max_lines:
            break
        fields = line.split()
        if len(fields) < 10 or not fields[0].endswith(":") or ":" not in fields[1]:
            continue
        try:
            local, lport = fields[1].split(":")
            remote, rport = fields[2].split(":")
            state = int(fields[3], 16)
            send_q, recv_q = (int(x, 16) for x in fields[4].split(":"))
            sockets.append({
                "local_addr": _hex_address(local, byteorder), "local_port": int(lport, 16),
                "remote_addr": _hex_address(remote, byteorder), "remote_port": int(rport, 16),
                "state": TCP_STATES.get(state, "UNKNOWN_%02X" % state),
                "send_q": send_q, "recv_q": recv_q,
                "uid": int(fields[7]), "inode": int(fields[9]),
            })
        except (ValueError, KeyError, OSError):
            continue
    return sockets


def parse_lsof_fields(text):
    """Parse lsof -F output (newline-terminated fields) into one dict per open file."""
    files, proc, current = [], {}, None
    for line in text.splitlines():
        key, value = line[:1], line[1:]
        if key == "p":
            proc, current = {"pid": _int(value)}, None
        elif key in _PROC_FIELDS and current is None:
            proc[_PROC_FIELDS[key]] = value if key in "cL" else _int(value)
        elif key in _FILE_FIELDS or key == "T":
            if current is None or key == "f":
                current = dict(proc, fd=None, type=None, name=None, state=None, recv_q=None,
                               send_q=None)
                files.append(current)
            if key == "T":
                tag, _, tvalue = value.partition("=")
                if tag in _TCP_INFO:
                    current[_TCP_INFO[tag]] = tvalue if tag == "ST" else _int(tvalue)
            else:
                current[_FILE_FIELDS[key]] = value
    return files


def _int(text):
    try:
        return int(text)
    except ValueError:
        return None


def split_endpoint(name):
    """'[::1]:80->[::1]:5000' -> ('::1', 80); None when there is no numeric local port."""
    local = (name or "").split("->")[0]
    host, sep, port = local.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def netns_sockets(ports, tables=NET_TABLES):
    """This namespace's sockets on the given local ports: ({port: [socket]}, readable)."""
    found, readable = {port: [] for port in ports}, False
    for path in tables:
        try:
            with open(path) as handle:
                text = handle.read()
        except OSError:
            continue
        readable = True
        for sock in parse_proc_net_tcp(text):
            if sock["local_port"] in found:
                found[sock["local_port"]].append(sock)
    return found, readable


def _socket_inode(pid, fd):
    """Inode of /proc/PID/fd/FD if it is a socket; None if unknown; -1 if the fd is gone."""
    if not str(fd).isdigit():
        return None
    try:
        target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
    except FileNotFoundError:
        return -1
    except OSError:
        return None
    if target.startswith("socket:[") and target.endswith("]"):
        return int(target[8:-1])
    return -1


def _lsof_owners(lsof, ports, table, table_ok):
    argv = [lsof, "-b", "-w", "-P", "-n", "+c", "0", "-F", LSOF_FIELDS,
            "-iTCP:" + ",".join(str(p) for p in ports)]
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=LSOF_TIMEOUT_S,
                              env=dict(os.environ, LC_ALL="C"))
    except subprocess.TimeoutExpired:
        raise OwnersUnavailable("lsof did not answer within %.0f s" % LSOF_TIMEOUT_S)
    except OSError as exc:
        raise OwnersUnavailable("cannot run lsof (%s)" % exc)
    out = done.stdout.decode("utf-8", "backslashreplace")
    err = done.stderr.decode("utf-8", "replace").strip()
    if done.returncode not in (0, 1) or (done.returncode == 1 and err and not out):
        raise OwnersUnavailable("lsof failed (exit %d): %s" % (done.returncode, err[-300:]))
    inodes = {port: {s["inode"] for s in socks} for port, socks in table.items()}
    owners, dropped = {port: [] for port in ports}, 0
    for entry in parse_lsof_fields(out):
        endpoint = split_endpoint(entry["name"])
        if endpoint is None or endpoint[1] not in owners or entry["pid"] is None:
            continue
        if table_ok:   # the namespace guard (module docstring)
            inode = _socket_inode(entry["pid"], entry["fd"])
            if inode is not None and inode not in inodes[endpoint[1]]:
                dropped += 1
                continue
        owners[endpoint[1]].append({
            "pid": entry["pid"], "command": entry.get("command"), "user": entry.get("user"),
            "uid": entry.get("uid"), "state": entry["state"], "local": entry["name"].split("->")[0],
            "fd": entry["fd"], "recv_q": entry["recv_q"], "send_q": entry["send_q"]})
    return owners, {"other_netns_dropped": dropped}


def _process(pid):
    """(command, real uid, user name) of a process; None for what cannot be read."""
    command, uid, user = None, None, None
    try:
        with open("/proc/%d/comm" % pid, "rb") as handle:
            command = handle.read(4096).decode("utf-8", "backslashreplace")
        command = command[:-1] if command.endswith("\n") else command
        with open("/proc/%d/status" % pid, "rb") as handle:
            for line in handle.read(65536).decode("ascii", "replace").splitlines():
                if line.startswith("Uid:"):
                    uid = int(line.split()[1])
        import pwd
        user = pwd.getpwuid(uid).pw_name
    except (OSError, ValueError, IndexError, TypeError, ImportError, KeyError):
        pass
    return command, uid, user


def _proc_owners(ports, table):
    """Join the namespace's sockets with /proc/*/fd, within MAX_FD_LINKS and WALK_BUDGET_S."""
    by_inode = {s["inode"]: s for socks in table.values() for s in socks if s["inode"]}
    owners, links, complete = {port: [] for port in ports}, 0, True
    stop_at = time.monotonic() + WALK_BUDGET_S
    pids = sorted(int(name) for name in os.listdir("/proc") if name.isdigit())
    for pid in pids if by_inode else []:
        if links >= MAX_FD_LINKS or time.monotonic() > stop_at:
            complete = False
            break
        try:
            fds = os.listdir("/proc/%d/fd" % pid)
        except OSError:
            continue
        for fd in fds:
            links += 1
            inode = _socket_inode(pid, fd)
            sock = by_inode.get(inode)
            if sock is None:
                continue
            command, uid, user = _process(pid)
            owners[sock["local_port"]].append({
                "pid": pid, "command": command, "user": user, "uid": uid,
                "state": sock["state"], "local": format_endpoint(sock["local_addr"],
                                                                 sock["local_port"]),
                "fd": fd, "recv_q": sock["recv_q"], "send_q": sock["send_q"]})
    return owners, {"walk_complete": complete, "fd_links_read": links}


def normalize_ports(ports, max_ports=MAX_PORTS):
    """(kept, skipped): valid distinct ports in order, at most max_ports; the rest skipped."""
    kept, skipped = [], []
    for port in ports:
        try:
            value = int(port)
        except (TypeError, ValueError):
            skipped.append(port)
            continue
        if not 0 < value < 65536 or value in kept or len(kept) >= max_ports:
            skipped.append(port)
        else:
            kept.append(value)
    return kept, skipped


def port_owners(ports, lsof_path=None, method=None, max_ports=MAX_PORTS):
    """Owners of local TCP ports in this network namespace.

    ``method``: None (lsof, else /proc), "lsof" (raise OwnersUnavailable if it cannot run) or
    "proc". Returns {"method", "ports": {"8080": {"listening", "sockets", "owners"}}, ...}.
    """
    if method not in (None, "lsof", "proc"):
        raise ValueError("method must be None, 'lsof' or 'proc'")
    ports, skipped = normalize_ports(ports, max_ports)
    table, table_ok = netns_sockets(ports)
    result = {"method": "proc", "ports": {}, "skipped_ports": skipped, "fallback_reason": None}
    owners = None
    if method != "proc":
        lsof = lsof_path or find_tool("lsof")
        try:
            if not lsof or not os.access(lsof, os.X_OK):
                raise OwnersUnavailable("lsof not found: install lsof (apt-get install lsof)")
            owners, extra = _lsof_owners(lsof, ports, table, table_ok)
            result["method"] = "lsof"
        except OwnersUnavailable as exc:
            if method == "lsof":
                raise
            result["fallback_reason"] = exc.reason
    if owners is None:
        owners, extra = _proc_owners(ports, table)
    result.update(extra)
    for port in ports:
        found = sorted(owners[port], key=lambda o: (o["state"] != "LISTEN", o["pid"], str(o["fd"])))
        listening = any(s["state"] == "LISTEN" for s in table[port]) or any(
            o["state"] == "LISTEN" for o in found)
        result["ports"][str(port)] = {
            "listening": listening, "sockets": len(table[port]) if table_ok else None,
            "owners": found[:MAX_OWNERS_PER_PORT],
            "owners_truncated": len(found) > MAX_OWNERS_PER_PORT}
    return result
