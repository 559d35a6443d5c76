"""The bounded RST capture, for real on loopback: bounds, errors, and tcpdump always stopped.

Needs root and tcpdump (a failure, not a skip, when absent). Traffic: connections to a closed
port of 127.0.0.1 only. Every test checks afterwards that no tcpdump (or timeout) it started is
left, by the owner mark capture() puts in their environment (other engineers may run tcpdump).
"""

from __future__ import annotations

import base64
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rstfleet.evidence.pcap import read_resets
from rstfleet.probe.host import capture as capmod
from rstfleet.probe.host.capture import (FILTER, OWNER_ENV, CaptureUnavailable, build_command,
                                         capture, check_bounds, pcap_records)

ROOT = Path(__file__).resolve().parents[2]


def require_capture_tools():
    if os.geteuid() != 0:
        pytest.fail("capture tests need root (tcpdump opens a raw socket): run pytest as root")
    if not (shutil.which("tcpdump") or os.path.exists("/usr/bin/tcpdump")):
        pytest.fail("capture tests need tcpdump: apt-get install tcpdump")
    if not shutil.which("pgrep"):
        pytest.fail("capture tests need pgrep: apt-get install procps")


def started_by(owner_pid: int) -> list[tuple[int, str]]:
    """Live tcpdump/timeout processes whose environment says `owner_pid` started them."""
    listed = subprocess.run(["pgrep", "-x", "tcpdump|timeout"], stdout=subprocess.PIPE).stdout
    mark = f"{OWNER_ENV}={owner_pid}".encode()
    found = []
    for pid in listed.split():
        try:
            environ = Path(f"/proc/{int(pid)}/environ").read_bytes().split(b"\0")
            name = Path(f"/proc/{int(pid)}/comm").read_text().strip()
        except OSError:
            continue                       # gone, or a zombie: no longer running
        if mark in environ:
            found.append((int(pid), name))
    return found


