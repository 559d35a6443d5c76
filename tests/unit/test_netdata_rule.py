"""Which rule produced each verdict, and Netdata's verdict itself (netdata_rule.py, analysis.assess),
from probe documents built out of the real agent answers in tests/fixtures/netdata/; and the
hostile-host checks of the probe's netdata and exact-baseline sections (probe/schema.py)."""

from __future__ import annotations

import copy
import json

import pytest

from rstfleet.analysis import Rule, Verdict, assess
from rstfleet.netdata_rule import episode
from rstfleet.probe.schema import ShapeError, check_document
from rstfleet.results import HostResult, ProbeOutputError, Status, parse_probe_output

from netdata_docs import NO_AGENT, agent_section, document


def assessed(doc: dict):
    checked = parse_probe_output(json.dumps(doc).encode())       # the boundary every document passes
    [a] = assess([HostResult("h01", "198.18.0.2", Status.OK, "", checked)])
    return a


# --- the agent's verdict ---------------------------------------------------------------------

def test_a_warning_alarm_is_the_verdict_and_the_rule_says_netdata_agent():
    a = assessed(document(90.0, netdata_section=agent_section("1.37.1-alarms_values-warning.http")))
    assert (a.verdict, a.rule, a.lifetime_verdict, a.spike) == (Verdict.WARN, Rule.NETDATA_AGENT, Verdict.WARN, True)
    view = a.netdata
    assert (view.status, view.alarm, view.version) == ("WARNING", "10s_ipv4_tcp_resets_sent", "1.37.1")
    assert view.value == pytest.approx(53.3967328) and view.baseline_1m == pytest.approx(4.4137931)
    assert view.line == 5.0                           # already WARNING: max(4.41, 5) × 1
    assert view.received_status == "CLEAR"


def test_a_clear_alarm_makes_a_busy_host_ok_while_the_lifetime_baseline_warns():
    """Netdata's real answer while 20 resets/s had been steady: CLEAR; --warn 10/s says warn."""
    a = assessed(document(20.0, netdata_section=agent_section("1.37.1-alarms_values-clear.http")))
    assert (a.verdict, a.rule, a.lifetime_verdict) == (Verdict.OK, Rule.NETDATA_AGENT, Verdict.WARN)
    assert a.spike is False and a.score == pytest.approx(20.0)


def test_the_80_per_second_burst_netdata_missed_is_ok_by_the_agent():
    a = assessed(document(80.0, netdata_section=agent_section("1.37.1-alarms_values-80-per-s-missed.http",
                                                              "1.37.1-data-80-per-s-missed.http")))
    assert (a.netdata.status, a.verdict, a.lifetime_verdict) == ("CLEAR", Verdict.OK, Verdict.WARN)
    assert a.netdata.line == pytest.approx(212.87375)          # the burst's own start is in the 1m baseline


def test_critical_maps_to_crit():
    section = agent_section("1.37.1-alarms_values-warning.http", **{"10s_ipv4_tcp_resets_sent": "CRITICAL"})
    assert assessed(document(90.0, netdata_section=section)).verdict == Verdict.CRIT


@pytest.mark.parametrize("status", ["UNINITIALIZED", "UNDEFINED", "REMOVED"])
def test_an_alarm_without_a_verdict_says_so_and_the_next_rule_decides(status):
    section = agent_section("1.37.1-alarms_values-warning.http", **{"10s_ipv4_tcp_resets_sent": status})
    a = assessed(document(30.0, netdata_section=section))
    assert (a.rule, a.verdict, a.netdata.verdict, a.netdata.status) == (Rule.LIFETIME, Verdict.WARN, None, status)
    assert status in a.netdata.reason
    a = assessed(document(30.0, netdata_section=section, minute_per_s=30.0))
    assert (a.rule, a.verdict) == (Rule.NETDATA_EXACT, Verdict.OK)


def test_the_newer_alarm_generation_is_preferred_when_both_are_there():
    section = agent_section("1.37.1-alarms_values-clear.http")
    newer = copy.deepcopy(section["alarms"]["10s_ipv4_tcp_resets_sent"])
    section["alarms"]["10s_ip_tcp_resets_sent"] = dict(newer, status="WARNING", chart="ip.tcphandshake")
    a = assessed(document(90.0, netdata_section=section))
    assert (a.netdata.alarm, a.verdict) == ("10s_ip_tcp_resets_sent", Verdict.WARN)


def test_an_agent_without_the_alarm_gives_no_verdict_and_says_why():
    section = dict(agent_section("1.37.1-alarms_values-clear.http"), alarms={})
    a = assessed(document(3.0, netdata_section=section))
    assert a.rule == Rule.LIFETIME and "no 10s_…_tcp_resets_sent alarm" in a.netdata.reason


# --- the exact rule ----------------------------------------------------------------------------

@pytest.mark.parametrize("minute, rate, verdict", [
    (0.0, 50.0, Verdict.OK),        # the line is max(0, 5) × 10 = 50, and Netdata's test is strict
    (0.0, 50.1, Verdict.WARN),
    (30.0, 30.0, Verdict.OK),       # steady: the 1m baseline carries the rate
    (30.0, 300.1, Verdict.WARN),
    (2.0, 40.0, Verdict.OK),        # under the floor's line: --warn 10/s would have said warn
])
def test_the_exact_rule_is_netdata_s_formula(minute, rate, verdict):
    a = assessed(document(rate, minute_per_s=minute, netdata_section=NO_AGENT))
    assert (a.rule, a.verdict) == (Rule.NETDATA_EXACT, verdict)
    assert a.netdata.line == max(minute, 5.0) * 10
    assert "nothing listens on http://127.0.0.1:19999" in a.netdata.notes[-1]


