"""Lab scenarios: one function per cause of TCP resets that the lab can make for real.

``scenario(lab, host, peer, ...)`` makes ``host`` meet one cause of the alert guide with ``peer`` as
the other end, bounded in count and time; it closes what it opened, restores the sysctls it changed
and returns what it did. Sockets are made in the namespaces by this process (``netns()``: setns on
this thread around ``socket()``), so both ends' steps interleave deterministically; ``crashed_service``
runs its server via ``ip netns exec`` to SIGKILL it. Traffic stays in 198.18.0.0/15. ``observe()``
runs the probe's own ResetTrace and counters in each namespace; ``python -m rstfleet_lab.scenarios``
measures every scenario in a fresh two-host lab (the source of docs/causes.md).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import ctypes
import errno
import inspect
import json
import os
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import rstfleet.probe.host
from rstfleet_lab.fleet import Lab, LabHost, lab_context
from rstfleet_lab.traffic import check_target, inject_port_scan

HOST_DIR = Path(rstfleet.probe.host.__file__).resolve().parent   # the probe as shipped
CLONE_NEWNET = 0x40000000
TCP_REPAIR = 19  # linux/tcp.h; needs CAP_NET_ADMIN
TCP_STATES = "? ESTABLISHED SYN_SENT SYN_RECV FIN_WAIT1 FIN_WAIT2 TIME_WAIT CLOSE CLOSE_WAIT LAST_ACK LISTEN".split()
MAX_COUNT = 100
TIMEOUT = 5.0


@functools.lru_cache(maxsize=None)
def _libc() -> ctypes.CDLL:
    """libc, loaded on first use (importing the lab must not load it)."""
    return ctypes.CDLL(None, use_errno=True)


@contextlib.contextmanager
def netns(namespace: str):
    """This thread in network namespace ``namespace`` for the block (sockets made there stay there)."""
    fds = [os.open("/proc/thread-self/ns/net", os.O_RDONLY)]
    try:
        fds.append(os.open(f"/run/netns/{namespace}", os.O_RDONLY))
        if _libc().setns(fds[1], CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns({namespace}): {os.strerror(ctypes.get_errno())}")
        try:
            yield
        finally:
            if _libc().setns(fds[0], CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "could not return this thread to its own namespace")
    finally:
        for fd in fds:
            os.close(fd)


@contextlib.contextmanager
def sysctl(namespace: str, name: str, value: str):
    """Set sysctl ``name`` (e.g. "net.ipv4.tcp_timestamps") in a namespace for the block, then restore."""
    path = Path("/proc/sys", *name.split("."))
    with netns(namespace):  # /proc/sys/net resolves to the opening thread's network namespace
        old = path.read_text().strip()
        path.write_text(value)
    try:
        yield old
    finally:
        with netns(namespace):
            path.write_text(old)


def _bounded(*counts: int) -> int:
    if not all(1 <= count <= MAX_COUNT for count in counts):
        raise ValueError(f"counts must be in 1..{MAX_COUNT}, got {counts}")
    return counts[0]


def _socket(stack: contextlib.ExitStack, where: LabHost) -> socket.socket:
    with netns(where.namespace):
        sock = stack.enter_context(socket.socket())
    sock.settimeout(TIMEOUT)
    return sock


def _listen(stack, host: LabHost, port: int, backlog: int = 16, defer_accept: int = 0,
            wildcard: bool = True) -> socket.socket:
    """A listener as most servers make it, on 0.0.0.0 (``wildcard``), else on the host's address."""
    sock = _socket(stack, host)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, defer_accept)  # 0: off
    sock.bind(("0.0.0.0" if wildcard else check_target(host.address), port))
    sock.listen(backlog)
    return sock


def _connect(stack, peer: LabHost, host: LabHost, port: int, bind_port: int = 0) -> socket.socket:
    sock = _socket(stack, peer)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((check_target(peer.address), bind_port))
    sock.connect((check_target(host.address), port))
    return sock


