"""Reset injectors: bounded traffic that makes a chosen lab host send TCP resets.

A SYN to a closed port is answered by exactly one RST (the connect() fails with
ECONNREFUSED), so ``inject_closed_port("198.18.0.2", rate=50, duration=2)`` raises
that host's ``Tcp: OutRsts`` by the number of attempts, exact to the count.

The loop runs in a child process (``python -m rstfleet_lab.traffic``), optionally inside
another lab host's network namespace (``ip netns exec``), so the caller's CPU and
counters are not part of the measurement. Every loop is bounded twice: at most
``rate * duration`` attempts and at most ``duration + 2`` seconds of wall time.
Targets are restricted to the lab range 198.18.0.0/15 and loopback.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ALLOWED_TARGETS = (ipaddress.ip_network("198.18.0.0/15"), ipaddress.ip_network("127.0.0.0/8"))
MAX_RATE = 10_000.0  # attempts per second
MAX_DURATION = 600.0  # seconds
GRACE = 2.0  # wall-time allowance beyond the duration
CONNECT_TIMEOUT = 1.0


def check_target(address: str) -> str:
    """Return ``address`` if it is a lab (198.18.0.0/15) or loopback IPv4 address, else ValueError."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(f"injection target {address!r} is not an IP address") from None
    if not any(ip in net for net in ALLOWED_TARGETS):
        raise ValueError(f"injection target {address} is outside 198.18.0.0/15 and 127.0.0.0/8; refusing")
    return str(ip)


def _check_bounds(rate: float, duration: float) -> None:
    if not 0 < rate <= MAX_RATE:
        raise ValueError(f"rate must be in (0, {MAX_RATE:g}] attempts/s, got {rate}")
    if not 0 < duration <= MAX_DURATION:
        raise ValueError(f"duration must be in (0, {MAX_DURATION:g}] s, got {duration}")


class Injector:
    """A running injection child process; ``wait()`` returns the number of attempts made."""

    def __init__(self, argv: list[str], duration: float) -> None:
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self.argv = argv
        self.duration = duration
        self.result: dict | None = None  # the child's JSON: attempts, refused, connected, ...
        self._stop_sent = False
        self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, env=env)

    def stop(self) -> None:
        """Ask the loop to end now (SIGTERM); the attempts made so far are still reported."""
        if self._proc.poll() is None:
            self._stop_sent = True
            self._proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the loop to end and return how many connection attempts it made."""
        if self.result is None:
            try:
                out, err = self._proc.communicate(timeout=timeout or self.duration + GRACE + 10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.communicate()
                raise RuntimeError(f"injector did not finish in time: {' '.join(self.argv)}") from None
            if self._proc.returncode == -signal.SIGTERM and self._stop_sent and not out.strip():
                out = json.dumps({"attempts": 0, "stopped": True})  # stopped before the loop began
            elif self._proc.returncode != 0:
                raise RuntimeError(f"injector failed (exit {self._proc.returncode}): {err.strip()}")
            self.result = json.loads(out)
        return int(self.result["attempts"])

    def __enter__(self) -> "Injector":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.wait()


def inject_port_scan(target_address: str, ports: range, rate: float, duration: float,
                     source_namespace: str | None = None) -> Injector:
    """Start a bounded loop connecting to ``ports`` of the target in turn (a scanner's pattern)."""
    target = check_target(target_address)
    _check_bounds(rate, duration)
    if len(ports) == 0 or ports.start < 1 or max(ports) > 65535:
        raise ValueError(f"ports must be a non-empty range within 1..65535, got {ports}")
    argv = [sys.executable, "-m", "rstfleet_lab.traffic", target, "--rate", repr(rate),
            "--duration", repr(duration), "--ports", str(ports.start), str(ports.stop), str(ports.step)]
    if source_namespace is not None:
        if not (Path("/run/netns") / source_namespace).exists() or "/" in source_namespace:
            raise ValueError(f"network namespace {source_namespace!r} does not exist (see `ip netns list`)")
        argv = ["ip", "netns", "exec", source_namespace, *argv]
    return Injector(argv, duration)


def inject_closed_port(target_address: str, rate: float, duration: float, port: int = 9,
                       source_namespace: str | None = None) -> Injector:
    """Start a bounded loop of connects to one closed ``port``: one SYN in, one RST out each."""
    return inject_port_scan(target_address, range(port, port + 1), rate, duration, source_namespace)


def _attempt(target: str, port: int) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(CONNECT_TIMEOUT)
        code = sock.connect_ex((target, port))
    if code == errno.ECONNREFUSED:
        return "refused"
    if code == 0:
        return "connected"
    if code in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ETIMEDOUT, errno.EINPROGRESS):
        return "timed_out"
    return "errors"


_stop_requested = False


def run_loop(target: str, ports: range, rate: float, duration: float) -> dict:
    """Attempt ``i`` is due at ``start + i / rate`` (absolute schedule, no drift)."""
    target = check_target(target)
    _check_bounds(rate, duration)
    total = max(1, math.floor(rate * duration + 1e-9))
    counts = {"attempts": 0, "refused": 0, "connected": 0, "timed_out": 0, "errors": 0, "stopped": False}
    start = time.monotonic()
    deadline = start + duration + GRACE
    for i in range(total):
        due = start + i / rate
        while not _stop_requested and time.monotonic() < due:
            time.sleep(min(0.05, max(0.0, due - time.monotonic())))
        if _stop_requested or time.monotonic() >= deadline:
            counts["stopped"] = _stop_requested
            break
        counts["attempts"] += 1
        counts[_attempt(target, ports[i % len(ports)])] += 1
    counts["elapsed"] = round(time.monotonic() - start, 3)
    return counts


def _request_stop(signum: int, frame: object) -> None:
    global _stop_requested
    _stop_requested = True


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m rstfleet_lab.traffic")
    parser.add_argument("target")
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--ports", type=int, nargs=3, metavar=("START", "STOP", "STEP"), default=(9, 10, 1))
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _request_stop)
    result = run_loop(args.target, range(*args.ports), args.rate, args.duration)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
