"""Each cause the lab can make for real, on the real kernel: the report names it first for that
host, with the right port and, where one exists, the right owner — through the real CLI
(`sweep --capture --owners`: tracepoint, tcpdump capture and lsof, all on the lab host)."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import subprocess
import sys
import time

import pytest

from rstfleet_lab import scenarios as scn
from rstfleet_lab import lab_context
from rstfleet_lab import inject_port_scan

from helpers import ROOT, json_report, lab_leftovers, require_root_lab, wait_until_clean

pytestmark = pytest.mark.lab

CAPTURE_S = 4


@pytest.fixture(scope="module")
def lab3():
    require_root_lab()
    with lab_context(3, "c" + str(os.getpid() % 10000)) as lab:
        yield lab


def sweep_during(lab, tmp_path, action, started_when="tcpdump"):
    """Sweep h01 with a capture; run `action` once `started_when` runs there (the capture, or the
    probe itself when there is no tcpdump); return h01's entry."""
    out, runs = tmp_path / "report.json", tmp_path / "runs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rstfleet", "sweep", "-i", str(lab.inventory_path), "-l", "h01",
         "--capture", str(CAPTURE_S), "--owners", "--run-dir", str(runs), "--format", "json",
         "-o", str(out), "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(ROOT),
        env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        deadline = time.monotonic() + 15
        while not any(started_when in p for p in lab_leftovers(lab)):
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"{started_when} did not start on h01: " + proc.stderr.read().decode()[-500:])
            time.sleep(0.05)
        time.sleep(0.5)
        action()
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode in (0, 4), stderr.decode()
    [entry] = json_report(out)["hosts"]
    assert entry["status"] == "ok", entry["reason"]
    assert wait_until_clean(lab, 3.0) == []          # no probe, tcpdump or timeout left behind
    return entry


def top_cause(entry):
    return entry["evidence"]["causes"][0]


def port_info(entry, port):
    return next(p for p in entry["evidence"]["top_ports"] if p["port"] == port)


def test_a_scanner_probing_closed_ports_is_named_a_port_scan(lab3, tmp_path):
    h01, h02 = lab3.host("h01"), lab3.host("h02")

    def scan():
        with inject_port_scan(h01.address, range(21000, 21030), rate=300.0, duration=0.2,
                              source_namespace=h02.namespace) as injector:
            injector.wait()

    entry = sweep_during(lab3, tmp_path, scan)
    cause = top_cause(entry)
    assert cause["key"] == "port_scan", entry["evidence"]["causes"]
    assert cause["peers"][0] == h02.address
    assert set(cause["ports"]) <= set(range(21000, 21030))
    assert entry["evidence"]["tier"] == "tracepoint"
    assert "capture" in entry["evidence"]["evidence_used"]
    assert entry["evidence"]["capture_path"].endswith(".pcap")


def test_a_crashed_service_whose_clients_keep_connecting_is_a_closed_port_nothing_listens_on(lab3, tmp_path):
    h01, h02 = lab3.host("h01"), lab3.host("h02")
    entry = sweep_during(lab3, tmp_path, lambda: scn.crashed_service(lab3, h01, h02, reconnects=20, port=8080))
    cause = top_cause(entry)
    assert cause["key"] == "closed_port", entry["evidence"]["causes"]
    assert cause["ports"][0] == 8080
    assert port_info(entry, 8080)["listening"] is False           # "nothing listens on 8080"
    assert "lsof -i:8080 -P -n" in cause["next_step"]


@contextlib.contextmanager
def aborting_service(lab, port, linger):
    """A server on h01 (this test process, socket made in h01's namespace) that closes connections
    abortively, kept listening until the sweep has looked up the port's owner."""
    h01, h02 = lab.host("h01"), lab.host("h02")
    with contextlib.ExitStack() as stack:
        server = scn._listen(stack, h01, port)

        def abort(count=5):
            for _ in range(count):
                client = scn._connect(stack, h02, h01, port)
                conn = server.accept()[0]
                if linger:
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                else:
                    client.sendall(b"a request the server never reads")
                    scn._readable(conn)
                conn.close()
                client.close()
        yield abort


