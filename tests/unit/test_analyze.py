"""`rstfleet analyze` and the reader behind it, on crafted capture files.

Every reading rule is checked against tcpdump -r (libpcap 1.10) as the oracle, on the same bytes:
snaplens of 0 or beyond the maximum, records longer than the snaplen, oversize records, obsolete
pcapng Packet Blocks, both byte orders. The captures themselves are crafted (the builders in
tests/pcap_builders.py) because no tool here writes these cases on demand; captures made by
tcpdump in the lab are in tests/e2e/test_analyze_e2e.py.
"""

from __future__ import annotations

import json
import struct

import pytest

from helpers import reset_rows, run_cli, tcpdump_read, tcpdump_resets
from pcap_builders import (
    ACK, RST, SYN, eth, ipv4, ng_epb, ng_idb, ng_pb, ng_shb, pcap_file, pcap_to_pcapng, tcp, v4_rst,
)
from report_parsers import validate_schema
from rstfleet.evidence.capture_hosts import CaptureRead, capture_hosts, capture_span, pairs
from rstfleet.evidence.causes import SCAN_MIN_PORTS, SYN_ATTACK_MIN_PEERS, from_capture
from rstfleet.evidence.pcap import MAX_CAPLEN, PcapError, ResetPacket, read_resets

SERVER, CLIENT, OTHER = "198.18.0.2", "198.18.0.3", "198.18.0.4"


def mixed_frames(payload: bytes = b""):
    """One reset of each kind the server sends, one the client sends, and two that are not resets."""
    return [
        eth(ipv4(SERVER, CLIENT, tcp(9, 40000, RST | ACK, seq=0, ack=1001) + payload)),        # refuses a SYN
        eth(ipv4(SERVER, CLIENT, tcp(8081, 40001, RST | ACK, seq=123456, ack=7) + payload)),   # aborts
        eth(ipv4(SERVER, CLIENT, tcp(8085, 40002, RST, seq=777) + payload)),                   # half-open
        eth(ipv4(CLIENT, SERVER, tcp(40003, 9, SYN) + payload)),                               # not a reset
        eth(b"\x00" * 28, ethertype=0x0806),                                                    # ARP
        eth(ipv4(CLIENT, SERVER, tcp(40004, 22, RST, seq=99) + payload)),                      # the client's
    ]