def _readable(sock: socket.socket, timeout: float = TIMEOUT) -> None:
    if not select.select([sock], [], [], timeout)[0]:
        raise TimeoutError("nothing arrived within the scenario's time bound")


def peer_view(sock: socket.socket, wait: float = 0.0) -> str:
    """What one endpoint saw, e.g. "CLOSE/ECONNRESET" (TCP state from TCP_INFO, then SO_ERROR), after
    waiting up to ``wait`` seconds for something (an RST) to arrive."""
    select.select([sock], [], [], wait)
    state = (TCP_STATES + ["?"] * 256)[sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]]
    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    return f"{state}/{errno.errorcode.get(err, err) if err else 'ok'}"


def _result(name: str, host: LabHost, peer: LabHost, port, expected: int, views=None, **extra) -> dict:
    return dict(scenario=name, host=host.address, peer=peer.address, port=port, expected_host_rsts=expected,
                **extra, peer_saw=dict(views or {}))


def closed_port(lab: Lab, host: LabHost, peer: LabHost, count: int = 5, port: int = 9) -> dict:
    """Guide cause 1: ``count`` SYNs from the peer to a port nothing listens on (one RST each)."""
    return port_scan(lab, host, peer, ports=range(port, port + 1), count=count, name="closed_port")


def port_scan(lab: Lab, host: LabHost, peer: LabHost, ports: range = range(20000, 20020),
              count: int | None = None, name: str = "port_scan") -> dict:
    """Guide cause 1 at scale: one peer, many distinct closed ports (a scanner's pattern)."""
    count = _bounded(count or len(ports))
    with inject_port_scan(host.address, ports, rate=400.0, duration=count / 400.0,
                          source_namespace=peer.namespace) as injector:
        injector.wait()
    done = injector.result
    return _result(name, host, peer, ports.start if len(ports) == 1 else [ports.start, ports.stop - 1],
                   done["refused"], attempts=done["attempts"], distinct_ports=min(len(ports), done["attempts"]))


def _aborting_server(name: str, host: LabHost, peer: LabHost, count: int, port: int, linger: bool) -> dict:
    views = Counter()
    with contextlib.ExitStack() as stack:
        server = _listen(stack, host, port)
        for _ in range(_bounded(count)):
            client = _connect(stack, peer, host, port)
            conn = stack.enter_context(server.accept()[0])
            if linger:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                client.sendall(b"a request the server never reads")
                _readable(conn)
            conn.close()
            views[peer_view(client, TIMEOUT)] += 1
    return _result(name, host, peer, port, count, views=views)


def abort_on_close(lab: Lab, host: LabHost, peer: LabHost, count: int = 3, port: int = 8081) -> dict:
    """Guide cause 2: the host's server closes a socket that still has unread received data."""
    return _aborting_server("abort_on_close", host, peer, count, port, linger=False)


def linger_zero(lab: Lab, host: LabHost, peer: LabHost, count: int = 3, port: int = 8082) -> dict:
    """Guide cause 2: the host closes with SO_LINGER {on, 0} (abortive close, nothing unread)."""
    return _aborting_server("linger_zero", host, peer, count, port, linger=True)


def half_open(lab: Lab, host: LabHost, peer: LabHost, count: int = 3, port: int = 8085,
              keep_listener: bool = True, wildcard: bool = True) -> dict:
    """Guide cause 3: the host forgets connections silently (a TCP_REPAIR close, as a reboot or a
    restored VM would); the peer's next data segment meets a host without that connection."""
    views = Counter()
    with contextlib.ExitStack() as stack:
        server = _listen(stack, host, port, wildcard=wildcard)
        clients = [_connect(stack, peer, host, port) for _ in range(_bounded(count))]
        for _ in clients:
            conn = server.accept()[0]
            conn.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)  # now close() sends neither FIN nor RST
            conn.close()
        if not keep_listener:
            server.close()
        for client in clients:
            client.sendall(b"data for a connection the host no longer has")
            views[peer_view(client, TIMEOUT)] += 1
    return _result("half_open" if keep_listener else "half_open_no_listener", host, peer, port, count,
                   views=views, listener_kept=keep_listener, wildcard=wildcard)


