"""Both ends of a reset: each host's received side, each received reset paired with the sender's
kernel across the fleet, and resets no kernel sent (a firewall, a middlebox). Hand-made probe
documents, validated like live probe output, through the real `assess` and `summarize_fleet`."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from rstfleet.analysis import Thresholds, assess
from rstfleet.evidence.pcap import ResetPacket
from rstfleet.evidence.received import received_resets
from rstfleet.fleet import summarize_fleet
from rstfleet.pairing import PairVerdict
from rstfleet.probe.schema import ShapeError
from rstfleet.report import both_ends, render
from rstfleet.results import HostResult, ProbeOutputError, Status, parse_probe_output

from report_parsers import validate_schema

H1, H2, H3, OUTSIDE = "198.18.0.2", "198.18.0.3", "198.18.0.4", "203.0.113.5"
T0 = 1_800_000_000.0


def document(address, sent=(), received=(), sample=(), out_rsts=None, traced=True, receive_traced=True,
             dropped=0, attempt_fails=0, estab_resets=0, started_at=T0, window=10.0, extra_addresses=()):
    """A probe document: ``sent``/``received`` rows (local port, peer, peer port, reason, count) of
    this host, ``sample`` events (direction, ts, local port, peer, peer port, reason)."""
    rows = [["sent", address, lp, peer, pp, reason, n, started_at + 1, started_at + 2]
            for lp, peer, pp, reason, n in sent]
    rows += [["received", address, lp, peer, pp, None, n, started_at + 1, started_at + 2]
             for lp, peer, pp, _, n in received]
    events = sum(row[6] for row in rows if row[0] == "sent")
    got = sum(row[6] for row in rows if row[0] == "received")
    flows = {}
    for lp, peer, _, reason, n in sent:          # flows keep the real local port: a client's is ephemeral
        key = (40000 if lp is None else lp, peer, reason)
        flows[key] = flows.get(key, 0) + n
    trace = {"available": True, "events": events, "kept_sample": len([s for s in sample if s[0] == "sent"]),
             "flows": [[lp, peer, reason, n] for (lp, peer, reason), n in flows.items()], "flows_cut": 0,
             "dropped": dropped, "foreign": 0, "resets": rows, "resets_cut": {"sent": 0, "received": 0},
             "sample": {d: [[ts, address, lp, peer, pp, reason] for dd, ts, lp, peer, pp, reason in sample if dd == d]
                        for d in ("sent", "received")},
             "received": ({"available": True, "events": got,
                           "kept_sample": len([s for s in sample if s[0] == "received"])} if receive_traced
                          else {"available": False, "reason": "this kernel has no tcp:tcp_receive_reset tracepoint"})}
    doc = {"schema": 1, "kind": "rstfleet-probe", "window": {"measured_s": window, "started_at": started_at},
           "tcp": {"delta": {"OutRsts": events if out_rsts is None else out_rsts, "AttemptFails": attempt_fails,
                             "EstabResets": estab_resets}},
           "facts": {"addresses": ["127.0.0.1", address, *extra_addresses]}}
    if traced:
        doc["trace"] = trace
    return parse_probe_output(json.dumps(doc).encode())


def host(name, address, **kwargs):
    return HostResult(name, address, Status.OK, "", document(address, **kwargs))


def ends(*results):
    return summarize_fleet(assess(list(results))).both_ends


def only_pair(*results):
    [pair] = ends(*results).pairs
    return pair


# ---- one host's received side

def test_the_received_side_says_from_whom_and_on_which_connections():
    doc = assess([host("h2", H2, received=[(None, H1, 9, None, 4000), (8080, OUTSIDE, None, None, 3)],
                       sample=[("received", T0 + 1, 40000 + n, H1, 9, None) for n in range(1000)],
                       attempt_fails=4000, estab_resets=3)])[0].evidence.received
    assert (doc.tier, doc.resets, doc.attempt_fails, doc.estab_resets) == ("tracepoint", 4003, 4000, 3)
    assert doc.peers == [(H1, 4000), (OUTSIDE, 3)]
    assert doc.connections[0] == {"peer": H1, "peer_port": 9, "local_port": None, "resets": 4000}
    assert doc.connections[1] == {"peer": OUTSIDE, "peer_port": None, "local_port": 8080, "resets": 3}
    assert "sample: 1,000 of 4,003 received resets traced" in doc.notes[0]


def test_without_the_receive_tracepoint_a_capture_gives_peers_and_flags():
    result = HostResult("h2", H2, Status.OK, "", document(H2, receive_traced=False, attempt_fails=2))
    packets = [ResetPacket(T0, H1, 9, H2, 40001, 0x14), ResetPacket(T0, H1, 9, H2, 40002, 0x14),
               ResetPacket(T0, OUTSIDE, 443, H2, 40003, 0x04), ResetPacket(T0, H2, 22, OUTSIDE, 50000, 0x14)]
    got = received_resets(result.document, packets)
    assert (got.tier, got.resets, got.flags) == ("capture", 3, {"RST+ACK": 2, "RST": 1})   # the sent one is not
    assert got.peers == [(H1, 2), (OUTSIDE, 1)]
    assert got.connections[0] == {"peer": H1, "peer_port": 9, "local_port": None, "resets": 2}
    assert "no tcp:tcp_receive_reset" in got.notes[0]


def test_with_counters_only_the_received_side_is_attemptfails_and_estabresets():
    result = HostResult("h2", H2, Status.OK, "", document(H2, traced=False, attempt_fails=50, estab_resets=2))
    got = assess([result])[0].evidence.received
    assert (got.tier, got.resets, got.attempt_fails, got.estab_resets, got.peers) == ("counters", None, 50, 2, [])
    lines = dict(both_ends.received_lines(assess([result])[0]))
    assert lines["counters"].startswith("AttemptFails +50 (connection attempts that failed")


def test_the_sent_side_says_its_sample_is_a_sample_and_counts_every_reset():
    result = host("h1", H1, sent=[(9, H2, None, "NO_SOCKET", 4000)],
                  sample=[("sent", T0 + n / 1000, 9, H2, 40000 + n, "NO_SOCKET") for n in range(2000)])
    evidence = assess([result])[0].evidence
    assert evidence.causes[0].key == "closed_port" and evidence.causes[0].resets == 4000
    assert evidence.top_ports[0].resets == 4000
    assert any("2,000 of 4,000 traced resets sent kept" in note for note in evidence.notes)


# ---- pairing across the fleet

def test_a_closed_port_is_paired_with_the_senders_kernel_and_its_reason():
    pair = only_pair(host("h1", H1, sent=[(9, H2, None, "NO_SOCKET", 50)]),
                     host("h2", H2, received=[(None, H1, 9, None, 50)], attempt_fails=50))
    assert (pair.receiver, pair.sender, pair.sender_port, pair.receiver_port) == ("h2", "h1", 9, None)
    assert (pair.verdict, pair.received, pair.sent, pair.cause) == (PairVerdict.PAIRED, 50, 50, "closed_port")
    assert both_ends.pair_sentence(pair) == ("h2's connections to h1:9 are reset by h1's kernel: nothing listens "
                                             "on 9 (50 received, 50 sent: NO_SOCKET 50)")


def test_resets_no_kernel_sent_are_named_a_firewall_or_middlebox_with_the_evidence():
    pair = only_pair(host("h1", H1, out_rsts=0), host("h2", H2, received=[(None, H1, 8443, None, 50)]))
    assert pair.verdict == PairVerdict.NOT_SENT and (pair.received, pair.sent) == (50, 0)
    sentence = both_ends.pair_sentence(pair)
    assert sentence.startswith("h2's connections to h1:8443 are reset by something between or in front of h1 "
                               "(a firewall REJECT rule, a middlebox or spoofing), not by h1's TCP stack")
    assert "h2 received 50, h1's kernel sent none of them" in sentence
    assert pair.evidence == ["h2 received 50 from 198.18.0.2:8443; h1's tcp_send_reset counted 0 to 198.18.0.3 "
                             "(ephemeral ports); h1's OutRsts +0, 0 traced to every peer"]


def test_the_kernel_sending_other_resets_does_not_hide_the_firewall():
    pair = ends(host("h1", H1, sent=[(9, H2, None, "NO_SOCKET", 20)]),
                host("h2", H2, received=[(None, H1, 8443, None, 50), (None, H1, 9, None, 20)])).pairs[0]
    assert (pair.verdict, pair.sender_port) == (PairVerdict.NOT_SENT, 8443)


@pytest.mark.parametrize("sender, doubt", [
    ({"traced": False}, "h1's probe did not trace"),
    ({"dropped": 7}, "h1's trace buffer lost 7 events"),
    ({"out_rsts": 60}, "h1's kernel counted 60 resets its tracepoint did not show"),   # an older kernel
    ({"started_at": T0 + 60}, "windows overlapped 0%"),
])
def test_no_firewall_is_claimed_where_the_senders_trace_could_have_missed_them(sender, doubt):
    pair = only_pair(host("h1", H1, **sender), host("h2", H2, received=[(None, H1, 8443, None, 50)]))
    assert pair.verdict == PairVerdict.UNVERIFIED
    assert any(doubt in line for line in pair.evidence), pair.evidence
    assert "unconfirmed" in both_ends.pair_sentence(pair)


def test_some_sent_by_the_kernel_and_the_rest_by_something_in_front():
    pair = only_pair(host("h1", H1, sent=[(8443, H2, None, "NO_SOCKET", 20)]),
                     host("h2", H2, received=[(None, H1, 8443, None, 50)]))
    assert pair.verdict == PairVerdict.PARTLY_SENT
    assert "20 of 50 resets were sent by h1's kernel (nothing listens on 8443), the other 30 by something " \
           "between or in front of h1" in both_ends.pair_sentence(pair)


def test_a_few_resets_at_the_edges_of_the_windows_still_pair():
    pair = only_pair(host("h1", H1, sent=[(9, H2, None, "NO_SOCKET", 98)]),
                     host("h2", H2, received=[(None, H1, 9, None, 100)]))
    assert pair.verdict == PairVerdict.PAIRED and "2 received near the edges" in pair.evidence[-1]


def test_a_client_aborting_its_own_connections_pairs_on_the_servers_port():
    pair = only_pair(host("h1", H1, sent=[(None, H2, 8080, "TCP_STATE", 3)]),
                     host("h2", H2, received=[(8080, H1, None, None, 3)], estab_resets=3))
    assert (pair.verdict, pair.receiver_port, pair.sender_port) == (PairVerdict.PAIRED, 8080, None)
    assert both_ends.pair_sentence(pair).startswith("h2's connections from h1 on port 8080 are reset by h1's "
                                                    "kernel: a close with SO_LINGER 0")


def test_sampled_resets_match_by_4_tuple_and_the_delay_may_be_negative():
    """Measured on this machine: the receive 14–51 µs after the send for refused SYNs, 6–9 µs
    before it for SO_LINGER 0 aborts."""
    sent = [("sent", T0 + 1.000000, 9, H2, 40001, "NO_SOCKET"), ("sent", T0 + 2.000000, 9, H2, 40002, "NO_SOCKET")]
    got = [("received", T0 + 1.000051, 40001, H1, 9, None), ("received", T0 + 1.999991, 40002, H1, 9, None),
           ("received", T0 + 3.0, 40003, H1, 9, None)]          # its send fell outside h1's sample
    pair = only_pair(host("h1", H1, sent=[(9, H2, None, "NO_SOCKET", 3)], sample=sent),
                     host("h2", H2, received=[(None, H1, 9, None, 3)], sample=got))
    assert pair.matched_sample == 2 and pair.delay_us == [pytest.approx(-9.0, abs=0.2), pytest.approx(51.0, abs=0.2)]
    assert pair.example == f"{H2}:40001 <- {H1}:9"
    lines = both_ends.pair_lines(pair)
    assert "2 sampled resets matched by 4-tuple" in lines[-1][1] and "µs from the send" in lines[-1][1]


def test_a_listeners_reset_which_names_no_peer_can_pair():
    pair = only_pair(host("h1", H1, sent=[(8083, "0.0.0.0", 0, "INVALID_SYN", 4)]),
                     host("h2", H2, received=[(None, H1, 8083, None, 4)]))
    assert (pair.verdict, pair.sent, pair.reasons) == (PairVerdict.PAIRED, 4, {"INVALID_SYN": 4})
    assert "came from a listener, which names no peer" in pair.evidence[1]


def test_resets_a_kernel_sent_that_no_socket_of_the_receiver_got():
    pair = only_pair(host("h1", H1, sent=[(8080, H2, None, "TCP_TIMEWAIT_SOCKET", 5)]), host("h2", H2))
    assert (pair.verdict, pair.received, pair.sent) == (PairVerdict.NOT_RECEIVED, 0, 5)
    assert "that no socket of h2 received as a reset (its socket was gone" in both_ends.pair_sentence(pair)


def test_a_time_wait_assassination_is_a_reset_sent_that_only_a_time_wait_socket_got():
    """Measured (tests/e2e/test_tracefs.py): the peer's RST kills the host's TIME_WAIT socket,
    which fires no tcp:tcp_receive_reset; the peer's reason is TCP_INVALID_ACK_SEQUENCE."""
    pair = only_pair(host("peer", H2, sent=[(None, H1, 8086, "TCP_INVALID_ACK_SEQUENCE", 1)]), host("host", H1))
    assert pair.verdict == PairVerdict.NOT_RECEIVED
    assert both_ends.pair_sentence(pair).endswith("that no socket of host received as a reset: a time-wait "
                                                  "assassination (the reset of a connecting socket killed a "
                                                  "TIME_WAIT one, which fires no receive)")


