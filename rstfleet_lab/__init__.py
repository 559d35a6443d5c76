"""The test lab beside the product: network-namespace hosts with their own sshd and TCP counters.

Not part of the rstfleet wheel. Tests, benchmarks and `rstfleet lab …` use this public API:

    with lab_context(3, "tlab") as lab:          # three hosts, removed whatever happens
        with inject_closed_port(lab.hosts[0].address, rate=50, duration=2):
            ...
"""

from rstfleet_lab.fleet import Lab, LabError, LabHost, down, lab_context, load, status, up
from rstfleet_lab.netns import kill_and_wait, namespace_pids, process_cmdline
from rstfleet_lab.traffic import Injector, inject_closed_port, inject_port_scan

__all__ = ["Lab", "LabError", "LabHost", "down", "lab_context", "load", "status", "up",
           "kill_and_wait", "namespace_pids", "process_cmdline",
           "Injector", "inject_closed_port", "inject_port_scan"]
