"""The kernel's reset reasons and TcpExt counters combined into the guide's causes, as measured
in docs/causes.md (pure functions; flows are [local port, peer, reason, count])."""

import pytest

from rstfleet.evidence.next_steps import cause_suggestion
from rstfleet.evidence.causes import (CAUSES, SCAN_MIN_PORTS, SYN_ATTACK_MIN_PEERS, combine,
                                      from_counters, from_trace, severity)

PEER = "198.51.100.7"


def trace(*flows):
    return {"available": True, "flows": [list(f) for f in flows]}


def shares(causes):
    return {c.key: round(c.share, 6) for c in causes}


def resets(causes):
    return {c.key: c.resets for c in causes}


@pytest.mark.parametrize("reason, cause", [
    ("NO_SOCKET", "closed_port"),
    ("TCP_ABORT_ON_CLOSE", "aborted_connection"),
    ("TCP_STATE", "aborted_connection"),
    ("TCP_ABORT_ON_MEMORY", "buffer_overflow"),
    ("TCP_TIMEWAIT_SOCKET", "time_wait_assassination"),
    ("TCP_FLAGS", "half_open"),
    ("INVALID_SYN", "listen_queue_full"),
    ("SOMETHING_NEWER", "other"),
    (None, "other"),                           # kernels before the reason field
])
def test_each_traced_reason_maps_to_the_cause_docs_causes_md_measured(reason, cause):
    [found] = from_trace(trace([8080, PEER, reason, 3]))
    assert (found.key, found.resets, found.share) == (cause, 3, 1.0)
    assert f"tracepoint: 3 × {reason or 'UNKNOWN'}" in found.evidence


def test_one_peer_on_enough_closed_ports_is_a_port_scan():
    scan = [[30000 + i, PEER, "NO_SOCKET", 2] for i in range(SCAN_MIN_PORTS)]
    causes = from_trace(trace(*scan, [9, "192.0.2.1", "NO_SOCKET", 5]))
    assert resets(causes) == {"port_scan": 2 * SCAN_MIN_PORTS, "closed_port": 5}
    assert causes[0].peers == [PEER]
    assert f"1 peer(s) hit ≥ {SCAN_MIN_PORTS} distinct closed ports" in causes[0].evidence


def test_one_peer_on_one_port_fewer_than_the_scan_threshold_stays_a_closed_port():
    few = [[30000 + i, PEER, "NO_SOCKET", 1] for i in range(SCAN_MIN_PORTS - 1)]
    assert resets(from_trace(trace(*few))) == {"closed_port": SCAN_MIN_PORTS - 1}


def test_many_peers_on_one_closed_port_are_a_syn_reset_attack():
    flood = [[9, f"198.18.{i // 200}.{i % 200}", "NO_SOCKET", 1] for i in range(SYN_ATTACK_MIN_PEERS)]
    causes = from_trace(trace(*flood, [10, PEER, "NO_SOCKET", 1]))
    assert resets(causes) == {"syn_reset_attack": SYN_ATTACK_MIN_PEERS, "closed_port": 1}
    assert causes[0].ports == [9]
    assert "dst port 9" in cause_suggestion("h1", causes[0], [], []).line


def test_a_listeners_wildcard_peer_counts_neither_for_a_scan_nor_as_a_peer():
    wild = [[8000 + i, "0.0.0.0", "NO_SOCKET", 1] for i in range(SCAN_MIN_PORTS)]
    [found] = from_trace(trace(*wild))
    assert (found.key, found.peers) == ("closed_port", [])


def test_bare_rsts_in_a_capture_split_no_socket_resets_into_half_open():
    causes = from_trace(trace([9, PEER, "NO_SOCKET", 10]), bare_share={(9, PEER): 0.3})
    assert resets(causes) == {"closed_port": 7, "half_open": 3}
    assert sum(c.share for c in causes) == pytest.approx(1.0)


def test_the_next_step_names_the_top_port_and_peer():
    [found] = from_trace(trace([9, PEER, "NO_SOCKET", 5], [9, "192.0.2.1", "NO_SOCKET", 2]))
    assert cause_suggestion("h1", found, [], []).line.startswith("lsof -i:9 -P -n")
    assert found.peers == [PEER, "192.0.2.1"]


def test_linger_zero_is_traced_as_tcp_state_and_the_counter_is_not_counted_again():
    causes = combine(trace([80, PEER, "TCP_STATE", 4]), 4, {"TCPAbortOnData": 4}, {})
    assert resets(causes) == {"aborted_connection": 4}
    assert any("SO_LINGER 0" in e for e in causes[0].evidence)


