"""The Plan: flags and plays become one checked record before any host is touched.

Options are parsed from real argv with the CLI's own parser, so the keys are exactly the ones
cli.py passes; ``hosts=`` is given so no inventory is read.
"""

import math

import pytest

from helpers import options
from rstfleet.cli import build_parser
from rstfleet.inventory import Host
from rstfleet.plan import MIN_MAX_OUTPUT, Plan, PlanError, in_shard, parse_shard
from rstfleet.playbook import CaptureStep, Play
from rstfleet.probe.host.limits import (CAPTURE_BYTES, EXACT_MINUTE_S, MAX_CAPTURE_BYTES, NETDATA_TIMEOUT_S,
                                        PHASE2_TOP)
from rstfleet.sweep.pool import SweepSettings

HOSTS = [Host("web1", "192.0.2.1"), Host("web2", "192.0.2.2")]


def plan(*argv: str) -> Plan:
    return Plan.from_args(options(*argv), hosts=HOSTS)


def refusal(*argv: str) -> str:
    with pytest.raises(PlanError) as caught:
        plan(*argv)
    return str(caught.value)


def test_a_plain_sweep_with_cli_defaults_is_the_default_sweep_settings_asking_a_netdata_agent():
    sweep = plan("sweep")
    assert sweep.sweep == SweepSettings(probe_options=("--trace-auto", "--netdata", "auto"), lead_s=NETDATA_TIMEOUT_S)
    assert (sweep.sweep.window_s, sweep.sweep.forks, sweep.sweep.probe_options) == (
        10.0, 200, ("--trace-auto", "--netdata", "auto"))
    assert sweep.phase2 is None
    assert sweep.hosts == tuple(HOSTS)
    assert sweep.window_s == 10.0


@pytest.mark.parametrize("argv, flag", [
    (["--window", "0"], "--window"),
    (["--window", "-1"], "--window"),
    (["--window", "inf"], "--window"),
    (["--window", "nan"], "--window"),
    (["--window", "3601"], "--window"),
    (["--forks", "0"], "--forks"),
    (["--connect-timeout", "0"], "--connect-timeout"),
    (["--connect-timeout", "-2"], "--connect-timeout"),
    (["--max-output", str(MIN_MAX_OUTPUT - 1)], "--max-output"),
    (["--warn", "0"], "--warn"),
    (["--spike-factor", "0.5"], "--spike-factor"),
    (["--capture", "-1"], "--capture"),
    (["--capture", "0.5"], "--capture"),
    (["--capture", "60", "--capture-bytes", "100"], "--capture-bytes"),
    (["--capture", "60", "--capture-bytes", str(MAX_CAPTURE_BYTES + 1)], "--capture-bytes"),
    (["--capture", "60", "--capture-packets", "0"], "--capture-packets"),
])
def test_every_bound_is_refused_with_an_error_naming_the_flag(argv, flag):
    assert refusal("sweep", *argv).startswith(f"{flag}:")


def test_a_window_of_zero_is_refused_with_the_value_given():
    assert refusal("sweep", "--window", "0") == "--window: must be a number > 0 and ≤ 3600, not 0.0"


def test_the_largest_window_and_the_smallest_max_output_are_allowed():
    edge = plan("sweep", "--window", "3600", "--max-output", str(MIN_MAX_OUTPUT))
    assert edge.sweep.window_s == 3600.0
    assert edge.sweep.max_output == MIN_MAX_OUTPUT


def test_warn_above_crit_is_refused_naming_both_flags():
    message = refusal("sweep", "--warn", "50", "--crit", "10")
    assert "--warn" in message and "--crit" in message


def test_a_top_of_zero_is_refused_for_triage():
    assert refusal("triage", "--top", "0").startswith("--top:")


def test_triage_without_a_capture_is_refused():
    assert refusal("triage", "--capture", "0").startswith("--capture:")


def test_a_capture_over_five_minutes_needs_force():
    assert "--force-long-capture" in refusal("sweep", "--capture", "301")
    forced = plan("sweep", "--capture", "301", "--force-long-capture")
    assert "--force-long-capture" in forced.sweep.probe_options
    assert forced.sweep.window_s == 301.0


def test_trace_and_no_trace_together_are_refused():
    assert "--no-trace" in refusal("sweep", "--trace", "--no-trace")


def test_an_unknown_fail_on_is_refused_naming_the_flag():
    with pytest.raises(PlanError, match="^--fail-on:"):
        Plan.from_args(dict(options("sweep"), fail_on="sometimes"), hosts=HOSTS)


