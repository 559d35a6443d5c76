"""Command line: argument parsing only; the stages live in their own modules."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import sys
import time

from . import __version__
from .analysis import EXIT_USAGE, Thresholds, assess, exit_code
from .inventory import InventoryError, load_inventory, localhost_inventory
from .orchestrator import DEFAULT_FORKS, SweepSettings, sweep
from .report import FORMATS, render
from .results import HostResult

EPILOG = """exit codes: 0 all hosts checked and none over threshold; 4 some host over the
--fail-on threshold; 8 some hosts could not be checked; 12 both; 2 usage or input error."""


def _add_thresholds(parser: argparse.ArgumentParser) -> None:
    defaults = Thresholds()
    parser.add_argument("--warn", type=float, default=defaults.warn, metavar="RATE",
                        help="warn at this many resets sent/s (default %(default)s)")
    parser.add_argument("--crit", type=float, default=defaults.crit, metavar="RATE",
                        help="critical at this many resets sent/s (default %(default)s)")
    parser.add_argument("--spike-factor", type=float, default=defaults.spike_factor,
                        help="warn when the window rate exceeds this multiple of the lifetime "
                             "baseline (floored at --spike-floor/s; default %(default)s)")
    parser.add_argument("--spike-floor", type=float, default=defaults.spike_floor,
                        help=argparse.SUPPRESS)
    parser.add_argument("--fail-on", choices=("warn", "crit", "never"), default="warn",
                        help="verdict that sets exit code 4 (default %(default)s)")
    parser.add_argument("--format", choices=FORMATS, default="table")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="write the --format report to FILE (the table still goes to stdout)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing on stdout")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rstfleet", epilog=EPILOG,
                                     description="Find which hosts send TCP resets, and why.")
    parser.add_argument("--version", action="version", version=f"rstfleet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    sw = sub.add_parser("sweep", help="sample resets on every host and print a ranked table",
                        epilog=EPILOG)
    sw.add_argument("-i", "--inventory", help="Ansible inventory (YAML/INI) or 'h1,h2,'; "
                                              "default: the local host, without SSH")
    sw.add_argument("-l", "--limit", metavar="PATTERN", help="Ansible host pattern (web*:&prod:!db1)")
    sw.add_argument("-f", "--forks", type=int, default=DEFAULT_FORKS,
                    help="hosts probed at once (default %(default)s)")
    sw.add_argument("-u", "--user", help="remote user (inventory ansible_user wins, as in Ansible)")
    sw.add_argument("--private-key", metavar="FILE", help="SSH private key")
    sw.add_argument("-b", "--become", action="store_true", help="run the probe with sudo")
    sw.add_argument("-K", "--ask-become-pass", action="store_true",
                    help="ask for the sudo password (sent on the session's stdin, never argv)")
    sw.add_argument("--window", type=float, default=10.0, help="seconds (default %(default)s, "
                                                                "the alert's own window)")
    sw.add_argument("--connect-timeout", type=float, default=10.0)
    sw.add_argument("--known-hosts", action="append", default=[], metavar="FILE",
                    help="known_hosts file(s) to verify host keys against")
    sw.add_argument("--accept-new-host-keys", action="store_true",
                    help="record unknown host keys (OpenSSH accept-new); changed keys stay refused")
    sw.add_argument("--ssh-config", default="~/.ssh/config", help="OpenSSH client config to honour")
    sw.add_argument("--max-output", type=int, default=16 * 1024 * 1024, metavar="BYTES",
                    help="cap on what is read from one host (default %(default)s)")
    sw.add_argument("-v", "--verbose", action="count", default=0, help="log SSH steps on stderr")
    _add_thresholds(sw)

    pr = sub.add_parser("probe", help="run the probe on this machine and print its JSON")
    pr.add_argument("--window", type=float, default=10.0)

    rp = sub.add_parser("report", help="re-render and merge saved JSON reports without touching hosts",
                        epilog=EPILOG)
    rp.add_argument("files", nargs="+", metavar="RESULTS.json")
    _add_thresholds(rp)

    lab = sub.add_parser("lab", help="the network-namespace lab fleet (root): up N | down | status | inject")
    lab.add_argument("lab_args", nargs=argparse.REMAINDER)
    return parser


def thresholds_from(args) -> Thresholds:
    return Thresholds(args.warn, args.crit, args.spike_factor, args.spike_floor)


def transport_factory(args):
    from .transport.local import LocalTransport
    from .transport.ssh import SSHSettings, SSHTransport, load_ssh_config

    password = getpass.getpass("BECOME password: ") if args.ask_become_pass else None
    settings = SSHSettings(user=args.user, key_file=args.private_key,
                           known_hosts_files=tuple(args.known_hosts),
                           accept_new_host_keys=args.accept_new_host_keys,
                           connect_timeout=args.connect_timeout, ssh_config_path=args.ssh_config,
                           become=args.become or args.ask_become_pass, become_password=password)
    config = load_ssh_config(args.ssh_config)

    def transport_for(host):
        if host.connection == "local":
            return LocalTransport(become=settings.become or host.become)
        return SSHTransport(host, settings, config)
    return transport_for


def emit(args, assessments, thresholds, meta) -> None:
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(render(args.format, assessments, thresholds, meta))
    if not args.quiet:
        fmt = "table" if args.output else args.format
        sys.stdout.write(render(fmt, assessments, thresholds, meta))


def cmd_sweep(args) -> int:
    inventory = load_inventory(args.inventory) if args.inventory else localhost_inventory()
    hosts = inventory.select(args.limit)
    if not hosts:
        print(f"rstfleet: no hosts in {inventory.source} match {args.limit or 'all'!r}", file=sys.stderr)
        return EXIT_USAGE
    settings = SweepSettings(window_s=args.window, forks=args.forks,
                             connect_timeout_s=args.connect_timeout, max_output=args.max_output)
    started = time.monotonic()
    results = sweep(hosts, transport_factory(args), settings)
    thresholds = thresholds_from(args)
    assessments = assess(results, thresholds)
    code = exit_code(assessments, args.fail_on)
    meta = {"window_s": args.window, "wall_s": round(time.monotonic() - started, 3), "exit_code": code}
    emit(args, assessments, thresholds, meta)
    return code


def cmd_probe(args) -> int:
    from .probe.host.main import main as probe_main
    return probe_main(["--window", str(args.window)])


def load_results(paths: list[str]) -> tuple[list[HostResult], float | None]:
    """Host results from saved JSON reports; a host in two inputs is an error, not a double count."""
    results: dict[str, HostResult] = {}
    window = None
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
        if not isinstance(document, dict) or document.get("schema") != "rstfleet.report/1":
            raise ValueError(f"{path}: not an rstfleet.report/1 JSON report")
        window = window or document.get("window_s")
        for entry in document.get("hosts", []):
            name = entry["host"]
            if name in results:
                raise ValueError(f"{path}: host {name!r} also appears in an earlier input; "
                                 f"refusing to count it twice")
            results[name] = HostResult(name, entry.get("address", name), entry["status"],
                                       entry.get("reason", ""), entry.get("probe"),
                                       entry.get("elapsed_s", 0.0), tuple(entry.get("groups", ())))
    return list(results.values()), window


def cmd_report(args) -> int:
    results, window = load_results(args.files)
    thresholds = thresholds_from(args)
    assessments = assess(results, thresholds)
    code = exit_code(assessments, args.fail_on)
    emit(args, assessments, thresholds, {"window_s": window or 0.0, "exit_code": code})
    return code


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if getattr(args, "verbose", 0) else logging.WARNING,
                        format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    if getattr(args, "verbose", 0) < 2:
        # paramiko logs every failed handshake with a traceback; our result already says why.
        logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    try:
        if args.command == "sweep":
            return cmd_sweep(args)
        if args.command == "probe":
            return cmd_probe(args)
        if args.command == "report":
            return cmd_report(args)
        if args.command == "lab":
            from .lab import main as lab_main
            return lab_main(args.lab_args)
    except (InventoryError, ValueError, OSError) as exc:
        print(f"rstfleet: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("rstfleet: interrupted", file=sys.stderr)
        return 130
    return EXIT_USAGE