def test_addresses_outside_the_sweep_shared_or_loopback_are_never_paired():
    found = ends(host("h1", H1, extra_addresses=[H3]), host("h3", H3),
                 host("h2", H2, received=[(None, OUTSIDE, 443, None, 7), (None, H3, 80, None, 2),
                                          (None, "127.0.0.1", 9, None, 4)]))
    assert found.pairs == [] and (found.received, found.from_fleet, found.from_outside) == (13, 0, 9)
    assert found.outside_peers == [(OUTSIDE, 7), (H3, 2)]          # H3 is claimed by two hosts: ambiguous


def test_the_fleet_line_counts_what_was_paired_and_what_no_kernel_sent():
    results = [host("h1", H1, sent=[(9, H2, None, "NO_SOCKET", 40)], out_rsts=40),
               host("h2", H2, received=[(None, H1, 9, None, 40), (None, H1, 8443, None, 10), (None, OUTSIDE, 80, None, 1)])]
    lines = both_ends.both_ends_lines(summarize_fleet(assess(results)))
    assert lines[0] == ("both ends", "51 resets received by hosts that traced them: 50 from hosts of this sweep "
                                     "(40 paired with the sender's kernel, 10 sent by no kernel), 1 from outside "
                                     f"it ({OUTSIDE} (1))")
    assert [label for label, _ in lines if label != "evidence"] == ["both ends", "not sent by a kernel", "pair"]


