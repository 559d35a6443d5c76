"""The probe's side of Netdata (probe/host/netdata.py, exact.py): loopback only, bounded, and the
agent's real answers read right.

Fixtures in tests/fixtures/netdata/ are real HTTP answers of Debian's Netdata 1.37.1 in a lab host
(status line, headers and body as sent), captured while it watched 20 resets/s, then 90/s after a
quiet minute (WARNING), and 80/s (the burst Netdata's rule missed: CLEAR; docs/netdata.md). Where
a test needs an agent to talk to, a small HTTP server on 127.0.0.1 replays those answers: the
real agent is started in tests/e2e/test_netdata_e2e.py; here the cases it cannot be made to
produce (redirects, chunked or oversized or slow answers) are the point.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest

from rstfleet.probe.host import netdata
from rstfleet.probe.host.exact import OutRstsSampler, minute_section
from rstfleet.probe.host.limits import MAX_HISTORY_POINTS, NETDATA_MAX_BYTES

from helpers import FIXTURES

CAPTURED = FIXTURES / "netdata"


def captured(name: str) -> bytes:
    return (CAPTURED / name).read_bytes()


def body(name: str):
    return json.loads(captured(name).split(b"\r\n\r\n", 1)[1])


class Replay:
    """Answers GET PATH with canned bytes (path without its query -> raw answer), one thread."""

    def __init__(self, answers: dict, delay_s: float = 0.0):
        self.answers, self.delay_s, self.paths = answers, delay_s, []
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(8)
        self.port = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    request += chunk
                path = request.split(b" ")[1].decode() if request.count(b" ") >= 2 else ""
                self.paths.append(path)
                time.sleep(self.delay_s)
                answer = self.answers.get(path.split("?")[0], b"HTTP/1.1 404 Not Found\r\n\r\n")
                try:
                    conn.sendall(answer)
                except OSError:
                    pass

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self):
        self.server.close()


@pytest.fixture
def replay():
    servers = []

    def make(answers, delay_s=0.0):
        servers.append(Replay(answers, delay_s))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


WARNING_AGENT = {"/api/v1/alarms_values": captured("1.37.1-alarms_values-warning.http"),
                 "/api/v1/alarms": captured("1.37.1-alarms-active-warning.http"),
                 "/api/v1/data": captured("1.37.1-data-90-per-s.http")}


# --- where the agent may be -------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("http://127.0.0.1:19999", (socket.AF_INET, "127.0.0.1", 19999, "")),
    ("http://127.0.0.1", (socket.AF_INET, "127.0.0.1", 19999, "")),
    ("http://localhost:8080/", (socket.AF_INET, "127.0.0.1", 8080, "")),
    ("http://[::1]:19999", (socket.AF_INET6, "::1", 19999, "")),
    ("http://[0:0:0:0:0:0:0:1]", (socket.AF_INET6, "::1", 19999, "")),
    ("http://127.1.2.3:19999/netdata", (socket.AF_INET, "127.1.2.3", 19999, "/netdata")),
])
def test_a_loopback_url_is_read_as_family_address_port_and_prefix(text, expected):
    assert netdata.parse_agent_url(text) == expected


@pytest.mark.parametrize("text", ["http://198.18.0.1:19999", "http://192.0.2.1", "http://[::2]", "http://[::ffff:127.0.0.1]",
                                  "https://127.0.0.1", "http://127.0.0.1:70000", "http://127.1", "http://example.com",
                                  "http://localhost.evil.example", "http://127.0.0.1/a/../b", "http://127.0.0.1?x=1",
                                  "http://user@127.0.0.1", "", "auto "])
def test_anything_but_a_loopback_url_is_refused(text):
    with pytest.raises(ValueError):
        netdata.parse_agent_url(text)


def test_bind_says_whether_anything_listens_without_sending_a_packet():
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)     # as Netdata's listener does
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    assert netdata.port_held(socket.AF_INET, "127.0.0.1", port) is True
    client = socket.create_connection(("127.0.0.1", port))
    served, _ = listener.accept()
    served.close()                 # the server closes first: its end of the port goes TIME_WAIT
    client.recv(1)
    client.close()
    listener.close()
    assert netdata.port_held(socket.AF_INET, "127.0.0.1", port) is False   # TIME_WAIT is no agent


def test_auto_with_no_agent_tries_both_loopbacks_and_says_nothing_listens(monkeypatch):
    monkeypatch.setattr(netdata, "port_held", lambda family, address, port: False)
    answer = netdata.ask_agent("auto", 300)
    assert answer["available"] is False and answer["cost_s"] < 0.1
    assert answer["reason"] == ("nothing listens on http://127.0.0.1:19999; "
                                "nothing listens on http://[::1]:19999")


# --- the agent's real answers -------------------------------------------------------------------

def test_the_alarms_of_both_sides_are_picked_from_a_real_answer_with_their_chart():
    alarms = netdata.pick_alarms(body("1.37.1-alarms_values-warning.http"))
    assert set(alarms) == {"10s_ipv4_tcp_resets_sent", "1m_ipv4_tcp_resets_sent",
                           "10s_ipv4_tcp_resets_received", "1m_ipv4_tcp_resets_received"}
    assert alarms["10s_ipv4_tcp_resets_sent"] == {"status": "WARNING", "value": 53.3967328,
                                                  "last_status_change": None, "chart": "ipv4.tcphandshake"}
    full = netdata.pick_alarms(body("1.37.1-alarms-all-warning.http"))
    assert full["10s_ipv4_tcp_resets_sent"]["last_status_change"] == 1795963716


def test_the_newer_generation_is_picked_too():
    """Handwritten from the 1.37.1 answer: Netdata ≥ 1.43 names the alarm 10s_ip_… on ip.tcphandshake."""
    answer = json.loads(json.dumps(body("1.37.1-alarms_values-warning.http")).replace("ipv4", "ip"))
    alarms = netdata.pick_alarms(answer)
    assert alarms["10s_ip_tcp_resets_sent"]["chart"] == "ip.tcphandshake"


def test_history_is_the_outrsts_column_oldest_first_without_gaps():
    history = netdata.parse_history(body("1.37.1-data-90-per-s.http"), 120)
    assert 60 <= len(history) <= 80                # 120 s asked of an agent up ~72 s: the rest were nulls
    assert [t for t, _ in history] == sorted(t for t, _ in history)
    assert max(v for _, v in history) == pytest.approx(90.0, rel=0.02)
    assert all(v >= 0 for _, v in history)


@pytest.mark.parametrize("answer", [{}, {"labels": ["time"], "data": []}, {"labels": "x", "data": []}, [], None])
def test_a_history_answer_without_outrsts_is_an_agent_error(answer):
    with pytest.raises(netdata.AgentError):
        netdata.parse_history(answer, 300)


def test_a_hostile_history_is_cut_and_cleaned():
    rows = [[i, float("nan") if i % 3 else -5.0, 1] for i in range(5000)]
    history = netdata.parse_history({"labels": ["time", "OutRsts", "x"], "data": rows}, 300)
    assert len(history) == MAX_HISTORY_POINTS and all(v == 5.0 for _, v in history)


# --- talking to an agent (the replay server) ----------------------------------------------------

def test_asking_the_agent_gives_alarms_since_when_history_and_version(replay):
    agent = replay(WARNING_AGENT)
    answer = netdata.ask_agent(agent.url, 120)
    assert answer["available"] is True and answer["version"] == "1.37.1" and answer["url"] == agent.url
    assert answer["alarms"]["10s_ipv4_tcp_resets_sent"]["status"] == "WARNING"
    assert answer["alarms"]["10s_ipv4_tcp_resets_sent"]["last_status_change"] == 1795963716
    assert answer["chart"] == "ipv4.tcphandshake" and len(answer["history"]) > 60
    assert [p.split("?")[0] for p in agent.paths] == ["/api/v1/alarms_values", "/api/v1/alarms", "/api/v1/data"]
    assert "chart=ipv4.tcphandshake&after=-120&points=120" in agent.paths[-1]


def test_a_clear_alarm_needs_no_second_request_and_a_missing_chart_tries_the_other_generation(replay):
    agent = replay({"/api/v1/alarms_values": captured("1.37.1-alarms_values-clear.http"),
                    "/api/v1/data": captured("1.37.1-data-no-such-chart.http")})
    answer = netdata.ask_agent(agent.url, 60)
    assert answer["available"] is True and answer["history"] == [] and "chart" not in answer
    assert [p.split("chart=")[1].split("&")[0] for p in agent.paths[1:]] == ["ipv4.tcphandshake", "ip.tcphandshake"]
    assert "no tcphandshake chart yet" in answer["notes"][0]


def test_an_agent_without_the_compact_endpoint_is_asked_the_full_one(replay):
    agent = replay({"/api/v1/alarms": captured("1.37.1-alarms-all-warning.http"),
                    "/api/v1/data": captured("1.37.1-data-90-per-s.http")})
    answer = netdata.ask_agent(agent.url, 60)
    assert answer["alarms"]["10s_ipv4_tcp_resets_sent"]["last_status_change"] == 1795963716
    assert agent.paths[1] == "/api/v1/alarms?all"


def test_a_redirect_is_never_followed(replay):
    agent = replay({"/api/v1/alarms_values": b"HTTP/1.1 302 Found\r\nLocation: http://198.18.0.9/\r\n\r\n"})
    answer = netdata.ask_agent(agent.url, 60)
    assert answer["available"] is False and "302 (a redirect; never followed)" in answer["reason"]
    assert len(agent.paths) == 1


def test_an_oversized_answer_is_refused_at_its_bound(replay):
    huge = b"HTTP/1.1 200 OK\r\n\r\n" + b" " * (NETDATA_MAX_BYTES + 64 * 1024)
    answer = netdata.ask_agent(replay({"/api/v1/alarms_values": huge}).url, 60)
    assert answer["available"] is False and f"over {NETDATA_MAX_BYTES} bytes" in answer["reason"]


def test_a_slow_agent_costs_at_most_the_time_bound(replay):
    agent = replay(WARNING_AGENT, delay_s=3.0)
    started = time.monotonic()
    answer = netdata.ask_agent(agent.url, 60, timeout_s=0.5)
    assert time.monotonic() - started < 1.0
    assert answer["available"] is False and "within" in answer["reason"]


def test_a_chunked_answer_is_read_and_a_compressed_one_refused(replay):
    payload = captured("1.37.1-alarms_values-warning.http").split(b"\r\n\r\n", 1)[1]
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"".join(b"%x\r\n%s\r\n" % (len(payload[i:i + 1000]), payload[i:i + 1000])
                          for i in range(0, len(payload), 1000)) + b"0\r\n\r\n")
    answer = netdata.ask_agent(replay(dict(WARNING_AGENT, **{"/api/v1/alarms_values": chunked})).url, 60)
    assert answer["alarms"]["10s_ipv4_tcp_resets_sent"]["status"] == "WARNING"
    gzipped = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n\x1f\x8b"
    answer = netdata.ask_agent(replay({"/api/v1/alarms_values": gzipped}).url, 60)
    assert "gzip-encoded" in answer["reason"]


def test_not_json_and_not_http_are_reasons_not_crashes(replay):
    for raw in (b"HTTP/1.1 200 OK\r\n\r\n<html>", b"SSH-2.0-OpenSSH_9.2\r\n", b""):
        answer = netdata.ask_agent(replay({"/api/v1/alarms_values": raw}).url, 60)
        assert answer["available"] is False and answer["reason"]


def test_an_off_loopback_url_given_to_the_probe_is_a_reason_and_no_connection():
    answer = netdata.ask_agent("http://198.18.0.1:19999", 60)
    assert answer == {"available": False, "cost_s": 0.0,
                      "reason": "--netdata: 198.18.0.1 is not a loopback address (127.0.0.0/8, [::1], "
                                "localhost); the agent is only ever asked on loopback"}


# --- the exact baseline's minute -------------------------------------------------------------------

def test_the_sampler_records_outrsts_per_second_and_the_minute_is_contiguous_with_the_window(tmp_path):
    snmp = tmp_path / "snmp"
    clock = {"t": 100.0}

    def write(out_rsts):
        snmp.write_text(f"Tcp: RtoAlgorithm OutRsts\nTcp: 1 {out_rsts}\n")

    write(1000)
    sampler = OutRstsSampler(clock=lambda: clock["t"], wall=lambda: clock["t"] + 1e9, path=str(snmp))
    for second, total in enumerate((1000, 1005, 1105, 1105), start=1):
        clock["t"] = 100.0 + second * 0.5          # ticks every half second: samples every second
        write(total)
        sampler.tick()
    assert sampler.history == [[1e9 + 101.0, 5.0], [1e9 + 102.0, 100.0]]
    section = minute_section(1e9 + 100.0, sampler.first_out_rsts, 1105, 60.0, sampler.history)
    assert section["OutRsts"] == 105 and section["per_s"] == pytest.approx(1.75)
    assert minute_section(0.0, 1000, 900, 60.0, [])["per_s"] is None       # counter went backwards
