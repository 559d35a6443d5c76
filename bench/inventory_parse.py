#!/usr/bin/env python3
"""How long a 10,000-host inventory takes to become a checked Plan (no host is touched).

    python bench/inventory_parse.py --hosts 10000

Writes the same fleet as INI and as YAML (50 groups of 200 hosts, group vars, a known_hosts
option, a port per host), then times, best of --repeats: load_inventory (the parse, Ansible's
rules), and Plan.from_args (the parse plus every host's ssh_config resolved and every bound
checked: what stands between Enter and the first connection). Prints seconds and µs per host.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rstfleet.cli_options import build_parser  # noqa: E402
from rstfleet.inventory import load_inventory  # noqa: E402
from rstfleet.plan import Plan  # noqa: E402


def write_fleet(folder: Path, hosts: int, groups: int = 50) -> tuple[Path, Path]:
    ini, yml = [], ["all:", "  children:"]
    per_group = hosts // groups
    for g in range(groups):
        ini.append(f"[g{g:02d}]")
        yml += [f"    g{g:02d}:", "      vars:", f"        ansible_user: u{g}", "      hosts:"]
        for i in range(g * per_group, (g + 1) * per_group):
            address = f"127.{1 + i // 65536}.{(i // 256) % 256}.{i % 256}"
            ini.append(f"h{i:05d} ansible_host={address} ansible_port=2222")
            yml += [f"        h{i:05d}:", f"          ansible_host: {address}", "          ansible_port: 2222"]
        ini += ["", f"[g{g:02d}:vars]", f"ansible_user=u{g}", ""]
    common = "ansible_ssh_common_args='-o UserKnownHostsFile=/dev/null'"
    ini += ["[all:vars]", common, ""]
    yml += ["  vars:", "    ansible_ssh_common_args: -o UserKnownHostsFile=/dev/null"]
    (folder / "fleet.ini").write_text("\n".join(ini))
    (folder / "fleet.yml").write_text("\n".join(yml) + "\n")
    return folder / "fleet.ini", folder / "fleet.yml"


def best_of(repeats: int, action) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for path in write_fleet(Path(tmp), args.hosts):
            parse = best_of(args.repeats, lambda: load_inventory(str(path)))
            options = dict(vars(build_parser().parse_args(["sweep", "-i", str(path), "--ssh-config", "none"])))
            plan = best_of(args.repeats, lambda: Plan.from_args(options))
            count = len(load_inventory(str(path)).hosts)
            print(f"{path.suffix[1:]:4} {count:6d} hosts  parse {parse:6.3f} s ({1e6 * parse / count:5.1f} µs/host)"
                  f"  plan {plan:6.3f} s ({1e6 * plan / count:5.1f} µs/host)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
