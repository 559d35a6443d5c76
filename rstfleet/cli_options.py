"""The command line's flags: one argparse parser, its subcommands and their help.

cli.py turns the parsed flags into Plans and runs them; this module only says what the flags are
(their defaults come from probe/host/limits.py). Nothing here touches a host or a file.
"""

from __future__ import annotations

import argparse

from . import __version__
from .analysis import Thresholds
from .plan import PlanError, parse_shard
from .preflight import FORMATS as CHECK_FORMATS
from .probe.host import limits
from .report import FORMATS

EPILOG = """exit codes: 0 all hosts checked and none over threshold; 4 some host over the
--fail-on threshold; 8 some hosts could not be checked; 12 both; 2 usage or input error;
130 interrupted (a partial report is still written)."""


def _shard(text: str) -> tuple[int, int]:
    try:
        return parse_shard(text)
    except PlanError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_thresholds(parser: argparse.ArgumentParser) -> None:
    defaults = Thresholds()
    parser.add_argument("--warn", type=float, default=defaults.warn, metavar="RATE",
                        help="warn at this many resets sent/s (default %(default)s)")
    parser.add_argument("--crit", type=float, default=defaults.crit, metavar="RATE",
                        help="critical at this many resets sent/s (default %(default)s)")
    parser.add_argument("--spike-factor", type=float, default=defaults.spike_factor,
                        help="warn when the window rate exceeds this multiple of the lifetime "
                             "baseline (floored at --spike-floor/s; default %(default)s)")
    parser.add_argument("--spike-floor", type=float, default=defaults.spike_floor, help=argparse.SUPPRESS)
    parser.add_argument("--fail-on", choices=limits.FAIL_ON, default=limits.FAIL_ON_DEFAULT,
                        help="verdict that sets exit code 4 (default %(default)s)")


def _add_expected(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--expected", metavar="FILE", help="expected-reset rules (YAML: port, peers, "
                        "cause, reason, hosts): still shown, left out of verdicts, scores and exit codes; "
                        "adds to the inventory's rstfleet_expected_resets (docs/expected.md)")


def _add_outputs(parser: argparse.ArgumentParser, formats: tuple[str, ...] = FORMATS) -> None:
    parser.add_argument("--format", choices=formats, default="table")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="write the --format report to FILE (the table still goes to stdout)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing on stdout")


