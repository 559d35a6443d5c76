"""Who owns a local TCP port: lsof's field output and /proc/net/tcp* parsed from saved text, then
the real thing on loopback and across network namespaces.

The real-tool tests need root, lsof and iproute2 (a failure, not a skip, when absent).
Fixtures: tests/fixtures/lsof/two_ports_F_pcuLftnT.txt and tests/fixtures/proc_net_tcp/tcp*_netns.txt
were captured on Debian 12 / Linux 6.18 / lsof 4.95 inside a scratch namespace (listeners on
127.0.0.1:8080 and [::]:9000, an accepted connection with 100 unread bytes, a connection left in
the accept queue, a process renamed to b"web\\nsrv \\xc3\\xa9\\x01"); the *handwritten* ones add
states and shapes that are hard to produce on demand.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from rstfleet.probe.host import owners as ownmod
from rstfleet.probe.host.owners import (OwnersUnavailable, normalize_ports, parse_lsof_fields,
                                        parse_proc_net_tcp, port_owners, split_endpoint)

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def require_tools(*tools):
    if os.geteuid() != 0:
        pytest.fail("owner tests need root (lsof and /proc/*/fd of every process): run as root")
    for tool in tools:
        if not shutil.which(tool):
            pytest.fail(f"owner tests need {tool}: apt-get install "
                        + {"ip": "iproute2"}.get(tool, tool))


# ---- pure parsers on saved text -----------------------------------------------------------

def test_real_lsof_field_output_parses_into_one_record_per_socket():
    files = parse_lsof_fields((FIXTURES / "lsof" / "two_ports_F_pcuLftnT.txt").read_text())
    assert [f["fd"] for f in files] == ["3", "4", "5", "6", "7"]
    first = files[0]
    assert first["pid"] == 23954 and first["uid"] == 0 and first["user"] == "root"
    assert first["command"] == "web\\nsrv \u00e9^A"      # lsof's own escaping, passed on raw
    assert (first["type"], first["name"], first["state"]) == ("IPv4", "127.0.0.1:8080", "LISTEN")
    assert files[1]["name"] == "*:9000" and files[1]["recv_q"] == 1      # one in the accept queue
    assert files[3]["name"] == "127.0.0.1:8080->127.0.0.1:37352" and files[3]["recv_q"] == 100
    assert files[4]["state"] == "ESTABLISHED" and files[4]["type"] == "IPv6"


def test_handwritten_lsof_output_with_shared_listeners_and_missing_fields():
    files = parse_lsof_fields((FIXTURES / "lsof" / "handwritten_odd.txt").read_text())
    assert [(f["pid"], f["fd"]) for f in files] == [
        (101, "6"), (101, "7"), (101, "8"), (102, "6"), (102, "11"), (303, "3"), (505, "9")]
    assert files[2]["type"] == "REG" and files[2]["state"] is None
    assert files[3]["user"] == "www-data" and files[3]["uid"] == 33
    assert files[4]["state"] == "CLOSE_WAIT" and files[4]["send_q"] == 517
    assert "user" not in files[5] and files[5]["command"] == "no login name"
    assert split_endpoint(files[5]["name"]) is None                      # n*:*
    assert split_endpoint(files[6]["name"]) == ("2001:db8::9", 51234)
    assert split_endpoint("*:80") == ("*", 80) and split_endpoint("[::]:22") == ("::", 22)


def test_real_proc_net_tcp_and_tcp6():
    v4 = parse_proc_net_tcp((FIXTURES / "proc_net_tcp" / "tcp_netns.txt").read_text(),
                            byteorder="little")
    assert [(s["local_addr"], s["local_port"], s["state"]) for s in v4] == [
        ("127.0.0.1", 8080, "LISTEN"), ("127.0.0.1", 8080, "ESTABLISHED"),
        ("127.0.0.1", 37352, "ESTABLISHED")]
    assert v4[0]["inode"] == 131909 and v4[1]["recv_q"] == 100 and v4[1]["remote_port"] == 37352
    v6 = parse_proc_net_tcp((FIXTURES / "proc_net_tcp" / "tcp6_netns.txt").read_text(),
                            byteorder="little")
    assert (v6[0]["local_addr"], v6[0]["local_port"], v6[0]["state"]) == ("::", 9000, "LISTEN")
    assert v6[0]["recv_q"] == 1                       # listen socket: the accept queue length
    assert v6[1]["inode"] == 0 and v6[2]["local_addr"] == "::1"   # queued child has no inode


def test_handwritten_tcp6_odd_states_and_malformed_lines():
    socks = parse_proc_net_tcp(
        (FIXTURES / "proc_net_tcp" / "tcp6_handwritten_odd_states.txt").read_text(),
        byteorder="little")
    assert [(s["local_addr"], s["local_port"], s["state"]) for s in socks] == [
        ("::", 22, "LISTEN"), ("::ffff:198.18.0.1", 8443, "SYN_RECV"),
        ("2001:db8::5", 8443, "TIME_WAIT"), ("fe80::1", 5432, "CLOSE_WAIT"),
        ("::1", 6000, "CLOSING"), ("::1", 6001, "UNKNOWN_0F")]
    assert socks[0]["recv_q"] == 3 and socks[3]["send_q"] == 16 and socks[3]["uid"] == 105


def test_addresses_are_host_byte_order_words():
    line = "0: 7F000001:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 9 1\n"
    assert parse_proc_net_tcp(line, byteorder="big")[0]["local_addr"] == "127.0.0.1"
    assert parse_proc_net_tcp(line, byteorder="little")[0]["local_addr"] == "1.0.0.127"


def test_ports_are_bounded_and_validated():
    assert normalize_ports([80, "443", 80, 0, 70000, "x"]) == ([80, 443], [80, 0, 70000, "x"])
    kept, skipped = normalize_ports(range(1, 13))
    assert kept == list(range(1, 11)) and skipped == [11, 12]


# ---- the real tools on loopback ------------------------------------------------------------

@pytest.fixture
def served_port():
    """A listener on 127.0.0.1 with one accepted connection: (port, client's local port)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    yield port, client.getsockname()[1]
    for s in (client, accepted, listener):
        s.close()


@pytest.mark.parametrize("method", ["lsof", "proc"])
def test_our_listener_is_found_with_our_pid_and_command(served_port, method):
    require_tools("lsof")
    port, client_port = served_port
    result = port_owners([port], method=method)
    assert result["method"] == method and result["fallback_reason"] is None
    entry = result["ports"][str(port)]
    comm = Path("/proc/self/comm").read_text().rstrip("\n")
    assert entry["listening"] is True and entry["sockets"] == 2
    assert [(o["pid"], o["command"], o["state"]) for o in entry["owners"]] == [
        (os.getpid(), comm, "LISTEN"), (os.getpid(), comm, "ESTABLISHED")]
    assert entry["owners"][0]["local"] == f"127.0.0.1:{port}" and entry["owners"][0]["user"] == "root"
    assert all(str(client_port) not in o["local"] for o in entry["owners"])  # the client is no owner


@pytest.mark.parametrize("method", [None, "proc"])
def test_a_closed_port_is_not_listening(method):
    require_tools("lsof")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))      # bound, never listening: reserved but closed
        port = s.getsockname()[1]
        entry = port_owners([port], method=method)["ports"][str(port)]
    assert entry == {"listening": False, "sockets": 0, "owners": [], "owners_truncated": False}