def test_a_capture_replaces_the_window_and_turns_the_trace_on():
    capture = plan("sweep", "--window", "10", "--capture", "60").sweep
    assert capture.window_s == 60.0
    assert capture.probe_options[0] == "--trace"
    assert capture.probe_options[1:3] == ("--capture", "60.0")
    assert capture.max_output >= 2 * CAPTURE_BYTES
    assert capture.margin_s > SweepSettings().margin_s    # time to read the capture back


def test_no_trace_keeps_the_tracepoint_off_even_with_a_capture():
    options_ = plan("sweep", "--capture", "60", "--no-trace").sweep.probe_options
    assert "--trace" not in options_ and "--capture" in options_


def test_trace_alone_adds_only_the_trace_option():
    assert plan("sweep", "--trace", "--netdata", "off").sweep.probe_options == ("--trace",)


def test_owners_on_a_sweep_are_asked_of_the_probe():
    assert plan("sweep", "--owners", "--netdata", "off").sweep.probe_options[-2:] == ("--owners", "auto")


def test_triage_sweeps_counters_and_the_agent_then_captures_with_owners_on_the_worst():
    triage = plan("triage", "--top", "3", "--capture", "60")
    assert triage.sweep.probe_options == ("--trace-auto", "--netdata", "auto")
    assert triage.sweep.window_s == 10.0
    assert triage.phase2 is not None and triage.phase2.window_s == 60.0
    assert triage.phase2.probe_options[:3] == ("--trace", "--capture", "60.0")
    assert triage.phase2.probe_options[-2:] == ("--owners", "auto")
    assert triage.phase2_top == 3


def test_the_exact_baseline_adds_its_minute_to_phase_1_deadlines_only():
    triage = plan("triage", "--capture", "60", "--baseline", "exact", "--netdata", "off")
    assert triage.sweep.probe_options == ("--trace-auto", "--baseline", "exact")
    assert triage.sweep.host_budget_s == plan("triage", "--capture", "60", "--netdata", "off").sweep.host_budget_s + EXACT_MINUTE_S
    assert "--baseline" not in triage.phase2.probe_options and triage.phase2.lead_s == 0.0
    sweep = plan("sweep", "--baseline", "exact").sweep
    assert sweep.probe_options[-4:] == ("--netdata", "auto", "--baseline", "exact")
    assert sweep.lead_s == EXACT_MINUTE_S + NETDATA_TIMEOUT_S


@pytest.mark.parametrize("url", ["http://127.0.0.1:19999", "http://[::1]:19999/", "http://localhost",
                                 "http://127.0.0.2:8080/netdata"])
def test_a_loopback_agent_url_is_passed_to_the_probe_as_given(url):
    assert plan("sweep", "--netdata", url).sweep.probe_options[-2:] == ("--netdata", url)


@pytest.mark.parametrize("url", ["http://198.18.0.1:19999", "https://127.0.0.1:19999", "http://[::2]:19999",
                                 "http://localhost.example.com", "http://127.0.0.1:19999/../x?y", "http://127.0.0.1/../api",
                                 "http://127.1:19999", "http://127.0.0.1:0", "ftp://127.0.0.1", "yes"])
def test_an_agent_url_off_loopback_or_malformed_is_refused_naming_the_flag(url):
    assert refusal("sweep", "--netdata", url).startswith("--netdata:")


def test_become_is_implied_by_asking_for_the_become_password():
    assert plan("sweep", "-K").ssh.become and plan("sweep", "-K").ssh.ask_become_pass
    assert not plan("sweep").ssh.become


def play(**fields) -> Play:
    return Play(name=fields.pop("name", "nightly"), hosts="all", **fields)


def run_options(*argv: str) -> dict:
    return vars(build_parser().parse_args(["run", "book.yml", *argv]))


def test_a_plays_settings_win_over_the_command_line():
    from_play = Plan.from_play(play(window=5.0, warn=1.0, crit=2.0, forks=7, fail_on="crit"),
                               HOSTS, run_options("-f", "50"))
    assert (from_play.sweep.window_s, from_play.sweep.forks) == (5.0, 7)
    assert (from_play.thresholds.warn, from_play.thresholds.crit) == (1.0, 2.0)
    assert from_play.fail_on == "crit"
    assert from_play.name == "nightly"


def test_a_play_without_forks_keeps_the_command_lines():
    assert Plan.from_play(play(), HOSTS, run_options("-f", "50")).sweep.forks == 50


