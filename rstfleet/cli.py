"""Command line: flags -> Plan -> stages -> report and exit code. Nothing else lives here."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys

from . import __version__
from .analysis import EXIT_USAGE, Thresholds, assess, exit_code
from .inventory import InventoryError
from .plan import Plan, PlanError, in_shard, load_fleet, parse_shard
from .probe.host import limits
from .report import FORMATS, emit
from .saved import load_merged
from .textsafe import printable

EXIT_INTERRUPTED = 130

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


def _add_outputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=FORMATS, default="table")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="write the --format report to FILE (the table still goes to stdout)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing on stdout")


def _add_fleet(parser: argparse.ArgumentParser, play: bool = False) -> None:
    """Options of every command that reaches hosts; a playbook's play sets the window, the
    thresholds and the capture itself."""
    parser.add_argument("-i", "--inventory", help="Ansible inventory (YAML/INI) or 'h1,h2,'; "
                                                  "default: the local host, without SSH")
    parser.add_argument("-l", "--limit", metavar="PATTERN", help="Ansible host pattern (web*:&prod:!db1)")
    parser.add_argument("--shard", metavar="K/N", type=_shard,
                        help="take the K-th of N stable slices of the selected hosts (by a hash of the "
                             "inventory name), so N schedulers split a fleet; merge with `report`")
    parser.add_argument("-f", "--forks", type=int, default=limits.FORKS,
                        help="hosts probed at once (default %(default)s)")
    parser.add_argument("-u", "--user", help="remote user (inventory ansible_user wins, as in Ansible)")
    parser.add_argument("--private-key", metavar="FILE", help="SSH private key")
    parser.add_argument("-b", "--become", action="store_true", help="run the probe with sudo")
    parser.add_argument("-K", "--ask-become-pass", action="store_true",
                        help="ask for the sudo password (sent on the session's stdin, never argv)")
    if not play:
        parser.add_argument("--window", type=float, default=limits.WINDOW_S,
                            help="seconds (default %(default)s, the alert's own window)")
    parser.add_argument("--connect-timeout", type=float, default=limits.CONNECT_TIMEOUT_S)
    parser.add_argument("--known-hosts", action="append", default=[], metavar="FILE",
                        help="known_hosts file(s) to verify host keys against")
    parser.add_argument("--accept-new-host-keys", action="store_true",
                        help="record unknown host keys (OpenSSH accept-new); changed keys stay refused")
    parser.add_argument("--ssh-config", default="~/.ssh/config", help="OpenSSH client config to honour")
    parser.add_argument("--max-output", type=int, default=limits.MAX_OUTPUT, metavar="BYTES",
                        help="cap on what is read from one host (default %(default)s)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log SSH steps on stderr")
    parser.add_argument("--trace", action="store_true",
                        help="attribute every reset to a port, peer and kernel reason with the "
                             "tcp:tcp_send_reset tracepoint (root; on by default with --capture and in "
                             "triage's phase 2; costs the host ~15 ms CPU and ~80 ms wall)")
    parser.add_argument("--no-trace", action="store_true", help="never use the tracepoint")
    parser.add_argument("--netdata", default=limits.NETDATA_DEFAULT, metavar="auto|off|URL",
                        help="take the verdict from the host's Netdata agent on loopback (default %(default)s)")
    parser.add_argument("--baseline", choices=limits.BASELINES, default=limits.BASELINE_DEFAULT,
                        help="exact: Netdata's rule on the minute before the window (+60 s a host)")
    parser.add_argument("--capture-packets", type=int, default=limits.CAPTURE_PACKETS)
    parser.add_argument("--capture-bytes", type=int, default=limits.CAPTURE_BYTES)
    parser.add_argument("--force-long-capture", action="store_true",
                        help=f"allow captures over {limits.MAX_CAPTURE_S:g} s")
    parser.add_argument("--run-dir", default="rstfleet-runs", metavar="DIR",
                        help="where captures are kept, one 0700 folder per run (default %(default)s)")
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
                    help="phase 2 on the K worst hosts with resets (default %(default)s)")
    tr.add_argument("--capture", type=float, default=limits.CAPTURE_S, metavar="SECONDS",
                    help="phase 2 capture length (default %(default)s, the guide's minimum)")

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
    _add_outputs(rp)

    sub.add_parser("lab", help="the network-namespace lab fleet (root): up N | down | status | inject"
                   ).add_argument("lab_args", nargs=argparse.REMAINDER)
    return parser


def become_password(plans: list[Plan]) -> str | None:
    """Asked once per run, before any host is touched; it travels on stdin, never argv."""
    return getpass.getpass("BECOME password: ") if any(p.ssh.ask_become_pass for p in plans) else None


def execute(plan: Plan, password: str | None) -> int:
    """Run one plan to its report; the exit code says over-threshold, missed hosts or interrupted."""
    from .sweep.run import run_plan
    from .sweep.triage import triage_banner
    from .transport import transport_factory

    if plan.phase2 is not None and not plan.outputs.quiet:
        print(triage_banner(plan), file=sys.stderr)
    outcome = run_plan(plan, transport_factory(plan.ssh, password))
    assessments = assess(outcome.results, plan.thresholds)
    code = EXIT_INTERRUPTED if outcome.partial else exit_code(assessments, plan.fail_on)
    meta = {"window_s": plan.window_s, "wall_s": round(outcome.wall_s, 3), "exit_code": code,
            "partial": outcome.partial}
    if outcome.phase2_hosts is not None:
        meta["phase2_hosts"] = outcome.phase2_hosts
    emit(plan.outputs, assessments, plan.thresholds, meta)
    return code


def cmd_hosts(args) -> int:
    """sweep and triage: one plan from the flags."""
    plan = Plan.from_args(dict(vars(args), triage=args.command == "triage"))
    if not plan.hosts:
        print(f"rstfleet: shard {args.shard[0]}/{args.shard[1]} holds no host", file=sys.stderr)
    return execute(plan, become_password([plan]))


def cmd_run(args) -> int:
    """Every play of a playbook in order; exit codes OR-ed. Nothing runs if any play is invalid."""
    from .playbook import load_playbook
    book = load_playbook(args.playbook)
    inventory = load_fleet(args.inventory)
    limit = {h.name for h in inventory.select(args.limit)} if args.limit else None
    plans = []
    for index, play in enumerate(book.plays, start=1):
        hosts = [h for h in inventory.select(play.hosts) if limit is None or h.name in limit]
        hosts = in_shard(hosts, *args.shard) if args.shard else hosts
        if not hosts:
            raise PlanError(f"{book.path}:{play.line}: no hosts match {play.hosts!r}")
        plans.append(Plan.from_play(play, hosts, vars(args), index, len(book.plays)))
    password = become_password(plans)
    code = 0
    for plan in plans:
        if not args.quiet:
            print(f"PLAY [{printable(plan.name, 80)}] {len(plan.hosts)} host(s)", file=sys.stderr)
        result = execute(plan, password)
        if result == EXIT_INTERRUPTED:
            return EXIT_INTERRUPTED      # not OR-ed with earlier plays' 4 (that gave 134)
        code |= result
    return code


def cmd_probe(args) -> int:
    from .probe.host.main import main as probe_main
    return probe_main(["--window", str(args.window)])


def cmd_report(args) -> int:
    from .evidence.captures import attach_stored_captures
    from .plan import Outputs
    merged = load_merged(args.files)
    for warning in merged.warnings:
        print(f"rstfleet: warning: {printable(warning, 300)}", file=sys.stderr)
    attach_stored_captures(merged.results)
    thresholds = Thresholds(args.warn, args.crit, args.spike_factor, args.spike_floor)
    assessments = assess(merged.results, thresholds)
    code = exit_code(assessments, args.fail_on)
    emit(Outputs(args.format, args.output, args.quiet), assessments, thresholds,
         {"window_s": merged.window_s or 0.0, "exit_code": code})
    return code


def cmd_lab(lab_args: list[str]) -> int:
    """The lab lives beside the product (rstfleet_lab); `rstfleet lab` works where it is installed."""
    try:
        from rstfleet_lab.cli import main as lab_main
    except ImportError:
        print("rstfleet: the lab is not installed: pip install ./rstfleet_lab (from the rstfleet "
              "repository), or run from the repository root", file=sys.stderr)
        return EXIT_USAGE
    return lab_main(lab_args)


COMMANDS = {"sweep": cmd_hosts, "triage": cmd_hosts, "run": cmd_run, "probe": cmd_probe, "report": cmd_report,
            "lab": lambda args: cmd_lab(args.lab_args)}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if getattr(args, "verbose", 0) else logging.WARNING,
                        format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    if getattr(args, "verbose", 0) < 2:   # paramiko logs each failed handshake with a traceback
        logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    try:
        return COMMANDS[args.command](args)
    except (InventoryError, ValueError, OSError) as exc:
        print(f"rstfleet: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("rstfleet: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