def time_wait(lab: Lab, host: LabHost, peer: LabHost, count: int = 3, port: int = 8084) -> dict:
    """Guide cause 4, a host's RST from a time-wait socket: the host closed first (its orphan becomes a
    FIN_WAIT2 time-wait socket) and the peer, half-closed, still sends data."""
    views = Counter()
    with contextlib.ExitStack() as stack:
        server = _listen(stack, host, port)
        for _ in range(_bounded(count)):
            client = _connect(stack, peer, host, port)
            server.accept()[0].close()  # FIN; the peer's kernel ACKs it
            _readable(client)  # the FIN
            time.sleep(0.02)
            client.sendall(b"late data after the host's close")
            views[peer_view(client, 1.0)] += 1
    return _result("time_wait", host, peer, port, count, views=views)


def time_wait_assassination(lab: Lab, host: LabHost, peer: LabHost, port: int = 8086,
                            client_port: int = 41000, megabytes: int = 64) -> dict:
    """Guide cause 4 proper (RFC 1337): the peer (timestamps off) reconnects to the host's TIME_WAIT socket
    with an ISN below the old sequence space (it sent more bytes than its ISN clock, 1 per 64 ns, moved):
    the host answers with an ACK, the peer with an RST that kills the TIME_WAIT; its next SYN connects."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(sysctl(peer.namespace, "net.ipv4.tcp_timestamps", "0"))
        server = _listen(stack, host, port)
        started = time.monotonic()
        first = _connect(stack, peer, host, port, bind_port=client_port)
        conn = stack.enter_context(server.accept()[0])
        sender = threading.Thread(target=lambda: [first.sendall(bytes(1 << 20)) for _ in range(megabytes)])
        sender.start()
        received = 0
        while received < megabytes << 20 and (chunk := conn.recv(1 << 20)):
            received += len(chunk)
        sender.join(TIMEOUT)
        conn.close()  # the host closes first: it will hold the TIME_WAIT socket
        first.recv(1)  # the host's FIN
        first.close()
        time.sleep(0.05)
        with netns(host.namespace):
            lines = Path("/proc/thread-self/net/tcp").read_text().splitlines()[1:]
        tw_before = sum(1 for f in map(str.split, lines) if f[3] == "06" and int(f[1].split(":")[1], 16) == port)
        margin = received * 64e-9 - (time.monotonic() - started)
        reconnect = time.monotonic()
        second = _connect(stack, peer, host, port, bind_port=client_port)
        reconnect_s = round(time.monotonic() - reconnect, 3)
        stack.enter_context(server.accept()[0])
        reconnected = peer_view(second)
    return _result("time_wait_assassination", host, peer, port, 0, expected_peer_rsts=1, bytes=received,
                   client_port=client_port, host_time_wait_before=tw_before, isn_margin_s=round(margin, 2),
                   reconnect_s=reconnect_s, reconnected=reconnected)


def listen_overflow(lab: Lab, host: LabHost, peer: LabHost, count: int = 3, port: int = 8083,
                    wildcard: bool = True) -> dict:
    """Guide cause 5: a full accept queue with net.ipv4.tcp_abort_on_overflow=1 (host namespace). With
    TCP_DEFER_ACCEPT a handshake's final ACK only counts with data, so clients connect, then send in two
    bursts of ``count + 1``: the first fills the queue (it holds backlog + 1), the second overflows it."""
    backlog, views = _bounded(count) + 1, Counter()
    with contextlib.ExitStack() as stack:
        stack.enter_context(sysctl(host.namespace, "net.ipv4.tcp_abort_on_overflow", "1"))
        server = _listen(stack, host, port, backlog=backlog, defer_accept=int(TIMEOUT), wildcard=wildcard)
        for burst in range(2):
            clients = [_connect(stack, peer, host, port) for _ in range(backlog)]
            for client in clients:
                client.sendall(b"a request that reaches a full accept queue")
            time.sleep(0.05)
            if burst:
                views.update(peer_view(client) for client in clients)
        for _ in range(backlog + 1):  # drain the queue gently: closing a listener resets its queue
            stack.enter_context(server.accept()[0]).recv(4096)
    return _result("listen_overflow", host, peer, port, count, backlog=backlog, wildcard=wildcard, views=views)


CRASHING_SERVER = r"""
import signal, socket, sys
signal.alarm(30)  # bounded even if nobody kills it
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[1], int(sys.argv[2]))); server.listen(64); print("listening", flush=True)
held = [server.accept()[0] for _ in range(int(sys.argv[3]))]; print("accepted", flush=True)
signal.pause()
"""


def crashed_service(lab: Lab, host: LabHost, peer: LabHost, clients: int = 3, pending: int = 2,
                    reconnects: int = 3, port: int = 8080) -> dict:
    """Guide: "a service has crashed": a server with ``clients`` accepted and ``pending`` queued connections
    is SIGKILLed; the clients send on their old connections, ``reconnects`` new ones are attempted."""
    _bounded(clients, pending, reconnects)
    views = Counter()
    proc = subprocess.Popen(["ip", "netns", "exec", host.namespace, sys.executable, "-c", CRASHING_SERVER,
                             check_target(host.address), str(port), str(clients)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    try:
        with contextlib.ExitStack() as stack:
            if proc.stdout.readline().strip() != "listening":
                raise RuntimeError("crashed_service: the server did not start")
            accepted = [_connect(stack, peer, host, port) for _ in range(clients)]
            if proc.stdout.readline().strip() != "accepted":
                raise RuntimeError("crashed_service: the server did not accept its clients")
            queued = [_connect(stack, peer, host, port) for _ in range(pending)]
            proc.kill()
            proc.wait(TIMEOUT)
            time.sleep(0.05)
            views.update("queued:" + peer_view(client) for client in queued)
            for client in accepted:
                client.recv(1)  # the crash closed it: FIN
                client.sendall(b"a request after the crash")
                views["accepted:" + peer_view(client, 1.0)] += 1
            for _ in range(reconnects):
                code = _socket(stack, peer).connect_ex((host.address, port))
                views["reconnect:" + errno.errorcode.get(code, "ok")] += 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(TIMEOUT)
    return _result("crashed_service", host, peer, port, pending + clients + reconnects, clients=clients,
                   pending=pending, reconnects=reconnects, views=views)


SCENARIOS = {f.__name__: f for f in (closed_port, port_scan, crashed_service, abort_on_close, linger_zero,
                                     listen_overflow, time_wait, time_wait_assassination, half_open)}

VARIANTS = {"half_open_no_listener": ("half_open", {"keep_listener": False}),
            "half_open_bound": ("half_open", {"wildcard": False}),
            "listen_overflow_bound": ("listen_overflow", {"wildcard": False})}
TRACER = r"""
import importlib, importlib.util, json, signal, sys
spec = importlib.util.spec_from_file_location("rstprobe", sys.argv[1] + "/__init__.py",
                                              submodule_search_locations=[sys.argv[1]])