# ---- every format, and the published schema

def fleet_with_a_firewall():
    return assess([host("h1", H1, sent=[(9, H2, None, "NO_SOCKET", 40)]),
                   host("h2", H2, received=[(None, H1, 9, None, 40), (None, H1, 8443, None, 10)], attempt_fails=50)])


@pytest.mark.parametrize("fmt", ["table", "markdown", "html", "junit"])
def test_every_format_shows_the_pairs_the_firewall_and_the_received_side(fmt):
    text = render(fmt, fleet_with_a_firewall(), Thresholds(), {"window_s": 10.0, "exit_code": 0})
    if fmt == "junit":
        root = ET.fromstring(text)
        text = "\n".join(element.text or "" for element in root.iter("system-out"))
    for needle in ("are reset by h1&#x27;s kernel" if fmt == "html" else "are reset by h1's kernel",
                   "a firewall REJECT rule, a middlebox or spoofing", "AttemptFails +50", "to h1:8443: 10"):
        assert needle in text, (fmt, needle)


def test_prometheus_counts_resets_received_and_not_sent_by_a_kernel():
    text = render("prometheus", fleet_with_a_firewall(), Thresholds(), {"window_s": 10.0})
    assert 'rstfleet_resets_received_per_second{host="h2"} 5' in text
    assert 'rstfleet_resets_not_sent_by_kernel{host="h2",sender="h1"} 10' in text


