"""Probes started before the fleet's start is known wait for one line on stdin: the go.

The Python probe runs here as it does on a host (the fixed reader in its command line, the
script length-delimited on stdin, then the go line); the shell probe under this machine's sh.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time

import pytest

from rstfleet.probe import GO_READER, probe_argv, probe_script_for
from rstfleet.probe.host.go import NoGo, await_go, parse_go
from rstfleet.probe.host.limits import NO_GO_EXIT
from rstfleet.probe.shell import parse_shell_output, shell_argv
from rstfleet.results import parse_probe_output
from rstfleet.sweep.window import StartInstant
from rstfleet_lab.simmodel import parse_command

OPTIONS = ["--start-on-stdin"]
SCRIPT = probe_script_for(OPTIONS)


def started_probe(window_s: float = 0.2) -> subprocess.Popen:
    argv = [sys.executable] + probe_argv(window_s, OPTIONS, None, len(SCRIPT))[1:]
    process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdin.write(SCRIPT)
    process.stdin.flush()
    return process


def test_the_command_line_holds_only_the_fixed_reader_and_the_scripts_length():
    argv = probe_argv(10.0, OPTIONS, None, len(SCRIPT))
    assert argv[:6] == ["python3", "-I", "-B", "-c", GO_READER, str(len(SCRIPT))]
    assert argv[6:] == ["--window", "10.0", "--start-on-stdin"]
    assert probe_argv(10.0, []) == ["python3", "-I", "-B", "-", "--window", "10.0"]   # unchanged without
    assert b"no go from the orchestrator" in SCRIPT and b"no go from the orchestrator" not in probe_script_for([])


def test_a_probe_started_early_measures_nothing_until_its_go_then_starts_at_the_instant_named():
    process = started_probe()
    try:
        time.sleep(0.5)                         # set up and waiting; no go yet
        assert process.poll() is None
        start = StartInstant.after(0.3)
        out, err = process.communicate(start.go_line(), timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
    window = parse_probe_output(out)["window"]
    assert window["start_at"] == pytest.approx(start.wall, abs=0.001)
    assert start.wall - 0.01 <= window["started_at"] < start.wall + 0.25


@pytest.mark.parametrize("after_script, reason", [
    (b"", b"closed the session before the go"),            # EOF: Ctrl-C, the orchestrator killed
    (b"stop 1 2\n", b"not a go line"),
    (b"go 1000 -1\n", b"not a go line"),
])
def test_a_probe_without_a_go_exits_at_once_with_its_own_exit_code_and_reason(after_script, reason):
    process = started_probe()
    try:
        out, err = process.communicate(after_script, timeout=30)
    finally:
        process.kill()
    assert (process.returncode, out) == (NO_GO_EXIT, b"")
    assert reason in err and b"exiting without measuring" in err


def test_a_go_that_never_comes_is_not_waited_for_past_the_bound():
    read_end, write_end = os.pipe()
    try:
        with pytest.raises(NoGo, match="within 0.2 s"):
            await_go(read_end, timeout_s=0.2)
        os.write(write_end, b"go 1700000000.5 2.25\n")
        assert await_go(read_end, timeout_s=5) == (1700000000.5, 2.25)
    finally:
        os.close(read_end)
        os.close(write_end)


def test_go_lines_are_exactly_three_words():
    assert parse_go(b"go 1.5 0\n") == (1.5, 0.0)
    for bad in (b"go 1.5\n", b"go x 1\n", b"go 1 2 3\n", b"GO 1 2\n", b"go 1 999\n", b""):
        with pytest.raises(NoGo):
            parse_go(bad)


def test_the_shell_probe_started_early_waits_for_its_go_and_exits_without_one():
    process = subprocess.Popen(shell_argv(0.2, go=True), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        time.sleep(0.3)
        assert process.poll() is None
        out, err = process.communicate(b"go 1000 0.30\n", timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert parse_shell_output(out, 0.2)["window"]["measured_s"] > 0.1
    for after in (b"", b"go x y\n"):
        done = subprocess.run(shell_argv(0.2, go=True), input=after, capture_output=True, timeout=30)
        assert (done.returncode, b"@@begin" in done.stdout) == (NO_GO_EXIT, False), done.stderr


def test_the_simulated_fleet_reads_the_same_command_and_go_line():
    request = parse_command(shlex.join(probe_argv(10.0, ["--run-id", "ab"] + OPTIONS, None, len(SCRIPT))))
    assert (request.kind, request.script_bytes, request.go, request.window_s) == ("python", len(SCRIPT), True, 10.0)
    went = request.went(b"go 1700000000.5 1.25\n")
    assert (went.start_at, went.start_in, went.go) == (1700000000.5, 1.25, False)
    assert request.went(b"") is None
    shell = parse_command(shlex.join(shell_argv(10.0, go=True)))
    assert (shell.kind, shell.go, shell.went(b"go 1 0.40\n").wait_s(0.0)) == ("shell", True, 0.4)
    assert parse_command(shlex.join(shell_argv(10.0, 1.5))).go is False
