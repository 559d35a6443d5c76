"""`rstfleet lab up N | down | status | inject` (also `rstfleet-lab …`): the lab fleet from the command line."""

from __future__ import annotations

import argparse
import json
import sys
import time

from rstfleet_lab.fleet import LabError, down, status, up
from rstfleet_lab.traffic import inject_closed_port


def main(argv: list[str] | None = None) -> int:
    """``up N``, ``down``, ``status`` (exit 1 unless every host serves ssh), ``inject ADDRESS``."""
    parser = argparse.ArgumentParser(prog="rstfleet-lab", description="network-namespace lab fleet")
    sub = parser.add_subparsers(dest="command", required=True)
    p_up, p_down, p_status = (sub.add_parser(c) for c in ("up", "down", "status"))
    p_up.add_argument("n", type=int, help="number of hosts")
    p_up.add_argument("--inner", type=int, default=0, metavar="M",
                      help="M more hosts reachable only through the first one (a bastion)")
    for p in (p_up, p_down, p_status):
        p.add_argument("--name", default="lab")
    p_inj = sub.add_parser("inject", help="make a lab host send resets: connects to a closed port")
    p_inj.add_argument("address")
    p_inj.add_argument("--rate", type=float, required=True, help="attempts per second")
    p_inj.add_argument("--duration", type=float, required=True, help="seconds")
    p_inj.add_argument("--port", type=int, default=9)
    p_inj.add_argument("--from", dest="source", metavar="NS", help="source network namespace, e.g. rf0-h2")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            started, lab = time.monotonic(), up(args.n, args.name, args.inner)
            print(f"lab {lab.name}: {len(lab.hosts)} hosts {lab.hosts[0].address}..{lab.hosts[-1].address} "
                  f"up in {time.monotonic() - started:.1f} s\ninventory: {lab.inventory_path}")
            if lab.inner:
                print(f"behind {lab.hosts[0].name}: {len(lab.inner)} hosts {lab.inner[0].address}.."
                      f"{lab.inner[-1].address} (group inner)\nssh_config: {lab.ssh_config_path}")
        elif args.command == "down":
            down(args.name)
        elif args.command == "status":
            from tabulate import tabulate

            st = status(args.name)
            cols = ["name", "namespace", "address", "namespace_exists", "sshd_running", "port22_open"]
            print(f"lab {st['name']} (index {st['index']}, bridge {st['bridge']} {st['gateway']}/22)")
            print(tabulate([[h[c] for c in cols] for h in st["hosts"]],
                           headers=["host", "namespace", "address", "netns", "sshd", "port 22"]))
            return 0 if all(all(h[c] for c in cols[3:]) for h in st["hosts"]) else 1
        else:
            with inject_closed_port(args.address, args.rate, args.duration, args.port, args.source) as injector:
                injector.wait()
            print(json.dumps(injector.result))
    except (LabError, ValueError) as exc:
        print(f"rstfleet lab: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
