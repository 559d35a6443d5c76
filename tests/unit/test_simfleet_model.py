"""The simulator's answers (rstfleet_lab/simmodel.py) are what rstfleet's own parsers and schema
accept, and they move by the modelled rate: the documents are checked by the product's checkers,
and the commands recognised are the product's own command builders' output."""

from __future__ import annotations

import json
import shlex

import pytest

from rstfleet.probe import probe_argv
from rstfleet.probe.shell import parse_shell_output, shell_argv
from rstfleet.results import parse_probe_output
from rstfleet.sweep.window import StartInstant
from rstfleet_lab.simmodel import (Request, ScenarioError, parse_command, plan_hosts, probe_document,
                                   sample_answer, shell_head, shell_tail)

HOSTS = plan_hosts({"hosts": 100, "seed": 5, "spiking": {"count": 4},
                    "broken": {"auth_refused": 1, "unknown_key": 1, "slow_banner": 1}})


def out_rsts(host, since_epoch_s: float) -> int:
    """The model's line: lifetime resets before the fleet started, then the rate."""
    return int(host.baseline * host.uptime_s + host.rate * since_epoch_s)


def test_a_scenario_makes_the_same_fleet_every_time_with_its_counts():
    again = plan_hosts({"hosts": 100, "seed": 5, "spiking": {"count": 4},
                        "broken": {"auth_refused": 1, "unknown_key": 1, "slow_banner": 1}})
    assert again == HOSTS
    assert sum(h.spiking for h in HOSTS) == 4
    assert sorted(h.kind for h in HOSTS if h.kind != "ok") == ["auth_refused", "slow_banner", "unknown_key"]
    assert [h.address for h in HOSTS[:2]] == ["127.1.0.1", "127.1.0.2"] and HOSTS[99].address == "127.1.0.100"


@pytest.mark.parametrize("scenario, problem", [
    ({"hosts": 0}, "hosts: wanted 1.."),
    ({"hosts": 5, "broken": {"auth_refused": 4}, "spiking": {"count": 2}}, "exceed hosts"),
    ({"hosts": 5, "quiet": {"rate": [0, 20]}}, "under 10/s"),
    ({"hosts": 5, "broken": {"flaky": 1}}, "unknown kind"),
    ({"hosts": 5, "first_address": "198.51.100.1"}, "127.0.0.0/8"),
])
def test_a_scenario_that_does_not_say_a_knowable_fleet_is_refused(scenario, problem):
    with pytest.raises(ScenarioError, match=problem):
        plan_hosts(scenario)


def test_the_python_probe_answer_passes_the_products_checks_at_the_modelled_rate():
    host = max(HOSTS, key=lambda h: h.rate)
    request = parse_command(shlex.join(probe_argv(10.0, ["--trace", "--run-id", "ab12"])))
    assert request == Request("python", 10.0, ("--trace", "--run-id"))
    document = probe_document(host, request, 1.7e9, 100.0, 110.5, 10.5)
    checked = parse_probe_output(json.dumps(document).encode())
    assert checked["tcp"]["delta"]["OutRsts"] == out_rsts(host, 110.5) - out_rsts(host, 100.0)
    assert checked["tcp"]["per_s"]["OutRsts"] == pytest.approx(host.rate, abs=1 / 10.5)
    assert checked["trace"]["available"] is False


def test_the_shell_probe_answer_is_parsed_by_the_products_shell_parser():
    host = HOSTS[10]
    request = parse_command(shlex.join(shell_argv(3.0)))
    assert request == Request("shell", 3.0)
    text = shell_head(host, 1.7e9, 50.0) + "@@tick\n" * 3 + shell_tail(host, 53.0)
    document = parse_shell_output(text.encode(), request.window_s)
    assert document["window"]["measured_s"] == pytest.approx(3.0, abs=0.01)
    assert document["tcp"]["delta"]["OutRsts"] == out_rsts(host, 53.0) - out_rsts(host, 50.0)
    assert document["facts"]["hostname"] == host.name


def test_the_simulator_waits_for_the_common_start_as_the_real_probes_do():
    """The pool's start options (sweep/window.py) on the product's own command builders: the
    Python probe waits for --start-at by the host's clock, never past --start-in; the shell probe
    sleeps its delay."""
    start = StartInstant.after(5.0)
    request = parse_command(shlex.join(probe_argv(10.0, ["--trace-auto"] + start.probe_options())))
    assert (request.kind, request.window_s, request.start_at) == ("python", 10.0, start.wall)
    assert 4.0 < request.start_in <= 5.0
    assert request.wait_s(start.wall - 1.5) == pytest.approx(1.5)
    assert request.wait_s(start.wall - 60.0) == request.start_in        # a clock behind: --start-in bounds it
    assert request.wait_s(start.wall + 1.0) == 0.0                      # the start has passed
    window = parse_probe_output(json.dumps(probe_document(HOSTS[0], request, start.wall, 0.0, 10.0,
                                                          10.0)).encode())["window"]
    assert window["start_at"] == start.wall                              # as probe/host/main.py says it
    assert parse_command(shlex.join(probe_argv(10.0, []))).wait_s(0.0) == 0.0   # no start: at once
    shell = parse_command(shlex.join(shell_argv(3.0, 2.25)))
    assert (shell.kind, shell.window_s, shell.wait_s(0.0)) == ("shell", 3.0, 2.25)


def test_the_bench_peers_sampling_gets_the_delta_and_anything_else_is_not_simulated():
    import sys
    sys.path.insert(0, "bench")
    import peers
    request = parse_command(peers.sample_shell(7.0))
    assert request == Request("sample", 7.0)
    assert int(sample_answer(HOSTS[0], 0.0, 7.0)) >= 0
    assert parse_command("python3 -").kind == "sample"              # its script comes on stdin
    assert parse_command("rm -rf /").kind == "unknown"
