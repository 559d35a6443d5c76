#!/usr/bin/env python3
"""What building the Plan costs at 1,000 and 10,000 hosts, before any connection, and where.

    python bench/plan_bench.py [--hosts 1000 10000] [--repeats 3] [--profile 10000]

Writes, in a temporary folder, an INI fleet (bench/inventory_parse.py's: 50 groups, a port per
host) and an ssh_config like a real ~/.ssh/config (Host patterns, Match host/user, an Include of a
conf.d glob, IdentityFile and UserKnownHostsFile with %d/%h tokens, a ProxyJump bastion for one
subnet, `Host *` defaults), then times (CPU seconds of this process, best of --repeats: the
machine is shared, and the issue's budget is CPU per host):

  parse      load_inventory alone (part of plan)
  plan       Plan.from_args for `rstfleet sweep -i FLEET --ssh-config CONFIG`: the parse, every
             bound, every host's ssh_config resolved (transport.target.preflight)
  transports every host's SSH transport made as the sweep makes it (Transports(plan.ssh)(host):
             each resolves its target; nothing connects)
  list-hosts `--list-hosts`' printing (every host's connection plan, into a buffer)

and prints seconds and µs per host.  --profile N runs cProfile over the plan and transports at N
hosts and prints the 25 most expensive functions (cumulative and own time).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from inventory_parse import best_of, write_fleet  # noqa: E402
from rstfleet.cli_options import build_parser  # noqa: E402
from rstfleet.inventory import load_inventory  # noqa: E402
from rstfleet.inventory.listing import print_plans  # noqa: E402
from rstfleet.plan import Plan  # noqa: E402
from rstfleet.transport import transport_factory  # noqa: E402
import rstfleet.transport.ssh  # noqa: E402,F401  paramiko imported here, not inside the first timing


def write_ssh_config(folder: Path) -> Path:
    """A ~/.ssh/config as people write them for a fleet; absolute Include (the file is passed
    with --ssh-config, as `ssh -F` takes it, so the machine's own ~/.ssh stays out of it)."""
    (folder / "conf.d").mkdir()
    (folder / "conf.d" / "10-bastion.conf").write_text(
        "Host bastion\n    HostName 198.18.255.1\n    User jump\n    Port 2022\n"
        "    IdentityFile %d/.ssh/bastion_ed25519\n")
    (folder / "conf.d" / "20-legacy.conf").write_text(
        "Host legacy-* 127.1.9.*\n    HostKeyAlgorithms +ssh-rsa\n    PubkeyAcceptedAlgorithms +ssh-rsa\n")
    config = folder / "ssh_config"
    config.write_text(f"""\
# fleet access
Include {folder}/conf.d/*.conf

Host 127.1.0.*
    ProxyJump bastion

Host 127.1.* !127.1.200.*
    User ops
    IdentityFile %d/.ssh/fleet_%h
    UserKnownHostsFile %d/.ssh/known_hosts.d/%h %d/.ssh/known_hosts

Match host 127.1.1*,127.1.3* user u1*
    ConnectTimeout 15

Match originalhost *.example localuser root
    StrictHostKeyChecking accept-new

Host *.internal
    HostName %h.corp.example

Host *
    ServerAliveInterval 30
    ServerAliveCountMax 3
    IdentityFile ~/.ssh/id_ed25519
    IdentityFile %d/.ssh/id_%r
    ConnectTimeout 10
    HashKnownHosts yes
""")
    return config


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="cProfile at N hosts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = write_ssh_config(Path(tmp))
        for count in sorted(set(args.hosts + ([args.profile] if args.profile else []))):
            folder = Path(tmp) / str(count)
            folder.mkdir()
            fleet, _ = write_fleet(folder, count)
            options = dict(vars(build_parser().parse_args(
                ["sweep", "-i", str(fleet), "--ssh-config", str(config), "--list-hosts"])))
            plan = Plan.from_args(options)

            def transports() -> None:
                with transport_factory(plan.ssh) as made:
                    for host in plan.hosts:
                        made(host)

            if count in args.hosts:
                cpu = time.process_time
                timings = {"parse": best_of(args.repeats, lambda: load_inventory(str(fleet)), cpu),
                           "plan": best_of(args.repeats, lambda: Plan.from_args(options), cpu),
                           "transports": best_of(args.repeats, transports, cpu),
                           "list-hosts": best_of(args.repeats, lambda: print_plans([plan], io.StringIO()), cpu)}
                print(f"{len(plan.hosts):6d} hosts  " + "  ".join(
                    f"{name} {seconds:5.3f} s ({1e6 * seconds / len(plan.hosts):5.1f} µs/host)"
                    for name, seconds in timings.items()), flush=True)
            if count == args.profile:
                profile = cProfile.Profile()
                profile.runcall(lambda: (Plan.from_args(options), transports()))
                for order in ("cumulative", "tottime"):
                    text = io.StringIO()
                    pstats.Stats(profile, stream=text).sort_stats(order).print_stats(25)
                    print(f"--- cProfile at {count} hosts, by {order} ---")
                    print(text.getvalue().split("\n", 4)[-1].strip("\n"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
