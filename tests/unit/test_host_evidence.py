"""One host's evidence: which tier explained its resets (recorded, never silent), its ports,
peers and notes. Probe documents are hand-made and validated like live probe output; captures
are tiny pcaps built byte by byte by tests/pcap_builders.py."""

import json

from pcap_builders import ACK, RST, eth, pcap_file, v4_rst
from rstfleet.evidence.host import host_evidence
from rstfleet.results import HostResult, Status, parse_probe_output

LOCAL, PEER = "192.0.2.1", "192.0.2.2"


def document(out_rsts, trace=None, capture=None, owners=None, tcpext=None, sysctls=None,
             addresses=(LOCAL,)):
    doc = {"schema": 1, "kind": "rstfleet-probe", "window": {"measured_s": 10.0},
           "tcp": {"delta": {"OutRsts": out_rsts}}, "tcpext_delta": tcpext or {},
           "sysctls": sysctls or {}, "facts": {"addresses": list(addresses)}}
    for key, value in (("trace", trace), ("capture", capture), ("owners", owners)):
        if value is not None:
            doc[key] = value
    return parse_probe_output(json.dumps(doc).encode())


def evidence(doc, pcap=None, capture_note=""):
    return host_evidence(HostResult("h1", LOCAL, Status.OK, "", doc, pcap=pcap, capture_note=capture_note))


def traced(*flows):
    return {"available": True, "events": sum(f[3] for f in flows), "flows": [list(f) for f in flows]}


def test_a_host_without_a_probe_document_has_no_evidence():
    assert host_evidence(HostResult("h1", LOCAL, Status.UNREACHABLE, "refused")) is None


def test_the_tracepoint_tier_is_chosen_and_recorded_when_the_trace_was_available():
    found = evidence(document(20, trace=traced([9, PEER, "NO_SOCKET", 20])))
    assert found.tier == "tracepoint"
    assert found.evidence_used == ["tracepoint", "counters"]
    assert [(c.key, c.resets) for c in found.causes] == [("closed_port", 20)]


def test_without_the_trace_the_counters_tier_is_used_and_the_reason_is_noted():
    found = evidence(document(5, trace={"available": False, "reason": "tracefs is not mounted"},
                              tcpext={"TCPAbortOnClose": 5}))
    assert (found.tier, found.evidence_used) == ("counters", ["counters"])
    assert "no per-reset attribution: tracefs is not mounted" in found.notes
    assert [c.key for c in found.causes] == ["aborted_connection"]


def test_a_host_that_sent_no_reset_and_has_no_trace_has_tier_none():
    found = evidence(document(0))
    assert (found.tier, found.causes, found.top_ports) == ("none", [], [])


def test_ports_and_peers_come_from_trace_flows_and_a_listeners_wildcard_is_no_peer():
    found = evidence(document(9, trace=traced([9, PEER, "NO_SOCKET", 5], [8083, "0.0.0.0", "INVALID_SYN", 3],
                                              [9, "192.0.2.3", "NO_SOCKET", 1])))
    assert [(p.port, p.resets) for p in found.top_ports] == [(9, 6), (8083, 3)]
    assert found.top_peers == [(PEER, 5), ("192.0.2.3", 1)]


def test_the_controllers_capture_note_is_kept_in_the_notes():
    found = evidence(document(1), capture_note="capture not kept: run dir is not writable")
    assert "capture not kept: run dir is not writable" in found.notes


def test_a_capture_the_host_could_not_make_is_noted_with_its_reason():
    found = evidence(document(1, capture={"available": False, "reason": "tcpdump is not installed"}))
    assert "no capture: tcpdump is not installed" in found.notes
    assert "capture" not in found.evidence_used


def test_capture_bytes_that_cannot_be_decoded_give_a_note_not_a_crash():
    for garbage in (b"not a pcap at all", b"\xd4\xc3\xb2\xa1" + b"\x00" * 10):
        found = evidence(document(3), pcap=garbage)
        assert any(note.startswith("capture unreadable: ") for note in found.notes)
        assert "capture" not in found.evidence_used
        assert found.tier == "counters"


def test_resets_sent_in_a_raw_ip_capture_give_their_local_port_and_peer():
    found = evidence(document(2), pcap=pcap_file([v4_rst(LOCAL, 8080, PEER, 40000),
                                                  v4_rst(LOCAL, 8080, PEER, 40001)], linktype=101))
    assert found.evidence_used == ["counters", "capture"]
    assert [(p.port, p.resets) for p in found.top_ports] == [(8080, 2)]
    assert found.top_peers == [(PEER, 2)]


def test_an_ethernet_capture_is_read_the_same_way():
    found = evidence(document(1), pcap=pcap_file([eth(v4_rst(LOCAL, 443, PEER, 5555))], linktype=1))
    assert [(p.port, p.resets) for p in found.top_ports] == [(443, 1)]


def test_resets_the_host_received_are_not_counted_as_sent():
    found = evidence(document(0), pcap=pcap_file([v4_rst(PEER, 22, LOCAL, 50000)], linktype=101))
    assert "capture" in found.evidence_used
    assert (found.top_ports, found.top_peers) == ([], [])


def test_with_trace_and_capture_ports_come_from_the_trace_and_bare_rsts_split_off_half_open():
    flows = traced([9, PEER, "NO_SOCKET", 4])
    capture = pcap_file([*[v4_rst(LOCAL, 9, PEER, 40000 + i, RST if i < 2 else RST | ACK) for i in range(4)],
                         v4_rst(LOCAL, 7777, PEER, 1)], linktype=101)   # on the wire only: not a traced port
    found = evidence(document(4, trace=flows), pcap=capture)
    assert found.tier == "tracepoint"
    assert found.evidence_used == ["tracepoint", "counters", "capture"]
    assert [(p.port, p.resets) for p in found.top_ports] == [(9, 4)]
    assert {c.key: c.resets for c in found.causes} == {"half_open": 2, "closed_port": 2}


def test_owners_looked_up_on_the_host_describe_the_top_ports():
    owners = {"method": "lsof", "ports": {"9": {"listening": False, "owners": []},
                                          "80": {"listening": True,
                                                 "owners": [{"pid": 42, "command": "nginx"}]}}}
    found = evidence(document(3, trace=traced([9, PEER, "NO_SOCKET", 2], [80, PEER, "TCP_ABORT_ON_CLOSE", 1]),
                              owners=owners))
    assert found.evidence_used[-1] == "lsof"
    by_port = {p.port: p for p in found.top_ports}
    assert by_port[9].listening is False and by_port[9].owners == []
    assert by_port[80].listening is True and by_port[80].owners[0]["command"] == "nginx"