sys.modules["rstprobe"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sys.modules["rstprobe"])
tracefs, counters = (vars(importlib.import_module("rstprobe." + name)) for name in ("tracefs", "counters"))
signal.signal(signal.SIGALRM, lambda *_: sys.exit("tracer: time bound reached"))
signal.alarm(int(sys.argv[2]))
trace = tracefs["ResetTrace"](ports=[int(port) for port in sys.argv[3:]])
try:
    trace.start()
except tracefs["TraceUnavailable"] as exc:
    print(json.dumps({"error": exc.reason}), flush=True)
    sys.exit(0)
try:
    first = counters["read_snapshot"]()
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.readline()
    last = counters["read_snapshot"]()
finally:
    events = trace.stop()
deltas = {t: {k: v for k, v in counters["counter_deltas"](first[t], last[t]).items() if v} for t in first}
print(json.dumps({"events": events, "received": trace.tally.samples["received"], "stats": trace.stats,
                  "counters": deltas}), flush=True)
"""


def start_tracer(host: LabHost, ports=(), bound_s: int = 120) -> subprocess.Popen:
    argv = ["/usr/bin/python3", "-I", "-B", "-c", TRACER, str(HOST_DIR), str(bound_s), *map(str, ports)]
    proc = subprocess.Popen(["ip", "netns", "exec", host.namespace, *argv], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if "error" in (first := json.loads(proc.stdout.readline() or '{"error": "the tracer died"}')):
        proc.kill()
        raise RuntimeError(f"tracer in {host.namespace}: {first['error']} {proc.stderr.read()[-500:]}")
    return proc


@contextlib.contextmanager
def observe(*hosts: LabHost, settle: float = 0.3, ports: dict | None = None):
    """``with observe(h1, h2) as seen: scenario(...)``: the probe's ResetTrace and counters in each host's
    namespace; then ``seen[h1.address]`` = {"OutRsts", "counters" (non-zero deltas), "events", "stats"}.
    ``ports``: {address: ports a scenario listens on there} (such listeners live only inside the window)."""
    seen, tracers = {}, []
    try:
        tracers.extend((host, start_tracer(host, (ports or {}).get(host.address, ()))) for host in hosts)
        yield seen
        time.sleep(settle)  # late resets (timers, the peer's retransmissions)
    finally:  # a tracer not reached here stops at EOF on its stdin, or at its own time bound
        for host, proc in tracers:
            out, err = proc.communicate("stop\n", timeout=30)
            if proc.returncode != 0 or not out.strip():
                raise RuntimeError(f"tracer in {host.namespace} failed: {err[-1000:]}")
            result = json.loads(out.strip().splitlines()[-1])
            seen[host.address] = {**result, "OutRsts": result["counters"]["Tcp"].get("OutRsts", 0)}


def measure(lab: Lab, name: str, host: LabHost, peer: LabHost, **kwargs) -> dict:
    """One scenario observed at both ends: {"result", "host": {...}, "peer": {...}}."""
    defaults = {key: param.default for key, param in inspect.signature(SCENARIOS[name]).parameters.items()}
    with observe(host, peer, ports={host.address: [kwargs.get("port", defaults.get("port", 0))]}) as seen:
        result = SCENARIOS[name](lab, host, peer, **kwargs)
    return {"result": result, "host": seen[host.address], "peer": seen[peer.address]}


def summarize(measured: dict) -> dict:
    """A table row: both ends' OutRsts, non-zero Tcp/TcpExt deltas, events by reason/state/addresses."""
    row = {"scenario": measured["result"]["scenario"], "result": measured["result"]}
    for side, seen in ((side, measured[side]) for side in ("host", "peer")):
        keys = Counter((e["reason"], e["state"], e["saddr"], e["sport"], e["daddr"]) for e in seen["events"])
        got = Counter((e["saddr"], e["daddr"], e["dport"]) for e in seen.get("received", []))
        row[side] = {"OutRsts": seen["OutRsts"], **seen["counters"], "events": [[*key, n] for key, n in keys.items()],
                     "received": [[*key, n] for key, n in got.items()]}
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rstfleet_lab.scenarios", description=__doc__.split("\n")[0])
    parser.add_argument("--name", default="sc" + str(os.getpid() % 100000))
    parser.add_argument("--only", nargs="*", choices=sorted(SCENARIOS) + sorted(VARIANTS))
    args = parser.parse_args(argv)
    with lab_context(2, args.name) as lab:
        for label, (name, kwargs) in {**{n: (n, {}) for n in SCENARIOS}, **VARIANTS}.items():
            if not args.only or label in args.only:
                measured = measure(lab, name, *lab.hosts, **kwargs)
                print(json.dumps({"label": label, **summarize(measured)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
