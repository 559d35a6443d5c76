"""The probe that runs on each host: stdlib only, Python >= 3.6, nothing written to disk.

These modules are shipped to a host inside one script on stdin (see rstfleet.probe.probe_script);
they import each other relatively so the same files also import as rstfleet.probe.host.* here.
"""

PROBE_VERSION = "0.1.0"
SCHEMA = 1
