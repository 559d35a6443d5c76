"""What only the fleet view sees: a peer resetting on several hosts, a port resetting across a
group, totals and cause shares summed over hosts. Assessments come from the real `assess` over
hand-made probe documents validated like live probe output."""

import json

import pytest

from rstfleet.analysis import assess
from rstfleet.fleet import summarize_fleet
from rstfleet.results import HostResult, Status, parse_probe_output

SCANNER, CLIENT = "203.0.113.9", "198.51.100.7"


def document(flows, owners=None, window=10.0):
    doc = {"schema": 1, "kind": "rstfleet-probe", "window": {"measured_s": window},
           "tcp": {"delta": {"OutRsts": sum(f[3] for f in flows)}},
           "trace": {"available": True, "flows": [list(f) for f in flows]}}
    if owners:
        doc["owners"] = {"method": "lsof", "ports": {str(port): {"listening": listening, "owners": []}
                                                      for port, listening in owners.items()}}
    return parse_probe_output(json.dumps(doc).encode())


def host(name, flows, groups=(), owners=None):
    return HostResult(name, name, Status.OK, "", document(flows, owners), groups=tuple(groups))


def missed(name):
    return HostResult(name, name, Status.UNREACHABLE, "connection refused")


def summary(*results, top=5):
    return summarize_fleet(assess(list(results)), top=top)


def test_totals_count_checked_and_missed_hosts_and_sum_the_rates():
    fleet = summary(host("a", [[9, CLIENT, "NO_SOCKET", 100]]), host("b", [[9, CLIENT, "NO_SOCKET", 50]]),
                    host("c", []), missed("d"))
    assert (fleet.hosts, fleet.checked, fleet.not_checked) == (4, 3, 1)
    assert fleet.resets_sent_per_s_total == pytest.approx(15.0)


def test_worst_lists_only_hosts_that_sent_resets_in_rank_order_up_to_top():
    fleet = summary(host("quiet", []), host("low", [[9, CLIENT, "NO_SOCKET", 10]]),
                    host("high", [[9, CLIENT, "NO_SOCKET", 300]]), host("mid", [[9, CLIENT, "NO_SOCKET", 50]]),
                    top=2)
    assert fleet.worst == ["high", "mid"]


def test_a_peer_seen_on_two_hosts_is_shared_and_one_seen_once_is_not():
    fleet = summary(host("a", [[22, SCANNER, "NO_SOCKET", 3], [80, CLIENT, "NO_SOCKET", 7]]),
                    host("b", [[23, SCANNER, "NO_SOCKET", 4]]),
                    host("c", [[24, SCANNER, "NO_SOCKET", 1]]))
    assert fleet.shared_peers == [{"peer": SCANNER, "hosts": ["a", "b", "c"], "resets": 8}]


def test_shared_peers_rank_by_host_count_then_resets():
    fleet = summary(host("a", [[1, "192.0.2.1", "NO_SOCKET", 50], [1, "192.0.2.2", "NO_SOCKET", 1]]),
                    host("b", [[1, "192.0.2.1", "NO_SOCKET", 50], [1, "192.0.2.2", "NO_SOCKET", 1]]),
                    host("c", [[1, "192.0.2.2", "NO_SOCKET", 1]]))
    assert [p["peer"] for p in fleet.shared_peers] == ["192.0.2.2", "192.0.2.1"]


def test_a_port_resetting_on_several_hosts_names_the_groups_they_share():
    fleet = summary(host("web1", [[8080, CLIENT, "NO_SOCKET", 5]], groups=("prod", "web")),
                    host("web2", [[8080, CLIENT, "NO_SOCKET", 5]], groups=("staging", "web")),
                    host("db1", [[5432, CLIENT, "NO_SOCKET", 5]], groups=("prod",)))
    assert fleet.shared_ports == [{"port": 8080, "hosts": ["web1", "web2"], "groups": ["web"],
                                   "listening": None}]


def test_a_shared_port_says_listening_only_when_every_host_agrees():
    agree = summary(host("a", [[9, CLIENT, "NO_SOCKET", 1]], owners={9: False}),
                    host("b", [[9, CLIENT, "NO_SOCKET", 1]], owners={9: False}))
    differ = summary(host("a", [[9, CLIENT, "NO_SOCKET", 1]], owners={9: False}),
                     host("b", [[9, CLIENT, "NO_SOCKET", 1]], owners={9: True}))
    assert agree.shared_ports[0]["listening"] is False
    assert differ.shared_ports[0]["listening"] is None


def test_shared_ports_rank_by_how_many_hosts_share_them():
    fleet = summary(host("a", [[1, CLIENT, "NO_SOCKET", 9], [2, CLIENT, "NO_SOCKET", 1]]),
                    host("b", [[1, CLIENT, "NO_SOCKET", 9], [2, CLIENT, "NO_SOCKET", 1]]),
                    host("c", [[2, CLIENT, "NO_SOCKET", 1]]))
    assert [(p["port"], len(p["hosts"])) for p in fleet.shared_ports] == [(2, 3), (1, 2)]


def test_cause_rates_are_each_hosts_rate_times_its_cause_share_summed_over_the_fleet():
    fleet = summary(host("a", [[9, CLIENT, "NO_SOCKET", 100]]),                       # 10/s closed
                    host("b", [[9, CLIENT, "NO_SOCKET", 25], [80, CLIENT, "TCP_ABORT_ON_CLOSE", 25]]))
    assert fleet.causes == pytest.approx({"closed_port": 12.5, "aborted_connection": 2.5})
    assert list(fleet.causes) == ["closed_port", "aborted_connection"]     # largest first
    assert sum(fleet.causes.values()) == pytest.approx(fleet.resets_sent_per_s_total)


def test_missed_hosts_add_nothing_to_peers_ports_or_causes():
    fleet = summary(host("a", [[9, SCANNER, "NO_SOCKET", 10]]), missed("b"), missed("c"))
    assert (fleet.shared_peers, fleet.shared_ports) == ([], [])
    assert fleet.causes == pytest.approx({"closed_port": 1.0})


def test_an_empty_fleet_summarizes_to_zeros():
    fleet = summarize_fleet([])
    assert (fleet.hosts, fleet.checked, fleet.resets_sent_per_s_total, fleet.worst) == (0, 0, 0.0, [])