def test_a_play_with_a_capture_step_is_a_triage():
    step = CaptureStep(duration=30.0, packets=100, bytes=4096, top=2)
    triage = Plan.from_play(play(capture=step, owners=True), HOSTS, run_options())
    assert triage.phase2 is not None and triage.phase2.window_s == 30.0
    assert triage.phase2_top == 2
    assert "--owners" in triage.phase2.probe_options
    assert "--owners" not in triage.sweep.probe_options


def test_a_play_without_owners_captures_without_looking_owners_up():
    triage = Plan.from_play(play(capture=CaptureStep()), HOSTS, run_options())
    assert "--owners" not in triage.phase2.probe_options
    assert triage.phase2_top == PHASE2_TOP


@pytest.mark.parametrize("play_become, flag, expected", [
    (False, [], False), (True, [], True), (False, ["-b"], True), (True, ["-b"], True)])
def test_become_is_the_or_of_the_play_and_the_command_line(play_become, flag, expected):
    assert Plan.from_play(play(become=play_become), HOSTS, run_options(*flag)).ssh.become is expected


@pytest.mark.parametrize("output, first, second", [
    ("out.json", "out-1.json", "out-2.json"),
    ("report", "report-1", "report-2"),
])
def test_output_files_get_a_play_number_when_a_playbook_has_several_plays(output, first, second):
    given = run_options("-o", output)
    assert Plan.from_play(play(), HOSTS, given, 1, 2).outputs.path == first
    assert Plan.from_play(play(), HOSTS, given, 2, 2).outputs.path == second
    assert Plan.from_play(play(), HOSTS, given, 1, 1).outputs.path == output


def test_a_dot_in_a_directory_name_does_not_move_the_play_number_out_of_the_file_name():
    given = run_options("-o", "runs.d/report")
    assert Plan.from_play(play(), HOSTS, given, 1, 2).outputs.path == "runs.d/report-1"


def test_a_play_with_a_bad_window_fails_like_the_flag():
    with pytest.raises(PlanError, match="^--window:"):
        Plan.from_play(play(window=math.inf), HOSTS, run_options())


NAMES = [Host(f"h{i:03d}", f"198.18.{i // 250}.{i % 250}") for i in range(300)]


def test_the_shards_partition_the_hosts():
    shards = [in_shard(NAMES, k, 4) for k in range(1, 5)]
    names = [h.name for shard in shards for h in shard]
    assert sorted(names) == sorted(h.name for h in NAMES)
    assert len(names) == len(set(names))
    assert all(len(shard) > 30 for shard in shards)    # a hash, not all in one


def test_a_hosts_shard_depends_on_its_name_not_on_inventory_order_or_size():
    forward = {h.name for h in in_shard(NAMES, 2, 4)}
    backward = {h.name for h in in_shard(list(reversed(NAMES)), 2, 4)}
    part = {h.name for h in in_shard(NAMES[::3], 2, 4)}
    assert forward == backward
    assert part == forward & {h.name for h in NAMES[::3]}


def test_a_shard_keeps_the_inventory_order():
    shard = in_shard(NAMES, 1, 3)
    assert shard == [h for h in NAMES if h in shard]


@pytest.mark.parametrize("text", ["0/3", "4/3", "a/b", "2", "1/2/3"])
def test_a_malformed_shard_is_refused_naming_the_flag(text):
    with pytest.raises(PlanError, match="--shard"):
        parse_shard(text)


def test_a_shard_parses_to_k_and_n():
    assert parse_shard("2/5") == (2, 5)


def test_the_default_agent_question_keeps_the_shell_fallback_an_agent_url_or_exact_minute_needs_python():
    """--netdata auto is best effort: a host without python3 still gets the shell probe (and no
    Netdata verdict); a URL or --baseline exact can only be served by the Python probe."""
    assert plan("sweep").sweep.host_probe == "python-or-shell"
    assert plan("sweep", "--netdata", "http://127.0.0.1:19999").sweep.host_probe == "python"
    assert plan("sweep", "--baseline", "exact").sweep.host_probe == "python"
    assert plan("sweep", "--host-probe", "shell").sweep.host_probe == "shell"
    assert plan("sweep", "--netdata", "off").sweep.host_probe == "python-or-shell"


@pytest.mark.parametrize("argv", [("--baseline", "exact"), ("--netdata", "http://127.0.0.1:19999")])
def test_the_shell_probe_with_an_alert_input_it_cannot_serve_is_refused(argv):
    assert refusal("sweep", "--host-probe", "shell", *argv).startswith("--host-probe shell reads counters only")
