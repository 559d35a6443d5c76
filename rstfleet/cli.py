"""Command line: argument parsing only; the stages live in their own modules."""

from __future__ import annotations

import argparse
import hashlib
import getpass
import logging
import os
import sys
import time

from . import __version__
from .analysis import EXIT_USAGE, Thresholds, assess, exit_code
from .inventory import InventoryError, load_inventory, localhost_inventory
from .sweep.pool import DEFAULT_FORKS, SweepSettings, sweep
from .saved import load_merged
from .sweep.progress import Progress
from .report import FORMATS, render
from .results import CANCELLED, HostResult
from .textsafe import printable
from .transport import DEFAULT_MAX_OUTPUT

EXIT_INTERRUPTED = 130

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


def parse_shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard wants K/N like 2/5, not {text!r}") from None
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"--shard {text}: K must be between 1 and N")
    return k, n


def in_shard(hosts, k: int, n: int):
    """Stable: a host's shard depends only on its name and N, not on inventory order or size."""
    return [h for h in hosts
            if int.from_bytes(hashlib.sha256(h.name.encode()).digest()[:8], "big") % n == k - 1]


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
    sw.add_argument("--shard", metavar="K/N", type=parse_shard,
                    help="take the K-th of N stable slices of the selected hosts (by a hash of the "
                         "inventory name), so N schedulers split a fleet; merge with `report`")
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
    sw.add_argument("--max-output", type=int, default=DEFAULT_MAX_OUTPUT, metavar="BYTES",
                    help="cap on what is read from one host (default %(default)s)")
    sw.add_argument("-v", "--verbose", action="count", default=0, help="log SSH steps on stderr")
    sw.add_argument("--trace", action="store_true",
                    help="attribute every reset to a port, peer and kernel reason with the "
                         "tcp:tcp_send_reset tracepoint (root; on by default with --capture and in "
                         "triage's phase 2; costs the host ~15 ms CPU and ~80 ms wall)")
    sw.add_argument("--no-trace", action="store_true", help="never use the tracepoint")
    sw.add_argument("--capture", type=float, default=0.0, metavar="SECONDS",
                    help="also capture RSTs with tcpdump for this long (the window becomes the "
                         "capture; guide: 60..300 s)")
    sw.add_argument("--capture-packets", type=int, default=10000)
    sw.add_argument("--capture-bytes", type=int, default=8 * 1024 * 1024)
    sw.add_argument("--force-long-capture", action="store_true", help="allow captures over 300 s")
    sw.add_argument("--owners", action="store_true", help="look up the programs owning the top ports")
    sw.add_argument("--run-dir", default="rstfleet-runs", metavar="DIR",
                    help="where captures are kept, one 0700 folder per run (default %(default)s)")
    _add_thresholds(sw)

    tr = sub.add_parser("triage", parents=[], help="sweep everyone, then capture and look up owners "
                                                   "on the worst hosts", epilog=EPILOG)
    for action in sw._actions:
        if action.dest not in ("help", "capture", "owners"):
            tr._add_action(action)
    tr.add_argument("--top", type=int, default=5, metavar="K",
                    help="phase 2 on the K worst hosts with resets (default %(default)s)")
    tr.add_argument("--capture", type=float, default=60.0, metavar="SECONDS",
                    help="phase 2 capture length (default %(default)s, the guide's minimum)")

    pr = sub.add_parser("probe", help="run the probe on this machine and print its JSON")
    pr.add_argument("--window", type=float, default=10.0)

    run = sub.add_parser("run", help="run a playbook (playbooks/*.yml) against an inventory",
                         epilog=EPILOG)
    run.add_argument("playbook")
    for action in sw._actions:
        if action.dest not in ("help", "window", "warn", "crit", "spike_factor", "fail_on",
                               "capture", "owners"):
            run._add_action(action)
    run.set_defaults(window=10.0, warn=10.0, crit=100.0, spike_factor=10.0, fail_on="warn",
                     capture=0.0, owners=False, top=5)

    rp = sub.add_parser("report", help="re-render and merge saved JSON reports without touching hosts",
                        epilog=EPILOG)
    rp.add_argument("files", nargs="+", metavar="RESULTS.json|DIR",
                    help="saved reports, Ansible role results, or folders of them")
    _add_thresholds(rp)

    lab = sub.add_parser("lab", help="the network-namespace lab fleet (root): up N | down | status | inject")
    lab.add_argument("lab_args", nargs=argparse.REMAINDER)
    return parser


def thresholds_from(args) -> Thresholds:
    return Thresholds(args.warn, args.crit, args.spike_factor, args.spike_floor)


