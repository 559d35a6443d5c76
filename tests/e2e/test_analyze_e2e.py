"""`rstfleet analyze` on captures made in the lab with the guide's own command, run exactly:

    tcpdump -i any 'tcp[tcpflags] & (tcp-rst) == (tcp-rst)' -s 65535 -w output.pcap

inside h01's namespace while the lab's scenarios make each cause for real (rstfleet_lab.scenarios).
Two things are checked: the capture rule itself (an RST+ACK with seq 0 answers a SYN, an RST+ACK
with a sequence number is an abort, a bare RST answers a segment of an unknown connection — the
table of docs/causes.md, "From a capture alone"), and the command: it names the right sender,
port, peer and cause, and its counts per direction equal tcpdump -r's own (the oracle), for the
pcap and for the same capture saved as pcapng (Wireshark's format, written by tests/pcap_builders.py:
no tool here writes pcapng, and tcpdump -r reads it back as the oracle).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess

import pytest

from helpers import RST_BPF, reset_rows, run_cli, tcpdump_read, tcpdump_resets
from pcap_builders import pcap_to_pcapng
from rstfleet.evidence.causes import capture_kind
from rstfleet.evidence.pcap import read_resets
from rstfleet_lab import scenarios as scn

pytestmark = pytest.mark.lab

GUIDE_FILTER = "tcp[tcpflags] & (tcp-rst) == (tcp-rst)"
BLOCK_WAIT_S = 2.0   # libpcap hands packets over in ~1 s TPACKET_V3 blocks: SIGINT too early loses them


@contextlib.contextmanager
def guide_capture(namespace: str, path):
    """The guide's tcpdump in a lab namespace, writing ``path``; stopped (SIGINT) after the block."""
    path.parent.chmod(0o777)           # Debian's tcpdump writes the file after dropping to user tcpdump
    proc = subprocess.Popen(["ip", "netns", "exec", namespace, "tcpdump", "-i", "any", GUIDE_FILTER,
                             "-s", "65535", "-w", str(path)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        err = b""
        while b"listening on" not in err:
            assert proc.poll() is None and select.select([proc.stderr], [], [], 10)[0], err
            err += os.read(proc.stderr.fileno(), 4096)
        yield
        select.select([], [], [], BLOCK_WAIT_S)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            err += proc.communicate(timeout=15)[1]
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
    assert b"\n0 packets dropped by kernel" in err, err


def count(path, bpf: str) -> int:
    """The oracle's count: tcpdump -r PATH 'BPF' lines."""
    proc = tcpdump_read(path, bpf)
    assert proc.returncode == 0, proc.stderr
    return len(proc.stdout.splitlines())


# scenario -> (its keyword arguments, the kinds of the host's resets it makes, from the capture alone)
MEASURED = {
    "closed_port": ({"port": 9, "count": 5}, {"syn": 5}),
    "port_scan": ({"ports": range(20000, 20020)}, {"syn": 20}),
    "abort_on_close": ({"port": 8081}, {"abort": 3}),
    "linger_zero": ({"port": 8082}, {"abort": 3}),
    "half_open": ({"port": 8085}, {"stray": 3}),
    "half_open_no_listener": ({"port": 8087, "keep_listener": False}, {"stray": 3}),
    "time_wait": ({"port": 8084}, {"stray": 3}),
    "listen_overflow": ({"port": 8083}, {"stray": 3}),
    "crashed_service": ({"port": 8080}, {"abort": 2, "stray": 3, "syn": 3}),
}


def test_the_capture_rule_holds_for_every_cause_the_lab_makes(lab5, tmp_path):
    """One capture, each scenario on its own port of h01 with h02 as the peer: the flags and
    sequence number of h01's resets on each port are exactly the kinds measured in docs/causes.md."""
    host, peer = lab5.hosts[0], lab5.hosts[1]
    path = tmp_path / "caps" / "output.pcap"
    path.parent.mkdir()
    with guide_capture(host.namespace, path):
        for name, (kwargs, _) in MEASURED.items():
            scn.SCENARIOS["half_open" if name.startswith("half_open") else name](lab5, host, peer, **kwargs)
        assassination = scn.time_wait_assassination(lab5, host, peer, port=8086)
    packets = read_resets(path.read_bytes())
    assert reset_rows(packets) == tcpdump_resets(path)[0]        # the reader agrees with tcpdump, seq too
    for name, (kwargs, kinds) in MEASURED.items():
        ports = set(kwargs.get("ports") or [kwargs["port"]])
        sent = [p for p in packets if p.src == host.address and p.sport in ports]
        seen = {kind: sum(capture_kind(p) == kind for p in sent) for kind in ("syn", "abort", "stray")}
        assert {k: n for k, n in seen.items() if n} == kinds, name
        assert all(p.direction == "out" for p in sent), name
    # time-wait assassination: the RST is the peer's (bare), received by the host
    received = [p for p in packets if p.dst == host.address and p.dport == 8086]
    assert [(p.src, p.sport, capture_kind(p), p.direction) for p in received] == \
        [(peer.address, assassination["client_port"], "stray", "in")]


def test_analyze_names_sender_port_peer_and_cause_and_counts_as_tcpdump_does(lab5, tmp_path):
    """h01 is scanned by h02, gets SYNs on closed port 9 from h03, aborts h04's connections, and
    is itself refused by h05: every address that sent resets is a host of the report."""
    h1, h2, h3, h4, h5 = lab5.hosts
    path = tmp_path / "caps" / "output.pcap"
    path.parent.mkdir()
    with guide_capture(h1.namespace, path):
        scn.port_scan(lab5, h1, h2, ports=range(21000, 21015))
        scn.closed_port(lab5, h1, h3, count=6, port=9)
        scn.abort_on_close(lab5, h1, h4, count=3, port=8091)
        scn.linger_zero(lab5, h1, h4, count=2, port=8092)
        scn.closed_port(lab5, h5, h1, count=4, port=7)              # h01's own connects refused
    pcapng = tmp_path / "output.pcapng"
    pcapng.write_bytes(pcap_to_pcapng(path.read_bytes()))
    assert tcpdump_resets(pcapng)[0] == tcpdump_resets(path)[0]      # the same capture, both formats

    expected_causes = {
        h1.address: {"port_scan": (15, h2.address), "closed_port": (6, h3.address),
                     "aborted_connection": (5, h4.address)},
        h5.address: {"closed_port": (4, h1.address)},
    }
    for capture in (path, pcapng):
        out = tmp_path / (capture.name + ".json")
        proc = run_cli("analyze", str(capture), "--format", "json", "-o", str(out), "--warn", "1")
        assert proc.returncode == 4, proc.stderr.decode()           # 26 resets from h01 in ~1 s
        report = json.loads(out.read_text())
        hosts = {h["host"]: h for h in report["hosts"]}
        assert list(hosts) == [h1.address, h5.address]               # worst first
        for sender, causes in expected_causes.items():
            found = {c["key"]: (c["resets"], c["peers"][0]) for c in hosts[sender]["evidence"]["causes"]}
            assert found == causes, sender
        h1_causes = {c["key"]: c for c in hosts[h1.address]["evidence"]["causes"]}
        assert h1_causes["closed_port"]["ports"] == [9]
        assert sorted(h1_causes["aborted_connection"]["ports"]) == [8091, 8092]
        assert len(h1_causes["port_scan"]["ports"]) == 5               # the top five of 15
        assert hosts[h1.address]["evidence"]["scan_suspects"] == [
            {"peer": h2.address, "distinct_ports": 15, "resets": 15}]
        assert hosts[h5.address]["evidence"]["top_ports"][0]["port"] == 7
        # counts per direction: the oracle's lines
        pairs = {(p["sender"], p["receiver"]): p["resets"] for p in report["captures"]["pairs"]}
        assert sum(pairs.values()) == count(capture, RST_BPF) == 30
        for (sender, receiver), resets in pairs.items():
            assert resets == count(capture, f"{RST_BPF} and src host {sender} and dst host {receiver}")
        assert hosts[h1.address]["resets_sent_per_s"] * report["window_s"] == \
            pytest.approx(count(capture, f"{RST_BPF} and src host {h1.address}"))


def test_analyze_local_reports_the_capturing_host_with_what_it_received(lab5, tmp_path):
    h1, h2, h3 = lab5.hosts[:3]
    path = tmp_path / "caps" / "output.pcap"
    path.parent.mkdir()
    with guide_capture(h1.namespace, path):
        scn.closed_port(lab5, h2, h1, count=5, port=9)          # h01 is refused by h02
        scn.linger_zero(lab5, h3, h1, count=2, port=8093)       # and aborted by h03
        scn.closed_port(lab5, h1, h3, count=3, port=11)         # and refuses h03 itself
    out = tmp_path / "local.json"
    proc = run_cli("analyze", str(path), "--local", h1.address, "--format", "json", "-o", str(out))
    assert proc.returncode == 0, proc.stderr.decode()
    [host] = json.loads(out.read_text())["hosts"]
    assert host["host"] == h1.address
    assert [(c["key"], c["resets"], c["ports"]) for c in host["evidence"]["causes"]] == [("closed_port", 3, [11])]
    received = host["evidence"]["notes"][0]
    assert received == (f"received 7 resets: from {h2.address} (5: closed_port 5; its port(s) 9), "
                        f"from {h3.address} (2: aborted_connection 2; its port(s) 8093)")
    assert count(path, f"{RST_BPF} and dst host {h1.address}") == 7
    assert "received 7 resets" in proc.stdout.decode()          # the table shows it too