def written(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------- snaplen, as libpcap

@pytest.mark.parametrize("snaplen", [0, 65535, 524288, 0xFFFFFFFF], ids=["zero", "65535", "macos", "max-u32"])
@pytest.mark.parametrize("order", ["<", ">"], ids=["little", "big"])
@pytest.mark.parametrize("nano", [False, True], ids=["us", "ns"])
def test_a_snaplen_of_zero_or_beyond_the_maximum_reads_as_tcpdump_reads_it(tmp_path, snaplen, order, nano):
    path = written(tmp_path, "f.pcap", pcap_file(mixed_frames(), order=order, nano=nano, snaplen=snaplen))
    oracle, stderr, code = tcpdump_resets(path)
    packets = read_resets(path.read_bytes())
    assert code == 0 and len(oracle) == 4
    assert reset_rows(packets) == oracle
    assert (packets.records, packets.skipped, packets.cut, packets.undecodable) == (6, 0, 0, {})
    assert packets.notes() == []


def test_a_record_longer_than_the_snaplen_is_cut_to_it_as_tcpdump_cuts_it(tmp_path):
    """54 bytes hold Ethernet, IPv4 and TCP headers: the 20-byte payloads are cut, the resets stay."""
    path = written(tmp_path, "cut.pcap", pcap_file(mixed_frames(payload=b"x" * 20), snaplen=54))
    oracle, _, code = tcpdump_resets(path)
    packets = read_resets(path.read_bytes())
    assert code == 0 and reset_rows(packets) == oracle and len(oracle) == 4
    assert packets.cut == 5                       # the ARP frame (42 bytes) fits
    assert any("cut to it, as libpcap does" in note for note in packets.notes())


def test_a_file_whose_records_are_all_cut_before_the_tcp_flags_is_an_error_not_zero_resets(tmp_path):
    path = written(tmp_path, "short.pcap", pcap_file([eth(v4_rst(SERVER, 9, CLIENT, 40000))] * 3, snaplen=40))
    printed = tcpdump_read(path).stdout.splitlines()
    assert len(printed) == 3 and all(line.endswith("[|tcp]") for line in printed)   # cut, as here
    with pytest.raises(PcapError, match="none of the 3 packet record.* could be decoded .*cut"):
        read_resets(path.read_bytes())


# --------------------------------------------------------------------------- oversize records

def test_an_oversize_record_is_skipped_and_counted_where_tcpdump_stops_at_it(tmp_path):
    before, after = mixed_frames()[:3], mixed_frames()[3:]
    oversize = (b"\x00" * (MAX_CAPLEN + 100), MAX_CAPLEN + 100, MAX_CAPLEN + 100)
    path = written(tmp_path, "over.pcap", pcap_file(before + [oversize] + after))
    stopped, stderr, code = tcpdump_resets(path)
    assert code != 0 and f"invalid packet capture length {MAX_CAPLEN + 100}" in stderr
    whole, _, _ = tcpdump_resets(written(tmp_path, "without.pcap", pcap_file(before + after)))
    packets = read_resets(path.read_bytes())
    assert reset_rows(packets)[:len(stopped)] == stopped and len(stopped) == 3
    assert reset_rows(packets) == whole and len(whole) == 4
    assert (packets.records, packets.skipped) == (7, 1)
    assert any("1 record(s) longer than the 262144-byte maximum skipped" in n for n in packets.notes())


def test_an_oversize_record_whose_bytes_are_missing_is_an_error(tmp_path):
    data = pcap_file(mixed_frames()[:1] + [(b"\x00" * 64, MAX_CAPLEN + 1, MAX_CAPLEN + 1)])
    with pytest.raises(PcapError, match="beyond the 262144-byte maximum and runs past the data"):
        read_resets(data)


def test_a_pcapng_oversize_packet_is_skipped_and_counted():
    frame = mixed_frames()[0]
    data = (ng_shb() + ng_idb(1) + ng_epb(0, 0, b"\x00" * (MAX_CAPLEN + 4)) + ng_epb(0, 10**6, frame))
    packets = read_resets(data)
    assert reset_rows(packets) == [(SERVER, 9, CLIENT, 40000, "R.", 0)]
    assert (packets.records, packets.skipped) == (2, 1)


# --------------------------------------------------------------------------- pcapng

@pytest.mark.parametrize("order", ["<", ">"], ids=["little", "big"])
@pytest.mark.parametrize("block", [6, 2], ids=["enhanced", "obsolete-packet-block"])
def test_pcapng_enhanced_and_obsolete_packet_blocks_read_as_tcpdump_reads_them(tmp_path, order, block):
    data = pcap_to_pcapng(pcap_file(mixed_frames(), nano=True), order, block)
    idb_length = struct.unpack_from(order + "I", data, 28 + 4)[0]
    assert struct.unpack_from(order + "I", data, 28 + idb_length)[0] == block   # after the SHB and IDB
    path = written(tmp_path, "f.pcapng", data)
    oracle, _, code = tcpdump_resets(path)
    packets = read_resets(data)
    assert code == 0 and reset_rows(packets) == oracle and len(oracle) == 4
    assert packets[0].ts == pytest.approx(1_700_000_000.123456789)
    assert (packets.first_ts, packets.last_ts) == (pytest.approx(1_700_000_000.123456789),
                                                   pytest.approx(1_700_000_005.123456789))


def test_an_obsolete_packet_block_carries_its_direction_in_pack_flags():
    frame = mixed_frames()[0]
    data = ng_shb(">") + ng_idb(1, ">") + ng_pb(0, 0, frame, ">", flags=2) + ng_pb(0, 1, frame, ">", flags=1)
    assert [p.direction for p in read_resets(data)] == ["out", "in"]


def test_a_pcapng_with_only_link_types_it_does_not_decode_is_an_error_naming_them(tmp_path):
    frame = mixed_frames()[0]
    data = (ng_shb() + ng_idb(147) + ng_idb(127) + ng_epb(0, 0, frame) + ng_epb(1, 0, frame)
            + ng_epb(0, 0, frame))
    one_type = ng_shb() + ng_idb(147) + ng_epb(0, 0, frame)    # libpcap refuses mixed link types
    printed = tcpdump_read(written(tmp_path, "u.pcapng", one_type)).stdout
    assert "UNSUPPORTED" in printed and " IP " not in printed          # tcpdump cannot decode it either
    with pytest.raises(PcapError, match=r"none of the 1 .*1 link type 147"):
        read_resets(one_type)
    with pytest.raises(PcapError, match=r"none of the 3 .*1 link type 127, 2 link type 147"):
        read_resets(data)


def test_a_pcapng_mixing_decoded_and_undecoded_link_types_reads_what_it_can_and_counts_the_rest():
    frame = mixed_frames()[0]
    data = ng_shb() + ng_idb(147) + ng_idb(1, snaplen=0) + ng_epb(0, 0, frame) + ng_epb(1, 0, frame)
    packets = read_resets(data)
    assert len(packets) == 1 and packets.undecodable == {"link type 147": 1}
    assert packets.notes() == ["1 record(s) not decoded: link type 147"]


# --------------------------------------------------------------------------- causes from a capture

def _rst(src, sport, dst, dport, flags=RST | ACK, seq=0, ts=1.0):
    return ResetPacket(ts, src, sport, dst, dport, flags, "out", seq)


def test_causes_from_a_capture_follow_the_resets_own_flags_and_sequence_number():
    packets = ([_rst(SERVER, 9, CLIENT, 40000 + i) for i in range(3)]
               + [_rst(SERVER, 20000 + i, OTHER, 50000) for i in range(SCAN_MIN_PORTS)]
               + [_rst(SERVER, 8081, CLIENT, 41000 + i, seq=1 + i) for i in range(2)]
               + [_rst(SERVER, 8085, CLIENT, 42000, flags=RST, seq=5)]
               + [_rst(SERVER, 443, f"198.19.{i // 250}.{i % 250 + 1}", 43000) for i in range(SYN_ATTACK_MIN_PEERS)])
    causes = {c.key: c for c in from_capture(packets)}
    assert {k: c.resets for k, c in causes.items()} == {
        "syn_reset_attack": SYN_ATTACK_MIN_PEERS, "port_scan": SCAN_MIN_PORTS, "closed_port": 3,
        "aborted_connection": 2, "half_open": 1}
    assert causes["closed_port"].ports == [9] and causes["port_scan"].peers == [OTHER]
    assert causes["half_open"].evidence[0].startswith("capture: 1 × RST without ACK")
    assert all(e.startswith("capture:") for c in causes.values() for e in c.evidence)
    assert sum(c.share for c in causes.values()) == pytest.approx(1.0)


def test_the_span_is_the_union_of_each_files_first_to_last_record():
    def read(*stamps):
        packets = read_resets(pcap_file([mixed_frames()[0]] * len(stamps), t0=0))
        packets.first_ts, packets.last_ts = min(stamps), max(stamps)
        return CaptureRead("f", packets)
    assert capture_span([read(100, 110), read(105, 120), read(200, 230)]) == 50
    assert capture_span([read(100, 100)]) == 1.0                     # at least a second


def test_each_sender_is_a_host_with_what_it_sent_and_received():
    packets = read_resets(pcap_file(mixed_frames()))
    hosts = {h.name: h for h in capture_hosts([CaptureRead("f.pcap", packets)])}
    assert set(hosts) == {SERVER, CLIENT}
    server, client = hosts[SERVER], hosts[CLIENT]
    assert (server.sent, server.received, server.received_from) == (3, 1, {CLIENT: 1})
    assert [c.key for c in server.evidence.causes] == ["aborted_connection", "closed_port", "half_open"]
    assert server.evidence.notes[0] == f"received 1 resets: from {CLIENT} (1: half_open 1; its port(s) 40004)"
    assert (client.sent, client.received) == (1, 3)
    local = capture_hosts([CaptureRead("f.pcap", packets)], local=[CLIENT])
    assert [(h.name, h.sent, h.received) for h in local] == [(CLIENT, 1, 3)]
    assert pairs([CaptureRead("f.pcap", packets)], limit=1) == \
        ([{"sender": SERVER, "receiver": CLIENT, "resets": 3}], 2)


# --------------------------------------------------------------------------- the command

def test_analyze_ranks_senders_and_its_json_counts_every_direction(tmp_path):
    frames = mixed_frames() * 30                       # 90 resets from the server, 30 from the client
    path = written(tmp_path, "f.pcapng", pcap_to_pcapng(pcap_file(frames), ">"))
    out = tmp_path / "r.json"
    proc = run_cli("analyze", str(path), "--format", "json", "-o", str(out), "--warn", "0.4")
    assert proc.returncode == 4, proc.stderr.decode()        # the server: 90 resets over 179 s
    report = json.loads(out.read_text())
    assert report["window_s"] == pytest.approx(len(frames) - 1)
    assert [(h["host"], h["verdict"]) for h in report["hosts"]] == [(SERVER, "warn"), (CLIENT, "ok")]
    assert report["hosts"][0]["resets_sent_per_s"] == pytest.approx(90 / 179)
    assert report["captures"]["pairs"] == [{"sender": SERVER, "receiver": CLIENT, "resets": 90},
                                          {"sender": CLIENT, "receiver": SERVER, "resets": 30}]
    assert report["captures"]["pairs_total"] == 2
    validate_schema(report)                                   # docs/report-schema.json, captures too
    assert b"198.18.0.2" in proc.stdout                       # the table went to stdout


def test_analyze_exit_code_follows_the_thresholds(tmp_path):
    path = written(tmp_path, "f.pcap", pcap_file(mixed_frames()))   # 4 resets over 5 s
    assert run_cli("analyze", str(path), "-q").returncode == 0
    assert run_cli("analyze", str(path), "-q", "--warn", "0.5").returncode == 4
    assert run_cli("analyze", str(path), "-q", "--warn", "0.5", "--fail-on", "never").returncode == 0


def test_analyze_local_reports_the_capturing_host_alone(tmp_path):
    path = written(tmp_path, "f.pcap", pcap_file(mixed_frames()))
    out = tmp_path / "r.json"
    assert run_cli("analyze", str(path), "--local", CLIENT, "--format", "json", "-o", str(out), "-q").returncode == 0
    [host] = json.loads(out.read_text())["hosts"]
    assert host["host"] == CLIENT and host["resets_sent_per_s"] == pytest.approx(1 / 5)
    assert host["evidence"]["notes"][0].startswith(f"received 3 resets: from {SERVER} (3: aborted_connection 1, "
                                                   f"closed_port 1, half_open 1")


def test_analyze_refuses_a_file_it_cannot_read_with_the_file_and_the_problem(tmp_path):
    good = written(tmp_path, "good.pcap", pcap_file(mixed_frames()))
    (tmp_path / "link.pcap").symlink_to(good)
    unsupported = written(tmp_path, "u.pcapng", ng_shb() + ng_idb(147) + ng_epb(0, 0, mixed_frames()[0]))
    cases = {str(tmp_path / "missing.pcap"): "No such file",
             str(tmp_path): "is not a regular file",
             str(tmp_path / "link.pcap"): "is a symbolic link",
             str(written(tmp_path, "text.pcap", b"hello, not a capture")): "not a pcap/pcapng capture",
             str(unsupported): "link type 147"}
    for path, problem in cases.items():
        proc = run_cli("analyze", str(good), path)
        assert proc.returncode == 2 and proc.stdout == b"", path
        assert f"rstfleet: {path}: " in proc.stderr.decode() and problem in proc.stderr.decode(), proc.stderr
    proc = run_cli("analyze", str(good), "--local", "web01")
    assert proc.returncode == 2 and "--local: 'web01' is not an IP address" in proc.stderr.decode()