def transport_factory(args):
    """One transport per host: local for ansible_connection=local, SSH otherwise."""
    from .transport.local import LocalTransport
    from .transport.ssh import SSHSettings, SSHTransport, SharedCredentials, load_ssh_config

    if args.ask_become_pass and getattr(args, "become_password", None) is None:
        args.become_password = getpass.getpass("BECOME password: ")   # asked once per run
    password = getattr(args, "become_password", None)
    settings = SSHSettings(user=args.user, key_file=args.private_key,
                           known_hosts_files=tuple(args.known_hosts),
                           accept_new_host_keys=args.accept_new_host_keys,
                           connect_timeout=args.connect_timeout, ssh_config_path=args.ssh_config,
                           become=args.become or args.ask_become_pass, become_password=password)
    config = load_ssh_config(args.ssh_config)
    shared = SharedCredentials()

    def transport_for(host):
        if host.connection == "local":
            return LocalTransport(become=settings.become or host.become)
        return SSHTransport(host, settings, config, shared)
    return transport_for


def emit(args, assessments, thresholds, meta) -> None:
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(render(args.format, assessments, thresholds, meta))
    if not args.quiet:
        fmt = "table" if args.output else args.format
        color = fmt == "table" and sys.stdout.isatty() and "NO_COLOR" not in os.environ
        sys.stdout.write(render(fmt, assessments, thresholds, dict(meta, color=color)))


def probe_options(args, capture: float, owners: bool) -> tuple[str, ...]:
    """The plain sweep reads counters only (the alert's figure, cheapest); evidence runs add the
    tracepoint (measured: creating and removing a tracefs instance costs ~80 ms wall per host)."""
    trace = (args.trace or bool(capture)) and not args.no_trace
    options = ["--trace"] if trace else []
    if capture:
        options += ["--capture", repr(capture), "--capture-packets", str(args.capture_packets),
                    "--capture-bytes", str(args.capture_bytes)]
        if args.force_long_capture:
            options.append("--force-long-capture")
    if owners:
        options += ["--owners", "auto"]
    return tuple(options)


def sweep_settings(args, capture: float = 0.0, owners: bool = False) -> SweepSettings:
    if capture and capture > 300 and not args.force_long_capture:
        raise ValueError(f"a {capture:g} s capture is over the guide's 5 minutes; "
                         f"add --force-long-capture if you mean it")
    if capture < 0 or args.window < 0:
        raise ValueError("--window and --capture must not be negative")
    margin = 15.0 + (args.capture_bytes / 4e6 if capture else 0.0)
    return SweepSettings(window_s=capture or args.window, forks=args.forks,
                         connect_timeout_s=args.connect_timeout, margin_s=margin,
                         max_output=max(args.max_output, 2 * args.capture_bytes if capture else 0),
                         probe_options=probe_options(args, capture, owners))


def select_hosts(args):
    inventory = load_inventory(args.inventory) if args.inventory else localhost_inventory()
    hosts = inventory.select(args.limit)
    if not hosts:
        raise ValueError(f"no hosts in {inventory.source} match {args.limit or 'all'!r}")
    if getattr(args, "shard", None):
        hosts = in_shard(hosts, *args.shard)
        if not hosts:
            print(f"rstfleet: shard {args.shard[0]}/{args.shard[1]} holds no host", file=sys.stderr)
    return hosts


def store_captures(results, args, stamp: str) -> None:
    from .evidence.captures import make_run_dir, save_capture
    if not any((r.probe or {}).get("capture", {}).get("pcap_b64") for r in results):
        return
    run_dir = make_run_dir(args.run_dir, stamp)
    for result in results:
        save_capture(result, run_dir)


def finish(args, results, started: float, window: float, extra_meta: dict | None = None) -> int:
    thresholds = thresholds_from(args)
    assessments = assess(results, thresholds)
    code = exit_code(assessments, args.fail_on)
    partial = any(r.status == CANCELLED for r in results)
    if partial:
        code = EXIT_INTERRUPTED
    meta = {"window_s": window, "wall_s": round(time.monotonic() - started, 3), "exit_code": code,
            "partial": partial}
    meta.update(extra_meta or {})
    emit(args, assessments, thresholds, meta)
    return code


def run_phase(args, hosts, transport_for, settings: SweepSettings) -> list[HostResult]:
    """One fan-out, with live progress when a person is watching."""
    progress = Progress.for_terminal(len(hosts), settings.window_s, args.quiet)
    if progress:
        progress.start()
    try:
        return sweep(hosts, transport_for, settings, on_result=progress.on_result if progress else None)
    finally:
        if progress:
            progress.close()


def cmd_sweep(args, hosts=None) -> int:
    hosts = hosts or select_hosts(args)
    settings = sweep_settings(args, args.capture, args.owners)
    started, stamp = time.monotonic(), time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    results = run_phase(args, hosts, transport_factory(args), settings)
    store_captures(results, args, stamp)
    return finish(args, results, started, settings.window_s)