def test_the_agent_wins_over_the_exact_rule_and_the_lifetime_verdict_is_always_kept():
    a = assessed(document(20.0, netdata_section=agent_section("1.37.1-alarms_values-clear.http"), minute_per_s=0.0))
    assert (a.rule, a.verdict, a.lifetime_verdict) == (Rule.NETDATA_AGENT, Verdict.OK, Verdict.WARN)
    plain = assessed(document(20.0))
    assert (plain.rule, plain.verdict, plain.netdata, plain.episode) == (Rule.LIFETIME, Verdict.WARN, None, None)


def test_an_exact_window_that_is_not_10_s_is_noted():
    a = assessed(document(60.0, minute_per_s=0.0, window=30.0))
    assert a.netdata.notes == ("the window was 30 s; Netdata's rule averages 10 s",)


# --- the history: start, peak, still going ----------------------------------------------------

def series(*runs):
    """series((10, 0.0), (5, 80.0)) -> 10 quiet seconds then 5 at 80/s, one point a second from t=0."""
    points = []
    for count, value in runs:
        points += [[float(len(points)), value] for _ in range(count)]
    return [[float(t), v] for t, (_, v) in enumerate(points)]


def test_a_burst_after_quiet_starts_at_its_first_point_and_is_still_going():
    e = episode(series((60, 0.0), (20, 90.0)), 10.0, "agent")
    assert (e.started_at, e.peak_per_s, e.peak_at, e.still_going, e.started_before_history) == (60.0, 90.0, 60.0, True, False)


def test_a_burst_that_ended_is_not_still_going_and_short_dips_do_not_split_it():
    e = episode(series((10, 0.0), (5, 90.0), (4, 0.0), (5, 90.0), (20, 0.0)), 10.0, "exact")
    assert (e.started_at, e.still_going) == (10.0, False)
    e = episode(series((10, 0.0), (5, 90.0), (15, 0.0), (5, 90.0)), 10.0, "exact")
    assert e.started_at == 30.0                                    # 15 s under the line: a new run


def test_resets_from_before_the_history_say_so_and_a_quiet_history_has_no_start():
    assert episode(series((30, 30.0)), 10.0, "agent").started_before_history is True
    quiet = episode(series((30, 2.0)), 10.0, "agent")
    assert (quiet.started_at, quiet.still_going, quiet.peak_per_s) == (None, False, 2.0)


def test_the_assessment_takes_the_agent_s_history_else_the_exact_samples():
    a = assessed(document(90.0, netdata_section=agent_section("1.37.1-alarms_values-warning.http")))
    assert a.episode.source == "agent" and a.episode.peak_per_s == pytest.approx(90.0, rel=0.02)
    assert a.episode.still_going and a.episode.started_at == 1795963709     # captured mid-burst
    assert a.episode.started_before_history is False       # the 20/s minute before ended earlier
    b = assessed(document(30.0, minute_per_s=30.0))
    assert b.episode.source == "exact" and b.episode.started_before_history


# --- the probe's sections at the boundary (hostile host) -----------------------------------

GOOD = document(90.0, netdata_section=agent_section("1.37.1-alarms_values-warning.http"), minute_per_s=1.0)


def test_a_real_netdata_section_and_exact_minute_pass_the_boundary():
    assert check_document(copy.deepcopy(GOOD))["netdata"]["alarms"]


@pytest.mark.parametrize("where, value", [
    (("netdata", "available"), "yes"),
    (("netdata", "alarms", "10s_ipv4_tcp_resets_sent", "status"), "PWNED"),
    (("netdata", "alarms", "10s_ipv4_tcp_resets_sent", "value"), float("nan")),
    (("netdata", "alarms", "10s_ipv4_tcp_resets_sent", "value"), float("inf")),
    (("netdata", "alarms", "10s_ipv4_tcp_resets_sent", "value"), True),
    (("netdata", "alarms", "10s_ipv4_tcp_resets_sent", "last_status_change"), -1),
    (("netdata", "alarms", "10s_ipv4_tcp_resets_sent"), "WARNING"),
    (("netdata", "alarms"), {f"a{i}": {"status": "CLEAR"} for i in range(17)}),
    (("netdata", "history"), [[1.0, 1.0]] * 601),
    (("netdata", "history"), [[2.0, 1.0], [1.0, 1.0]]),
    (("netdata", "history"), [[1.0, -1.0]]),
    (("netdata", "history"), [[1.0]]),
    (("netdata", "version"), "x" * 5000),
    (("netdata", "notes"), ["n"] * 21),
    (("baseline", "exact", "per_s"), -0.5),
    (("baseline", "exact", "measured_s"), None),
    (("baseline", "exact", "OutRsts"), 1.5),
    (("baseline", "exact", "history"), {"t": 1}),
])
def test_a_hostile_netdata_or_exact_section_is_refused_naming_the_field(where, value):
    doc = copy.deepcopy(GOOD)
    target = doc
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    with pytest.raises(ShapeError, match=r"\." + where[-1] if not where[-1].startswith("10s") else "alarms"):
        check_document(doc)
    with pytest.raises(ProbeOutputError):
        parse_probe_output(json.dumps(doc).encode())
