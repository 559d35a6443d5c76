"""The probe's trace reading: both reset tracepoints, counted on the host by key (never capped by
events), a bounded sample, and lines cut anywhere by the reads of trace_pipe.

``trace_pipe-6.18-both-ends.txt`` is real trace_pipe text from this machine (Linux 6.18): a lab
host 198.18.4.2 refusing three SYNs from 198.18.4.3 (port 9), an SO_LINGER 0 close on 8080 (the
receive stamped 4 µs before the send), a refused IPv6 connect on ::1, and two lines of another
user's lab on 198.18.0.x (foreign: tracepoints are machine-wide). The receive format is this
machine's /sys/kernel/tracing/events/tcp/tcp_receive_reset/format.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rstfleet.probe.host import tracefs
from rstfleet.probe.host.tally import ResetTally, canonical_ports

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tracefs"
BOTH = (FIXTURES / "trace_pipe-6.18-both-ends.txt").read_text()


def formats() -> dict:
    return {name: tracefs.parse_format((FIXTURES / f"{name}-6.18.format").read_text())
            for name in ("tcp_send_reset", "tcp_receive_reset")}


def reader(addresses, max_keys=2000, sample=1000) -> tracefs.ResetTrace:
    """A ResetTrace fed by hand: the instance and trace_pipe are the kernel's, impossible here."""
    trace = tracefs.ResetTrace(addresses=set(addresses), max_keys=max_keys, max_events=sample)
    trace.formats, trace.addresses = formats(), set(addresses)
    return trace


def test_the_receive_format_is_read_from_its_file_not_from_offsets():
    fmt = formats()["tcp_receive_reset"]
    assert [field for _, field in fmt["conversions"]] == ["family", "sport", "dport", "saddr", "daddr", "saddr_v6",
                                                          "daddr_v6", "sock_cookie"]
    event = tracefs.parse_event(fmt, "family=AF_INET sport=43570 dport=9 saddr=198.18.4.3 daddr=198.18.4.2 "
                                     "saddrv6=::ffff:198.18.4.3 daddrv6=::ffff:198.18.4.2 sock_cookie=a09e", 1.0)
    assert event == {"ts": 1.0, "saddr": "198.18.4.3", "sport": 43570, "daddr": "198.18.4.2", "dport": 9,
                     "state": None, "reason": None}


def test_the_client_side_keeps_what_it_received_and_leaves_the_servers_sends_and_other_labs():
    client = reader({"198.18.4.3", "127.0.0.1", "::1"})
    client.feed(BOTH)
    tally = client.tally
    assert tally.events == {"sent": 1, "received": 5}        # ::1 is every namespace's: kept (documented)
    assert client.stats["foreign"] == 6 and client.stats["unparsed"] == 0
    assert ["received", "198.18.4.3", None, "198.18.4.2", 9, None, 3] == tally.reset_rows()[0][:7]
    assert ["received", "198.18.4.3", None, "198.18.4.2", 8080, None, 1] in [r[:7] for r in tally.reset_rows()]
    assert tally.samples["received"][0]["dport"] == 9 and tally.samples["received"][0]["sport"] == 43570


def test_the_server_side_counts_its_sends_with_reasons_and_mirrored_keys():
    server = reader({"198.18.4.2"})
    server.feed(BOTH)
    rows = [row[:7] for row in server.tally.reset_rows()]
    assert rows == [["sent", "198.18.4.2", 9, "198.18.4.3", None, "NO_SOCKET", 3],
                    ["sent", "198.18.4.2", 8080, "198.18.4.3", None, "TCP_STATE", 1]]
    assert server.tally.flow_rows() == [[9, "198.18.4.3", "NO_SOCKET", 3], [8080, "198.18.4.3", "TCP_STATE", 1]]
    assert server.tally.events == {"sent": 4, "received": 0}
    first, last = server.tally.resets[("sent", "198.18.4.2", 9, "198.18.4.3", None, "NO_SOCKET")][1:]
    assert last - first == pytest.approx(0.020022, abs=1e-6)   # the rows keep their first and last stamp


@pytest.mark.parametrize("size", [1, 7, 100, 4096])
def test_reads_may_cut_a_line_anywhere(size):
    whole, chunked = reader({"198.18.4.2", "198.18.4.3"}), reader({"198.18.4.2", "198.18.4.3"})
    whole.feed(BOTH)
    for start in range(0, len(BOTH), size):
        chunked.feed(BOTH[start:start + size])
    chunked.feed("\n")
    assert chunked.tally.reset_rows() == whole.tally.reset_rows()
    assert chunked.stats["kept"] == whole.stats["kept"] == 8


def test_four_thousand_resets_are_one_key_and_the_sample_says_it_is_one():
    tally = ResetTally(max_keys=10, sample=5)
    for n in range(4000):
        tally.add("sent", {"ts": n / 1000, "saddr": "198.18.0.2", "sport": 9, "daddr": "198.18.0.3",
                           "dport": 40000 + n % 20000, "reason": "NO_SOCKET"})
    document = tally.document()
    assert document["events"] == 4000 and document["kept_sample"] == 5 and len(document["sample"]["sent"]) == 5
    assert document["flows"] == [[9, "198.18.0.3", "NO_SOCKET", 4000]]
    assert document["resets"] == [["sent", "198.18.0.2", 9, "198.18.0.3", None, "NO_SOCKET", 4000, 0.0, 3.999]]


def test_keys_are_capped_and_what_found_no_room_is_still_counted():
    tally = ResetTally(max_keys=3, sample=0)
    for port in range(10):      # a scan: one key a port
        tally.add("sent", {"ts": None, "saddr": "198.18.0.2", "sport": 1000 + port, "daddr": "198.18.0.9",
                           "dport": 50000, "reason": "NO_SOCKET"})
    document = tally.document()
    assert len(document["resets"]) == 3 and document["resets_cut"] == {"sent": 7, "received": 0}
    assert len(document["flows"]) == 3 and document["flows_cut"] == 7 and document["events"] == 10
    assert sum(row[6] for row in document["resets"]) + document["resets_cut"]["sent"] == 10


@pytest.mark.parametrize("local, peer, expected", [
    (9, 50602, (9, None)), (50602, 9, (None, 9)), (8080, 8443, (8080, 8443)), (40000, 50000, (40000, 50000)),
    (8083, 0, (8083, 0)), (None, 9, (None, 9))])
def test_the_clients_ephemeral_port_collapses_the_same_way_at_both_ends(local, peer, expected):
    assert canonical_ports(local, peer) == expected
    if None not in (local, peer):
        assert canonical_ports(peer, local) == expected[::-1]


def test_a_task_named_like_an_event_neither_hides_nor_fakes_a_reset():
    """The task shown is whatever ran when the event fired: any local process, any name (15 chars)."""
    server = reader({"198.18.4.2"})
    line = ("  x: tcp_receive-77 [000] ..s1.  3934.781458: tcp_send_reset: skbaddr=1 skaddr=0 "
            "src=198.18.4.2:9 dest=198.18.4.3:43570 state=UNKNOWN reason=NO_SOCKET\n")
    server.feed(line + "  tcp_send_reset: x-1 [000] .....  1.0: sched_switch: prev=1\n")
    assert server.tally.events == {"sent": 1, "received": 0} and server.stats["unparsed"] == 0
    assert server.tally.flow_rows() == [[9, "198.18.4.3", "NO_SOCKET", 1]]