@pytest.mark.parametrize("linger, port, counter", [(False, 8091, "TCPAbortOnClose"),
                                                   (True, 8092, "TCPAbortOnData")])
def test_a_server_that_aborts_connections_is_named_with_its_port_and_owner(lab3, tmp_path, linger, port, counter):
    with aborting_service(lab3, port, linger) as abort:
        entry = sweep_during(lab3, tmp_path, abort)
    cause = top_cause(entry)
    assert cause["key"] == "aborted_connection", entry["evidence"]["causes"]
    assert cause["ports"] == [port]
    assert cause["resets"] == 5
    assert entry["probe"]["tcpext_delta"][counter] >= 5                # the kernel's own counter agrees
    owners = port_info(entry, port)["owners"]
    assert port_info(entry, port)["listening"] is True
    assert os.getpid() in [o["pid"] for o in owners]                   # this test process owns it
    assert entry["probe"]["owners"]["method"] == "lsof"


def test_a_full_listen_queue_with_abort_on_overflow_is_named_with_its_port_and_owner(lab3, tmp_path):
    """A live server whose accept queue overflows (TCP_DEFER_ACCEPT, clients whose data arrives in
    bursts, as DESIGN.md explains) on a host with net.ipv4.tcp_abort_on_overflow=1."""
    h01, h02 = lab3.host("h01"), lab3.host("h02")
    port, backlog = 8093, 4
    with contextlib.ExitStack() as stack:
        stack.enter_context(scn.sysctl(h01.namespace, "net.ipv4.tcp_abort_on_overflow", "1"))
        server = scn._listen(stack, h01, port, backlog=backlog, defer_accept=5)

        def overflow():
            for _ in range(2):      # the first burst fills the queue, the second overflows it
                clients = [scn._connect(stack, h02, h01, port) for _ in range(backlog)]
                for client in clients:
                    client.sendall(b"a request that reaches a full accept queue")
                time.sleep(0.05)

        entry = sweep_during(lab3, tmp_path, overflow)
        assert server.fileno() >= 0
    cause = top_cause(entry)
    assert cause["key"] == "listen_queue_full", entry["evidence"]["causes"]
    assert cause["ports"][0] == port
    assert entry["probe"]["tcpext_delta"]["ListenOverflows"] > 0
    assert entry["probe"]["sysctls"]["net.ipv4.tcp_abort_on_overflow"] == 1
    assert os.getpid() in [o["pid"] for o in port_info(entry, port)["owners"]]


def test_without_tcpdump_and_lsof_the_host_falls_back_and_says_so(lab3, tmp_path):
    h01, h02 = lab3.host("h01"), lab3.host("h02")
    lab3.set_faults("h01", hide=("/usr/bin/tcpdump", "/usr/bin/lsof"))
    try:
        entry = sweep_during(lab3, tmp_path, started_when="--window",
                             action=lambda: scn.crashed_service(lab3, h01, h02, reconnects=10, port=8094))
    finally:
        lab3.clear_faults("h01")
    evidence = entry["evidence"]
    assert any("no capture" in n and "tcpdump" in n for n in evidence["notes"]), evidence["notes"]
    assert entry["probe"]["owners"]["method"] == "proc"                # /proc fallback instead of lsof
    assert "capture" not in evidence["evidence_used"]
    assert top_cause(entry)["key"] == "closed_port"
    assert port_info(entry, 8094)["listening"] is False


def test_a_host_whose_disk_is_full_still_captures_because_captures_never_touch_its_disk(lab3, tmp_path):
    """/tmp on h01 is a 64 KiB tmpfs filled to the last byte; the capture streams to memory."""
    h01, h02 = lab3.host("h01"), lab3.host("h02")
    lab3.set_faults("h01", tmpfs={"path": "/tmp", "size": "64k"})
    try:
        entry = sweep_during(lab3, tmp_path, lambda: scn.closed_port(lab3, h01, h02, count=5, port=9))
    finally:
        lab3.clear_faults("h01")
    assert entry["probe"]["capture"].get("available", True) is not False, entry["probe"]["capture"]
    assert "capture" in entry["evidence"]["evidence_used"]
    assert top_cause(entry)["key"] == "closed_port" and top_cause(entry)["ports"] == [9]
