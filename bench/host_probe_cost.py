"""Host CPU of one counters-only probe: the Python probe vs the POSIX shell probe.

Runs each N times on this machine exactly as a host would (window 0, so only the work counts,
not the sleep), and prints CPU (user+sys of the process and its children) and wall per probe,
with the ratio. Usage: python bench/host_probe_cost.py [N]
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time

from rstfleet.probe import probe_argv, probe_script_for
from rstfleet.probe.shell import parse_shell_output, shell_argv


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(argv: list[str], stdin: bytes, runs: int) -> tuple[float, float, bytes]:
    cpu0, wall0, out = _children_cpu(), time.perf_counter(), b""
    for _ in range(runs):
        out = subprocess.run(argv, input=stdin, capture_output=True, check=True).stdout
    return (_children_cpu() - cpu0) / runs, (time.perf_counter() - wall0) / runs, out


def main(runs: int = 30) -> None:
    python = ["/usr/bin/python3"] + probe_argv(0.0)[1:]
    py_cpu, py_wall, _ = measure(python, probe_script_for(()), runs)
    sh_cpu, sh_wall, out = measure(shell_argv(0.0), b"", runs)
    parse_shell_output(out, 0.0)                       # the shell output is a valid document
    print(f"runs per probe kind: {runs}")
    print(f"python probe: {py_cpu * 1e3:6.1f} ms CPU  {py_wall * 1e3:6.1f} ms wall")
    print(f"shell probe:  {sh_cpu * 1e3:6.1f} ms CPU  {sh_wall * 1e3:6.1f} ms wall")
    print(f"ratio python/shell: {py_cpu / sh_cpu:.1f}x CPU, {py_wall / sh_wall:.1f}x wall")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
