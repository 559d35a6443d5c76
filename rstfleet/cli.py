"""Command line: flags (cli_options.py) -> Plan -> stages -> report and exit code. Nothing else."""

from __future__ import annotations

import getpass
import logging
import sys

from .analysis import EXIT_INTERRUPTED, EXIT_USAGE, Thresholds, assess, exit_code
from .analyze import run_analyze
from .inventory import InventoryError
from .cli_options import build_parser
from .inventory.listing import inventory_command, print_plans
from .plan import Plan, PlanError, in_shard, load_fleet
from .preflight_inputs import check_local_inputs, check_report_file
from .preflight import run_check
from .report import emit
from .playbook import load_expected
from .saved import load_merged, saved_expected
from .textsafe import printable

def become_password(plans: list[Plan]) -> str | None:
    """Said and asked once per run, before any host is touched: the plans' warnings, then the -K
    password (it travels on stdin, never argv)."""
    for warning in dict.fromkeys(w for plan in plans for w in plan.warnings):
        print(f"rstfleet: warning: {printable(warning, 2000)}", file=sys.stderr)
    return getpass.getpass("BECOME password: ") if any(p.ssh.ask_become_pass for p in plans) else None


def execute(plan: Plan, password: str | None) -> int:
    """Run one plan to its report; the exit code says over-threshold, missed hosts or interrupted.
    Ctrl-C is answered by the stages themselves while it runs (sweep/interrupt.py)."""
    from .sweep.interrupt import ctrl_c
    from .sweep.run import report_outcome, run_plan
    from .sweep.triage import triage_banner
    from .transport import transport_factory

    if plan.phase2 is not None and not plan.outputs.quiet:
        print(triage_banner(plan), file=sys.stderr)
    with ctrl_c() as interrupt:
        with transport_factory(plan.ssh, password) as transports:   # jump connections end with the run
            outcome = run_plan(plan, transports, interrupt)
        return report_outcome(plan, outcome, interrupt)


def cmd_hosts(args) -> int:
    """sweep and triage: one plan from the flags."""
    plan = check_local_inputs(Plan.from_args(dict(vars(args), triage=args.command == "triage")))
    if not plan.hosts:
        print(f"rstfleet: shard {args.shard[0]}/{args.shard[1]} holds no host", file=sys.stderr)
    return print_plans([plan]) if args.list_hosts else execute(plan, become_password([plan]))


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
        plans.append(check_local_inputs(Plan.from_play(play, hosts, vars(args), index, len(book.plays),
                                                       frozenset(inventory.groups))))
    if args.list_hosts:
        return print_plans(plans)
    password = become_password(plans)
    code = 0
    for plan in plans:
        if not args.quiet:
            print(f"PLAY [{printable(plan.name, 80)}] {len(plan.hosts)} host(s)", file=sys.stderr)
        result = execute(plan, password)
        if result == EXIT_INTERRUPTED:   # later plays do not run; not OR-ed with 4 (that gave 134)
            return EXIT_INTERRUPTED
        code |= result
    return code


def cmd_probe(args) -> int:
    from .probe.host.main import main as probe_main
    return probe_main(["--window", str(args.window)])


def cmd_report(args) -> int:
    from .evidence.captures import attach_stored_captures
    from .plan import Outputs
    if args.output:
        check_report_file(args.output)
    merged = load_merged(args.files)
    for warning in merged.warnings:
        print(f"rstfleet: warning: {printable(warning, 300)}", file=sys.stderr)
    expected = saved_expected(merged, load_expected(args.expected) if args.expected else ())
    attach_stored_captures(merged.results)
    thresholds = Thresholds(args.warn, args.crit, args.spike_factor, args.spike_floor)
    assessments = assess(merged.results, thresholds, expected)
    code = exit_code(assessments, args.fail_on)
    emit(Outputs(args.format, args.output, args.quiet), assessments, thresholds,
         {"window_s": merged.window_s or 0.0, "exit_code": code, "expected_rules": expected})
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
            "analyze": lambda args: run_analyze(dict(vars(args))), "lab": lambda args: cmd_lab(args.lab_args), "inventory": lambda args: inventory_command(vars(args)),
            "check": lambda args: run_check(dict(vars(args)), become_password)}


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
