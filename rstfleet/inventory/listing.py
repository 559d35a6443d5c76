"""What rstfleet made of an inventory, shown without connecting to anything.

``rstfleet inventory -i INV --list`` prints the JSON ``ansible-inventory -i INV --list`` prints
(groups with their direct hosts and child groups, ``_meta.hostvars`` with each host's merged
variables), so the two can be compared line by line; ``--host NAME`` prints one host's variables.
``--list-hosts`` on sweep, triage and run prints each selected host's connection plan, resolved
by the SSH transport's own ``resolve_target`` (ssh_config included), one line a host:

    web1  address=198.18.0.5 port=2222 user=ops keys=/k/id known_hosts=/kh proxy='ssh -W …' python=python3 become=no
"""
from __future__ import annotations

import json
import shlex
import sys
from typing import Iterable

from ..textsafe import printable
from .model import Host, Inventory, InventoryError


def ansible_list(inventory: Inventory, hosts: Iterable[Host] | None = None) -> dict:
    """The ``ansible-inventory --list`` document: every group reachable from 'all' that has
    hosts or children, then ``_meta``; hosts without variables are left out of hostvars."""
    chosen = {h.name: h for h in (inventory.hosts.values() if hosts is None else hosts)}
    document: dict = {}
    seen: set[str] = set()

    def add(group: str) -> None:
        entry = {"children": list(inventory.children.get(group, []))}
        if group != "all":
            entry["hosts"] = [h for h in inventory.group_hosts.get(group, []) if h in chosen]
        for child in entry["children"]:
            if child not in seen:
                seen.add(child)
                add(child)
        entry = {key: value for key, value in entry.items() if value}
        if entry:
            document[group] = entry

    add("all")
    document["_meta"] = {"hostvars": {name: dict(h.vars) for name, h in chosen.items() if h.vars},
                         "profile": "inventory_legacy"}
    return document


def to_json(document: object) -> str:
    """Ansible's layout: sorted keys, four spaces; YAML dates and times in ISO 8601 as Ansible
    writes them, any other value YAML may hold as its text."""
    return json.dumps(document, sort_keys=True, indent=4, ensure_ascii=False,
                      default=lambda value: value.isoformat() if hasattr(value, "isoformat") else str(value))


def plan_line(host: Host, ssh, config) -> str:
    """One host's connection plan as ``key=value`` words (values quoted for the shell, host
    text made printable), from the transport's own resolver."""
    words = [printable(host.name, 120), f"connection={host.connection}"]
    if host.connection != "local":
        from ..transport.ssh import resolve_target
        target = resolve_target(host, ssh, config)
        words += [f"address={target.hostname}", f"port={target.port}", f"user={target.user}",
                  f"keys={','.join(target.key_files) or '-'}",
                  f"known_hosts={','.join(target.known_hosts_files) or '-'}"]
        jump = getattr(target, "proxy_jump", None)  # the hops, where the resolver keeps them
        if jump:
            words.append(f"proxy_jump={jump if isinstance(jump, str) else ','.join(jump)}")
        words.append(f"proxy={target.proxy_command or '-'}")
    words += [f"python={host.python or 'python3'}", f"become={'sudo' if host.become or ssh.become else 'no'}"]
    return "  ".join([words[0]] + [_quoted(word) for word in words[1:]])


def _quoted(word: str) -> str:
    key, _, value = word.partition("=")
    return f"{key}={shlex.quote(printable(value, 300))}"


def _ssh_config(path: str | None):
    """The ssh_config the transport would read, loaded by the transport's own function."""
    from ..transport.ssh_config import load_client_config
    return load_client_config(path)


def print_plans(plans, out=None) -> int:
    """``--list-hosts``: every plan's hosts and how each would be reached; nothing connects."""
    out = out or sys.stdout
    for plan in plans:
        config = _ssh_config(plan.ssh.ssh_config_path)
        title = f"PLAY [{printable(plan.name, 80)}] " if plan.name else ""
        print(f"{title}hosts ({len(plan.hosts)}):", file=out)
        for host in plan.hosts:
            print("  " + plan_line(host, plan.ssh, config), file=out)
    return 0


def inventory_command(options: dict) -> int:
    """``rstfleet inventory``: exit 0 with the JSON, or InventoryError (exit 2) for bad input."""
    from ..plan import load_fleet
    inventory = load_fleet(options["inventory"])
    hosts = inventory.select(options["limit"]) if options.get("limit") else None
    name = options.get("host")
    if name is not None:
        if name not in inventory.hosts:
            raise InventoryError(f"--host: no host {printable(name, 120)!r} in {inventory.source}")
        print(to_json(dict(inventory.hosts[name].vars)))
    else:
        print(to_json(ansible_list(inventory, hosts)))
    return 0