def test_resets_the_trace_did_not_keep_are_attributed_from_counters_as_an_unattributed_remainder():
    causes = combine(trace([9, PEER, "NO_SOCKET", 6]), 10, {}, {})
    assert resets(causes) == {"closed_port": 10}
    assert causes[0].share == pytest.approx(1.0)
    assert "4 of 10 resets were not kept by the tracepoint: attributed from counters" in causes[0].evidence


def test_untraced_abort_counters_explain_the_remainder_but_traced_ones_are_not_counted_twice():
    causes = combine(trace([9, PEER, "NO_SOCKET", 5], [80, PEER, "TCP_ABORT_ON_CLOSE", 2]), 10,
                     {"TCPAbortOnClose": 4}, {})
    assert resets(causes) == {"closed_port": 6, "aborted_connection": 4}
    assert shares(causes) == {"closed_port": 0.6, "aborted_connection": 0.4}


def test_shares_are_of_out_rsts_when_the_trace_kept_fewer_events():
    causes = combine(trace([9, PEER, "NO_SOCKET", 2]), 8, {"TCPAbortOnClose": 3}, {})
    assert shares(causes) == {"closed_port": 0.625, "aborted_connection": 0.375}
    assert sum(c.share for c in causes) <= 1.0 + 1e-9


def test_when_the_trace_kept_more_than_out_rsts_shares_are_of_the_traced_events():
    causes = combine(trace([9, PEER, "NO_SOCKET", 9], [80, PEER, "TCP_ABORT_ON_CLOSE", 3]), 10, {}, {})
    assert shares(causes) == {"closed_port": 0.75, "aborted_connection": 0.25}


def test_counters_name_a_listen_overflow_when_abort_on_overflow_is_on():
    causes = from_counters(6, {"ListenOverflows": 6}, {"net.ipv4.tcp_abort_on_overflow": 1})
    assert resets(causes) == {"listen_queue_full": 6}
    assert "TcpExt ListenOverflows +6" in causes[0].evidence[0]
    step = cause_suggestion("h1", causes[0], [], []).argv   # counters know no port: find it first
    assert step[0] == "tcpdump" and "-c" in step


def test_counters_leave_what_no_counter_explains_to_closed_ports():
    causes = from_counters(10, {"TCPAbortOnClose": 3, "TCPAbortOnMemory": 1}, {})
    assert resets(causes) == {"closed_port": 6, "aborted_connection": 3, "buffer_overflow": 1}
    assert [c.key for c in causes] == ["closed_port", "aborted_connection", "buffer_overflow"]
    assert sum(c.share for c in causes) == pytest.approx(1.0)


def test_no_resets_means_no_causes_and_neutral_severity():
    assert from_counters(0, {}, {}) == []
    assert combine(trace(), 0, {}, {}) == []
    assert severity([]) == 1.0


def test_counter_causes_never_claim_more_resets_than_out_rsts():
    causes = from_counters(10, {"TCPAbortOnClose": 10, "ListenOverflows": 500, "EmbryonicRsts": 3},
                           {"net.ipv4.tcp_abort_on_overflow": 0})
    assert sum(c.resets for c in causes) <= 10
    assert sum(c.share for c in causes) <= 1.0 + 1e-9


def test_on_kernels_without_reasons_the_untraced_remainder_is_not_blamed_on_traced_aborts():
    # Linux 5.x traces only full-socket resets, without a reason: here the 5 aborts (TCPAbortOnClose
    # +5) were traced; the 5 closed-port resets (no socket, no counter) were not.
    causes = combine(trace([80, PEER, None, 5]), 10, {"TCPAbortOnClose": 5}, {})
    assert resets(causes).get("closed_port") == 5
    assert sum(c.resets for c in causes) == 10


def test_severity_is_the_share_weighted_mean_of_cause_weights():
    causes = from_trace(trace([9, PEER, "NO_SOCKET", 1], *[[30000 + i, "192.0.2.9", "NO_SOCKET", 1]
                                                           for i in range(SCAN_MIN_PORTS - 1)],
                              [30100, "192.0.2.9", "NO_SOCKET", 10]))
    weights = {c.key: CAUSES[c.key][1] for c in causes}
    expected = sum(c.share * weights[c.key] for c in causes)
    assert severity(causes) == pytest.approx(expected)
    assert CAUSES["closed_port"][1] < severity(causes) < CAUSES["port_scan"][1]