def _add_fleet(parser: argparse.ArgumentParser, play: bool = False, check: bool = False) -> None:
    """Options of every command that reaches hosts; a playbook's play sets the window, the
    thresholds and the capture itself; `check` has no window, evidence options or thresholds."""
    parser.add_argument("-i", "--inventory", help="Ansible inventory (file, directory or script) or 'h1,h2,'; "
                                                  "default: the local host, without SSH")
    parser.add_argument("--list-hosts", action="store_true", help="print each host's connection plan; connect to none")
    parser.add_argument("-l", "--limit", metavar="PATTERN", help="Ansible host pattern (web*:&prod:!db1)")
    parser.add_argument("--shard", metavar="K/N", type=_shard,
                        help="take the K-th of N stable slices of the selected hosts (by a hash of the "
                             "inventory name), so N schedulers split a fleet; merge with `report`")
    parser.add_argument("-f", "--forks", type=int, default=limits.FORKS,
                        help="SSH handshakes in flight at once (default %(default)s); every reached "
                             "host's session is then held so all windows start together")
    parser.add_argument("-u", "--user", help="remote user (inventory ansible_user wins, as in Ansible)")
    parser.add_argument("--private-key", metavar="FILE", help="SSH private key")
    parser.add_argument("-b", "--become", action="store_true", help="run the probe with sudo")
    parser.add_argument("-K", "--ask-become-pass", action="store_true",
                        help="ask for the sudo password (sent on the session's stdin, never argv)")
    if not (play or check):
        parser.add_argument("--window", type=float, default=limits.WINDOW_S,
                            help="seconds (default %(default)s, the alert's own window)")
    parser.add_argument("--connect-timeout", type=float, metavar="SECONDS", help="default: ssh_config's "
                        f"ConnectTimeout, else {limits.CONNECT_TIMEOUT_S:g}")
    parser.add_argument("--known-hosts", action="append", default=[], metavar="FILE",
                        help="known_hosts file(s) to verify host keys against")
    parser.add_argument("--accept-new-host-keys", action="store_true",
                        help="record unknown host keys (OpenSSH accept-new); changed keys stay refused")
    parser.add_argument("--ssh-config", metavar="FILE", help="OpenSSH client config, read as `ssh -F FILE` "
                        "(only it; 'none': no file); default ~/.ssh/config then /etc/ssh/ssh_config")
    parser.add_argument("--ssh-engine", choices=("auto", "paramiko", "asyncssh"), default="auto",
                        help="paramiko: a thread per connection; asyncssh: one event loop for all "
                             "(lighter for large fleets; pip install 'rstfleet[fleet]'; no ProxyJump); "
                             f"auto (default): asyncssh from {limits.ASYNCSSH_FROM_HOSTS} SSH hosts when "
                             "installed and no host needs a jump host, else paramiko: docs/ssh.md")
    parser.add_argument("--max-output", type=int, default=limits.MAX_OUTPUT, metavar="BYTES",
                        help="cap on what is read from one host (default %(default)s)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log SSH steps on stderr")
    if check:
        return _add_outputs(parser, CHECK_FORMATS)
    parser.add_argument("--trace", action="store_true",
                        help="attribute every reset to a port, peer and kernel reason with the "
                             "tcp:tcp_send_reset tracepoint even where the kernel is shared (by default: "
                             "as root on a host's own kernel; costs it ~12 ms CPU and ~0.1 s wall)")
    parser.add_argument("--no-trace", action="store_true", help="never use the tracepoint")
    parser.add_argument("--host-probe", choices=("auto", "shell", "python"), default="auto",
                        help="counters-only sweeps: 'shell' runs a POSIX sh probe (no python3, less CPU); "
                             "auto: python, the shell probe where python3 is missing")
    parser.add_argument("--netdata", default=limits.NETDATA_DEFAULT, metavar="auto|off|URL",
                        help="take the verdict from the host's Netdata agent on loopback (default %(default)s; "
                             "a URL needs python3 on the host, auto skips hosts without it)")
    parser.add_argument("--baseline", choices=limits.BASELINES, default=limits.BASELINE_DEFAULT,
                        help="exact: Netdata's rule on the minute before the window (+60 s a host; python3)")
    parser.add_argument("--capture-packets", type=int, default=limits.CAPTURE_PACKETS)
    parser.add_argument("--capture-bytes", type=int, default=limits.CAPTURE_BYTES)
    parser.add_argument("--force-long-capture", action="store_true",
                        help=f"allow captures over {limits.MAX_CAPTURE_S:g} s")
    parser.add_argument("--run-dir", default="rstfleet-runs", metavar="DIR",
                        help="where captures are kept, one 0700 folder per run (default %(default)s)")
    _add_expected(parser)
    if not play:
        _add_thresholds(parser)
    _add_outputs(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rstfleet", epilog=EPILOG,
                                     description="Find which hosts send TCP resets, and why.")
    parser.add_argument("--version", action="version", version=f"rstfleet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    sw = sub.add_parser("sweep", help="sample resets on every host and print a ranked table", epilog=EPILOG)
    _add_fleet(sw)
    sw.add_argument("--capture", type=float, default=0.0, metavar="SECONDS",
                    help="also capture RSTs with tcpdump for this long (the window becomes the "
                         f"capture; guide: 60..{limits.MAX_CAPTURE_S:g} s)")
    sw.add_argument("--owners", action="store_true", help="look up the programs owning the top ports")

    tr = sub.add_parser("triage", help="sweep everyone, then capture and look up owners on the worst "
                                       "hosts", epilog=EPILOG)
    _add_fleet(tr)
    tr.add_argument("--top", type=int, default=limits.PHASE2_TOP, metavar="K",
                    help="phase 2 covers every host at or over --warn, worst first, at most K (default "
                         "%(default)s); each host left out says why and how to dig into it")
    tr.add_argument("--capture", type=float, default=limits.CAPTURE_S, metavar="SECONDS",
                    help="phase 2 capture length (default %(default)s, the guide's minimum)")

    _add_fleet(sub.add_parser("check", help="preflight: can every host give every evidence tier? "
                                            "(reach, host key, auth, python, root, tools, tracefs)"), check=True)
    sub.add_parser("probe", help="run the probe on this machine and print its JSON").add_argument(
        "--window", type=float, default=limits.WINDOW_S)

    run = sub.add_parser("run", help="run a playbook (playbooks/*.yml) against an inventory", epilog=EPILOG)
    _add_fleet(run, play=True)
    run.add_argument("playbook")

    rp = sub.add_parser("report", help="re-render and merge saved JSON reports without touching hosts",
                        epilog=EPILOG)
    rp.add_argument("files", nargs="+", metavar="RESULTS.json|DIR",
                    help="saved reports, Ansible role results, or folders of them")
    _add_thresholds(rp)
    _add_expected(rp)
    _add_outputs(rp)

    add_inventory_command(sub)
    an = sub.add_parser("analyze", help="rank who sent the TCP resets in pcap/pcapng files", epilog=EPILOG)
    an.add_argument("files", nargs="+", metavar="FILE", help="captures: the guide's tcpdump, Wireshark")
    an.add_argument("--local", action="append", metavar="ADDR", help="a capturing-host address (repeatable)")
    _add_thresholds(an)
    _add_outputs(an)

    sub.add_parser("lab", help="the network-namespace lab fleet (root): up N | down | status | inject"
                   ).add_argument("lab_args", nargs=argparse.REMAINDER)
    return parser


def add_inventory_command(sub) -> None:
    """The ``inventory`` subcommand: ansible-inventory's two read-only views."""
    parser = sub.add_parser("inventory", help="print the inventory as ansible-inventory does (--list, "
                                              "--host NAME), without touching any host")
    parser.add_argument("-i", "--inventory", required=True, help="inventory file, directory, script or 'h1,h2,'")
    parser.add_argument("-l", "--limit", metavar="PATTERN", help="Ansible host pattern")
    views = parser.add_mutually_exclusive_group(required=True)
    views.add_argument("--list", action="store_true", help="groups, hosts and every host's merged variables")
    views.add_argument("--host", metavar="NAME", help="one host's merged variables")