def merge_phase2(first: HostResult, second: HostResult) -> HostResult:
    """Keep phase 1's rate (the alert's window) and add phase 2's evidence to it."""
    if second.status != "ok" or not second.probe or not first.probe:
        if first.probe is not None:
            first.probe.setdefault("notes", []).append(
                f"phase 2 (capture) failed: {second.status}: {second.reason}")
        return first
    probe = dict(first.probe)
    for key in ("trace", "capture", "owners"):
        if key in second.probe:
            probe[key] = second.probe[key]
    probe["phase2_window"] = second.probe.get("window")
    return HostResult(first.host, first.address, first.status, first.reason, probe,
                      first.elapsed_s + second.elapsed_s, first.groups)


def cmd_triage(args, hosts=None) -> int:
    """Phase 1: everyone over the window; phase 2: capture + owners on the worst K, in parallel."""
    hosts = hosts or select_hosts(args)
    phase1 = sweep_settings(args)
    phase2 = sweep_settings(args, args.capture, owners=getattr(args, "phase2_owners", True))
    bound = phase1.host_budget_s + phase2.host_budget_s + 10
    if not args.quiet:
        print(f"triage: phase 1 sweeps {len(hosts)} host(s) for {phase1.window_s:g} s, phase 2 "
              f"captures {args.capture:g} s on the worst {args.top}; done within {bound:.0f} s",
              file=sys.stderr)
    started, stamp = time.monotonic(), time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    transport_for = transport_factory(args)
    results = run_phase(args, hosts, transport_for, phase1)
    ranked = assess(results, thresholds_from(args))
    worst = [a.host for a in ranked if a.rank is not None and (a.resets_sent_per_s or 0) > 0][:args.top]
    if worst and not any(r.status == CANCELLED for r in results):
        by_name = {h.name: h for h in hosts}
        second = run_phase(args, [by_name[name] for name in worst], transport_for, phase2)
        merged = {r.host: r for r in second}
        results = [merge_phase2(r, merged[r.host]) if r.host in merged else r for r in results]
        store_captures(results, args, stamp)
    return finish(args, results, started, phase1.window_s, {"phase2_hosts": worst})


def play_args(args, play, index: int, plays: int):
    """The command-line namespace for one play: the play's settings over the command line's."""
    copy = argparse.Namespace(**vars(args))
    copy.window, copy.warn, copy.crit = play.window, play.warn, play.crit
    copy.spike_factor, copy.fail_on = play.spike_factor, play.fail_on
    copy.forks = play.forks or args.forks
    copy.become = play.become or args.become
    copy.owners = play.owners and play.capture is None
    copy.capture = 0.0
    if play.capture:
        copy.capture, copy.capture_packets = play.capture.duration, play.capture.packets
        copy.capture_bytes, copy.force_long_capture = play.capture.bytes, play.capture.force
        copy.top, copy.phase2_owners = play.capture.top, play.owners
    if args.output and plays > 1:
        stem, dot, ext = args.output.rpartition(".")
        copy.output = f"{stem}-{index}.{ext}" if dot else f"{args.output}-{index}"
    return copy


def cmd_run(args) -> int:
    """Every play of a playbook in order; exit codes OR-ed. Nothing runs if any play is invalid."""
    from .playbook import load_playbook
    book = load_playbook(args.playbook)
    inventory = load_inventory(args.inventory) if args.inventory else localhost_inventory()
    limit = {h.name for h in inventory.select(args.limit)} if args.limit else None
    planned = []
    for play in book.plays:
        hosts = [h for h in inventory.select(play.hosts) if limit is None or h.name in limit]
        if not hosts:
            raise ValueError(f"{book.path}:{play.line}: no hosts match {play.hosts!r}")
        planned.append((play, hosts))
    code = 0
    for index, (play, hosts) in enumerate(planned, start=1):
        if not args.quiet:
            print(f"PLAY [{printable(play.name, 80)}] {len(hosts)} host(s)", file=sys.stderr)
        run_args = play_args(args, play, index, len(planned))
        code |= (cmd_triage if play.capture else cmd_sweep)(run_args, hosts)
        if code & EXIT_INTERRUPTED == EXIT_INTERRUPTED:
            break
    return code


def cmd_probe(args) -> int:
    from .probe.host.main import main as probe_main
    return probe_main(["--window", str(args.window)])


def cmd_report(args) -> int:
    merged = load_merged(args.files)
    for warning in merged.warnings:
        print(f"rstfleet: warning: {printable(warning, 300)}", file=sys.stderr)
    results, window = merged.results, merged.window_s
    thresholds = thresholds_from(args)
    assessments = assess(results, thresholds)
    code = exit_code(assessments, args.fail_on)
    emit(args, assessments, thresholds, {"window_s": window or 0.0, "exit_code": code})
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
        if args.command == "triage":
            return cmd_triage(args)
        if args.command == "run":
            return cmd_run(args)
        if args.command == "probe":
            return cmd_probe(args)
        if args.command == "report":
            return cmd_report(args)
        if args.command == "lab":
            return cmd_lab(args.lab_args)
    except (InventoryError, ValueError, OSError) as exc:
        print(f"rstfleet: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("rstfleet: interrupted", file=sys.stderr)
        return 130
    return EXIT_USAGE