def test_the_json_report_carries_both_ends_and_validates_against_the_schema():
    report = json.loads(render("json", fleet_with_a_firewall(), Thresholds(), {"window_s": 10.0, "exit_code": 0}))
    validate_schema(report)
    pairs = report["fleet"]["both_ends"]["pairs"]
    assert [(p["verdict"], p["sender_port"], p["received"], p["sent"]) for p in pairs] == [
        ("not_sent_by_kernel", 8443, 10, 0), ("paired", 9, 40, 40)]
    received = next(h for h in report["hosts"] if h["host"] == "h2")["evidence"]["received"]
    assert received["peers"] == [[H1, 50]] and received["attempt_fails"] == 50


@pytest.mark.parametrize("field, value", [
    ("resets", [["both", H1, 9, H2, None, None, 1, None, None]]),
    ("resets", [["sent", "198.18.0.2;touch /tmp/x", 9, H2, None, None, 1, None, None]]),
    ("resets", [["sent", H1, 70000, H2, None, None, 1, None, None]]),
    ("sample", {"received": [[None, H1, 9, "not an address", 9, None]]}),
    ("received", {"available": "yes"}),
])
def test_a_hostile_both_ends_section_makes_the_host_a_probe_error(field, value):
    doc = json.loads(json.dumps({"schema": 1, "kind": "rstfleet-probe", "window": {"measured_s": 1.0},
                                 "tcp": {"delta": {"OutRsts": 0}}, "trace": {"available": True, field: value}}))
    with pytest.raises((ProbeOutputError, ShapeError)):
        parse_probe_output(json.dumps(doc).encode())