@pytest.fixture(autouse=True)
def nothing_left_behind():
    require_capture_tools()
    yield
    deadline = time.monotonic() + 2
    while started_by(os.getpid()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started_by(os.getpid()) == [], "capture() left tcpdump running"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def knock(port: int, times: int = 15) -> None:
    """One SYN -> one RST from 127.0.0.1:port, `times` times."""
    for _ in range(times):
        with socket.socket() as c:
            with pytest.raises(ConnectionRefusedError):
                c.connect(("127.0.0.1", port))


def capture_while_knocking(port, *args, **kw):
    ready, result, failure = threading.Event(), {}, []

    def run():
        try:
            result.update(capture(*args, on_ready=ready.set, **kw))
        except BaseException as exc:  # noqa: BLE001 -- re-raised in the test thread
            failure.append(exc)
            ready.set()

    thread = threading.Thread(target=run)
    t0 = time.monotonic()
    thread.start()
    assert ready.wait(10), "tcpdump did not start capturing within 10 s"
    if not failure:
        knock(port)
    thread.join(30)
    if failure:
        raise failure[0]
    return result, time.monotonic() - t0


def resets_from(port, result):
    return [r for r in read_resets(base64.b64decode(result["pcap_b64"])) if r.sport == port]


def test_the_guides_filter_on_any_captures_every_reset_of_a_closed_port():
    port = closed_port()
    result, elapsed = capture_while_knocking(port, 3, 1000, 1 << 20)
    assert result["stopped_by"] == "duration"
    assert 2.9 <= result["duration_s"] <= 4 and elapsed < 8
    resets = resets_from(port, result)
    assert len(resets) == 15             # -i any shows loopback once: exact to the count
    assert all(r.src == "127.0.0.1" and r.flags & 0x04 for r in resets)
    assert result["bytes"] == len(base64.b64decode(result["pcap_b64"])) and not result["truncated"]
    assert result["tcpdump"] and result["stderr"].count("\n") < 10
    assert "pdeathsig" in result["safeguards"]


def test_the_packet_bound_stops_tcpdump_early():
    port = closed_port()
    result, elapsed = capture_while_knocking(port, 20, 5, 1 << 20)
    assert result["stopped_by"] == "packets" and result["packets_hint"] == 5
    assert len(resets_from(port, result)) <= 5 and elapsed < 5


def test_the_byte_bound_stops_early_and_cuts_at_a_record_boundary():
    port = closed_port()
    result, elapsed = capture_while_knocking(port, 20, 1000, 300)
    data = base64.b64decode(result["pcap_b64"])
    assert result["stopped_by"] == "bytes" and result["truncated"] and elapsed < 5
    assert len(data) == result["bytes"] <= 300
    resets = read_resets(data)
    assert not resets.partial_tail and len(resets) == result["packets_hint"] >= 1


def test_a_missing_tcpdump_says_how_to_install_it():
    with pytest.raises(CaptureUnavailable) as info:
        capture(3, 10, 10000, tcpdump_path="/nonexistent/tcpdump")
    assert "apt-get install tcpdump" in info.value.reason


def test_a_tcpdump_that_cannot_start_is_unavailable_with_its_message(tmp_path):
    fake = tmp_path / "tcpdump"
    fake.write_text("#!/bin/sh\necho 'tcpdump: any: You don'\\''t have permission' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(CaptureUnavailable) as info:
        capture(3, 10, 10000, tcpdump_path=str(fake))
    assert "failed to start" in info.value.reason and "permission" in info.value.reason


def test_durations_beyond_the_guides_five_minutes_need_force():
    with pytest.raises(ValueError, match="force"):
        capture(301, 10, 10000)
    assert check_bounds(301, 10, 10000, force=True) == 301.0
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            check_bounds(bad, 10, 10000, force=True)
    with pytest.raises(ValueError):
        check_bounds(60, 0, 10000)
    with pytest.raises(ValueError):
        check_bounds(60, 10, 10 ** 9)


def test_an_exception_in_the_probe_still_stops_tcpdump():
    def boom():
        raise RuntimeError("probe failed mid-capture")

    with pytest.raises(RuntimeError, match="mid-capture"):
        capture(30, 10, 10000, on_ready=boom)
    assert started_by(os.getpid()) == []


def test_the_command_is_the_guides_filter_streamed_to_stdout_under_a_hard_bound():
    argv = build_command("/usr/bin/tcpdump", 3, 7, "/usr/bin/timeout", True)
    assert argv[:7] == ["/usr/bin/timeout", "--foreground", "-s", "INT", "-k", "2", "8"]
    assert argv[-3:] == ["-w", "-", FILTER]
    assert FILTER == "tcp[tcpflags] & (tcp-rst) == (tcp-rst)"
    for flags in (["-i", "any"], ["-c", "7"], ["-s", "256"]):
        assert " ".join(flags) in " ".join(argv)
    assert "-U" in argv and "--immediate-mode" in argv and "-Z" not in argv
    alone = build_command("/usr/bin/tcpdump", 3, 7, None, False)
    assert alone[0] == "/usr/bin/tcpdump" and alone[-5:-3] == ["-Z", "root"]
    assert "--immediate-mode" not in alone


def test_pcap_records_finds_the_last_whole_record():
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 256, 276)
    record = struct.pack("<IIII", 1, 2, 40, 40) + b"x" * 40
    data = header + record * 3 + record[:30]
    assert pcap_records(data, len(data)) == (24 + 56 * 3, 3)
    assert pcap_records(data, 24 + 56 * 2 + 10) == (24 + 56 * 2, 2)
    assert pcap_records(b"\x0a\x0d\x0d\x0a" + b"\0" * 40, 100) == (None, None)


CHILD = r"""
import os, sys
sys.path.insert(0, %(root)r)
from rstfleet.probe.host import capture as capmod
if %(no_timeout)r:
    capmod._gnu_timeout_cache["path"] = None      # as on a host without GNU coreutils timeout
def ready():
    sys.stdout.write("ready %%d\n" %% os.getpid()); sys.stdout.flush()
capmod.capture(%(duration)r, 100, 100000, on_ready=ready)
"""


def start_child(duration, no_timeout=False):
    source = CHILD % {"root": str(ROOT), "no_timeout": no_timeout, "duration": duration}
    child = subprocess.Popen(["/usr/bin/python3", "-I", "-B", "-c", source],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if not select.select([child.stdout], [], [], 10)[0]:
        child.kill()
        pytest.fail("child capture did not start: " + child.stderr.read1(4096).decode())
    line = child.stdout.readline().decode()
    assert line.startswith("ready"), line + child.stderr.read().decode()
    running = started_by(child.pid)
    assert "tcpdump" in [name for _, name in running]
    assert ("timeout" in [name for _, name in running]) is not no_timeout
    return child


def wait_gone(owner_pid, within):
    deadline = time.monotonic() + within
    while started_by(owner_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return started_by(owner_pid)


@pytest.mark.parametrize("no_timeout", [False, True], ids=["under-timeout", "tcpdump-alone"])
def test_tcpdump_dies_with_a_sigkilled_probe(no_timeout):
    child = start_child(60, no_timeout)
    try:
        child.send_signal(signal.SIGKILL)
        child.wait(5)
        assert wait_gone(child.pid, within=3) == [], "tcpdump outlived its SIGKILLed probe"
    finally:
        for pid, _ in started_by(child.pid):
            os.kill(pid, signal.SIGKILL)


def test_the_hard_bound_ends_tcpdump_even_if_the_probe_hangs():
    child = start_child(1)
    try:
        child.send_signal(signal.SIGSTOP)          # a probe that never stops tcpdump itself
        assert wait_gone(child.pid, within=1 + capmod.HARD_BOUND_MARGIN_S + 3) == []
    finally:
        child.kill()
        child.wait(5)
        for pid, _ in started_by(child.pid):
            os.kill(pid, signal.SIGKILL)
