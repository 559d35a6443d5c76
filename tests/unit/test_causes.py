"""The counters tier: TcpExt deltas into the guide's causes (pure; the measured map is docs/causes.md)."""

from rstfleet.evidence.causes import from_counters


def test_counters_attribute_each_reset_once_and_the_rest_to_closed_ports():
    causes = from_counters(10, {"ListenOverflows": 4, "EmbryonicRsts": 1, "TCPAbortOnClose": 2},
                           {"net.ipv4.tcp_abort_on_overflow": 1})
    assert {c.key: c.resets for c in causes} == {"closed_port": 4, "listen_queue_full": 4,
                                                  "aborted_connection": 2}
    assert abs(sum(c.share for c in causes) - 1.0) < 1e-9


def test_a_listen_overflow_without_abort_on_overflow_sends_no_reset_and_is_not_a_cause():
    causes = from_counters(3, {"ListenOverflows": 50}, {"net.ipv4.tcp_abort_on_overflow": 0})
    assert [c.key for c in causes] == ["closed_port"]
