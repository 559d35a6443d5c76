"""The counters-only shell probe (rstfleet/probe/shell.py), run by the real /bin/sh here.

Its document must say what the Python probe's says about the same kernel: the counters it reads lie
between two readings the Python probe's own reader takes around it, its sysctls equal the Python
reader's, and hostile or cut-short output is an error, never a document.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from rstfleet.probe import needs_python
from rstfleet.probe.host.counters import TCP_KEYS, read_snapshot
from rstfleet.probe.host.facts import read_sysctls
from rstfleet.probe.schema import check_document
from rstfleet.probe.shell import SCRIPT, ShellOutputError, parse_shell_output, shell_argv

SHELLS = [path for path in ("/bin/sh", "/bin/dash", "/bin/bash", shutil.which("busybox")) if path]


def _run(shell: str, window: float) -> bytes:
    argv = shell_argv(window)
    argv = [shell, "sh", *argv[1:]] if shell.endswith("busybox") else [shell, *argv[1:]]
    return subprocess.run(argv, capture_output=True, check=True, timeout=30).stdout


@pytest.mark.parametrize("shell", SHELLS)
def test_the_shell_probe_reads_the_same_counters_as_the_python_reader(shell):
    before = read_snapshot()
    document = check_document(parse_shell_output(_run(shell, 0.0), 0.0))
    after = read_snapshot()
    for key in TCP_KEYS:
        if key in before["Tcp"] and key != "CurrEstab":
            assert before["Tcp"][key] <= document["tcp"]["start"][key] <= document["tcp"]["end"][key] \
                <= after["Tcp"][key], key
    assert "ListenOverflows" in document["tcpext_delta"]
    assert set(document["tcpext_delta"]) <= set(before["TcpExt"])
    assert document["sysctls"] == read_sysctls()


def test_the_measured_window_is_the_host_s_own_and_close_to_the_request():
    document = parse_shell_output(_run("/bin/sh", 1.5), 1.5)
    assert 1.45 <= document["window"]["measured_s"] <= 2.0
    assert document["facts"]["probe"] == "shell" and document["facts"]["python"] is None


def test_the_script_writes_nothing_and_uses_no_python():
    assert "python" not in SCRIPT and ">" not in SCRIPT.replace("2>/dev/null", "").replace(">&2", "")


@pytest.mark.parametrize("output, problem", [
    (b"", "header"),
    (b"{\"kind\": \"rstfleet-probe\"}", "header"),
    (b"@@rstfleet-shell 1\n@@btime 1\n@@begin\n@@uptime 5\nTcp: OutRsts\nTcp: 1\n@@end\n", "snapshot"),
    (b"@@rstfleet-shell 1\n@@btime 1\n@@begin\n@@uptime x\nTcp: OutRsts\nTcp: 1\n@@end\n"
     b"@@finish\n@@uptime 6\nTcp: OutRsts\nTcp: 2\n@@end\n", "not a number"),
    (b"@@rstfleet-shell 1\n@@btime 1\n@@begin\n@@uptime 5\n@@end\n@@finish\n@@uptime 6\n@@end\n", "OutRsts"),
])
def test_hostile_or_cut_short_output_is_an_error(output, problem):
    with pytest.raises(ShellOutputError, match=problem):
        parse_shell_output(output, 1.0)


@pytest.mark.parametrize("options, needed", [
    ((), False), (("--netdata", "auto"), False), (("--netdata", "off"), False),
    (("--netdata", "http://127.0.0.1:19999"), True), (("--baseline", "exact"), True),
    (("--netdata", "auto", "--baseline", "exact"), True), (("--trace", "--netdata", "auto"), True),
])
def test_only_the_best_effort_agent_question_leaves_the_shell_probe_able_to_serve_a_host(options, needed):
    assert needs_python(options) is needed