def test_without_lsof_the_proc_table_answers(served_port, tmp_path):
    port, _ = served_port
    result = port_owners([port], lsof_path="/nonexistent/lsof")
    assert result["method"] == "proc" and "apt-get install lsof" in result["fallback_reason"]
    assert result["ports"][str(port)]["owners"][0]["pid"] == os.getpid()
    with pytest.raises(OwnersUnavailable):
        port_owners([port], lsof_path="/nonexistent/lsof", method="lsof")
    broken = tmp_path / "lsof"
    broken.write_text("#!/bin/sh\necho 'lsof: no such option' >&2\nexit 2\n")
    broken.chmod(0o755)
    result = port_owners([port], lsof_path=str(broken))
    assert result["method"] == "proc" and "exit 2" in result["fallback_reason"]


def test_a_hanging_lsof_is_cut_off(served_port, tmp_path, monkeypatch):
    port, _ = served_port
    hanging = tmp_path / "lsof"
    hanging.write_text("#!/bin/sh\nexec sleep 30\n")
    hanging.chmod(0o755)
    monkeypatch.setattr(ownmod, "LSOF_TIMEOUT_S", 0.5)
    result = port_owners([port], lsof_path=str(hanging))
    assert result["method"] == "proc" and "did not answer" in result["fallback_reason"]


def test_lsof_owners_outside_this_namespaces_table_are_dropped(served_port):
    require_tools("lsof")
    port, _ = served_port
    owners, extra = ownmod._lsof_owners(shutil.which("lsof"), [port], {port: []}, True)
    assert owners == {port: []} and extra["other_netns_dropped"] == 2


# ---- network namespaces: each lab host sees only its own owners ----------------------------

LISTENER = ("import socket, sys, time\n"
            "s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(4)\n"
            "print('listening', flush=True); time.sleep(60)\n")
LOOKUP = ("import json, sys\nsys.path.insert(0, %r)\n"
          "from rstfleet.probe.host.owners import port_owners\n"
          "print(json.dumps([port_owners([%d], method=m) for m in ('lsof', 'proc')]))\n")


def test_each_namespace_sees_only_its_own_owners():
    require_tools("lsof", "ip")
    ns = f"rstown{os.getpid()}"
    reserve = socket.socket()          # holds the port number in the root namespace, not listening
    reserve.bind(("127.0.0.1", 0))
    port = reserve.getsockname()[1]
    listener = None
    subprocess.run(["ip", "netns", "add", ns], check=True, timeout=10)
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True,
                       timeout=10)
        listener = subprocess.Popen(["ip", "netns", "exec", ns, "/usr/bin/python3", "-I", "-c",
                                     LISTENER, str(port)], stdout=subprocess.PIPE)
        assert listener.stdout.readline() == b"listening\n"
        inside = subprocess.run(["ip", "netns", "exec", ns, "/usr/bin/python3", "-I", "-B", "-c",
                                 LOOKUP % (str(ROOT), port)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, timeout=30)
        assert inside.returncode == 0, inside.stderr.decode()
        for result in json.loads(inside.stdout):
            entry = result["ports"][str(port)]
            assert entry["listening"] is True, result["method"]
            # ip netns exec execs in place: the listener's pid is the one Popen started
            assert [(o["pid"], o["state"]) for o in entry["owners"]] == [(listener.pid, "LISTEN")]
        for method in ("lsof", "proc"):
            outside = port_owners([port], method=method)
            entry = outside["ports"][str(port)]
            assert entry["listening"] is False and entry["owners"] == [], method
            assert outside.get("other_netns_dropped", 0) == 0   # lsof already left it out
    finally:
        if listener is not None:
            listener.kill()
            listener.wait(5)
        subprocess.run(["ip", "netns", "delete", ns], timeout=10)
        reserve.close()
