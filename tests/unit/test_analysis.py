"""Verdicts, ranking and exit codes: pure functions over host results."""

from rstfleet.analysis import (EXIT_HOSTS_MISSED, EXIT_OK, EXIT_OVER_THRESHOLD, Thresholds, assess,
                               exit_code, verdict_for)
from rstfleet.results import Status, HostResult


def probe_doc(out_rsts_delta, window=10.0, lifetime=0.0):
    return {"window": {"measured_s": window}, "tcp": {"delta": {"OutRsts": out_rsts_delta}},
            "baseline": {"OutRsts_per_s_lifetime": lifetime}}


def ok(name, delta, **kw):
    return HostResult(name, name, Status.OK, "", probe_doc(delta, **kw))


def test_rate_is_out_rsts_growth_over_the_measured_window():
    [a] = assess([ok("web1", 125, window=12.5)])
    assert a.resets_sent_per_s == 10.0
    assert a.window_s == 12.5


def test_hosts_rank_worst_first_and_unchecked_hosts_follow_by_name():
    results = [ok("a", 10), HostResult("zz", "zz", Status.UNREACHABLE, "refused"), ok("b", 500),
               HostResult("yy", "yy", Status.UNREACHABLE, "refused"), ok("c", 0)]
    ranked = assess(results)
    assert [a.host for a in ranked] == ["b", "a", "c", "yy", "zz"]
    assert [a.rank for a in ranked] == [1, 2, 3, None, None]
    assert ranked[3].verdict == "unknown"


def test_thresholds_give_ok_warn_crit():
    t = Thresholds(warn=10, crit=100)
    assert verdict_for(9.99, 100.0, t) == ("ok", False)
    assert verdict_for(10.0, 100.0, t)[0] == "warn"
    assert verdict_for(100.0, 100.0, t)[0] == "crit"


def test_spike_against_baseline_warns_below_the_rate_threshold():
    t = Thresholds(warn=1000, crit=5000, spike_factor=10, spike_floor=5)
    assert verdict_for(60.0, 1.0, t) == ("warn", True)      # 60 > 10 × max(1, 5)
    assert verdict_for(40.0, 1.0, t) == ("ok", False)       # under 10 × floor
    assert verdict_for(60.0, 20.0, t) == ("ok", False)      # a busy host's normal


def test_exit_codes_are_bit_flags_for_pipelines():
    quiet, loud = ok("q", 0), ok("l", 5000)
    missed = HostResult("m", "m", Status.UNREACHABLE, "refused")
    assert exit_code(assess([quiet])) == EXIT_OK
    assert exit_code(assess([quiet, loud])) == EXIT_OVER_THRESHOLD
    assert exit_code(assess([quiet, missed])) == EXIT_HOSTS_MISSED
    assert exit_code(assess([loud, missed])) == EXIT_OVER_THRESHOLD | EXIT_HOSTS_MISSED
    assert exit_code(assess([loud]), fail_on="never") == EXIT_OK
    assert exit_code(assess([ok("w", 200)]), fail_on="crit") == EXIT_OK   # 20/s: warn, not crit
