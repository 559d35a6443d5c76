"""Which hosts to sweep and how to reach them, read from Ansible-compatible inventories.

Operators already describe their fleet for Ansible, so rstfleet reads the same YAML and INI
inventories, directories and scripts (``sources``, ``ini``, ``yaml``, ``script``; the drafts they fill
in ``build``) and keeps Ansible's rules for host ranges, group children, variable precedence and
host patterns.  Only what an SSH sweep needs is interpreted (``connection``); every other variable
is carried along in ``Host.vars``.

IPv6 literals: ``:`` separates host patterns, so give IPv6 hosts a plain inventory name and
put the address in ``ansible_host``.
"""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

MAX_RANGE_HOSTS = 100_000  # a typo like web[0:9999999] should fail fast, not eat memory
MAX_INVENTORY_HOSTS = 200_000  # and so should many lines of large ranges (found by fuzzing)


class InventoryError(ValueError):
    """Message always names the file, the line (1-based) when known, and the problem, e.g.
    'inventories/bad.ini:7: host range web[05:01] runs backwards'."""


@dataclass(frozen=True)
class Host:
    """One machine to sweep, with the connection facts the SSH transport needs."""

    name: str  # inventory name, kept as written (callers make it file-name safe)
    address: str  # ansible_host, else the name
    port: int | None = None  # None: let ssh config / 22 decide
    user: str | None = None
    key_file: str | None = None
    become: bool = False
    connection: str = "ssh"  # "ssh" or "local"
    known_hosts_file: str | None = None  # from -o UserKnownHostsFile in ansible_ssh_*_args
    proxy_command: str | None = None  # -o ProxyCommand=… in ansible_ssh_*_args (wins over ssh_config)
    proxy_jump: str | None = None  # -J / -o ProxyJump=… in ansible_ssh_*_args
    python: str | None = None  # ansible_python_interpreter; None: python3 from PATH
    groups: tuple[str, ...] = ()  # all groups, through children too, sorted; never 'all'
    vars: dict = field(default_factory=dict, compare=False, hash=False)  # merged, Ansible precedence
    places: dict = field(default_factory=dict, compare=False, hash=False)  # var -> 'file:line' that set it


@dataclass
class Inventory:
    """The parsed fleet: hosts in file order and the (transitive) members of every group; the
    tree as written (direct hosts, child groups) for ``rstfleet inventory --list``; warnings
    about settings not honoured (printed once by whoever loads the fleet)."""

    source: str
    hosts: dict[str, Host]
    groups: dict[str, list[str]]
    children: dict[str, list[str]] = field(default_factory=dict)
    group_hosts: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def select(self, pattern: str | None) -> list[Host]:
        """Hosts matching an Ansible host pattern, in inventory order.

        Parts are separated by ``,`` (or by ``:`` when there is no comma); ``&part``
        intersects, ``!part`` excludes (both applied after the plain unions, as Ansible
        does); each part is a group or host name, a shell glob, ``~regex``, optionally with
        an Ansible subscript such as ``web[0]`` or ``web[0:2]``.  An empty pattern selects
        nothing rather than everything, so a blank ``--limit`` cannot sweep the whole fleet.
        """
        if pattern is None:
            return list(self.hosts.values())
        parts = _split_pattern(pattern)
        if not parts:
            return []
        plain = [p for p in parts if p[0] not in "&!"] or ["all"]
        chosen: set[str] = set()
        for part in plain:
            chosen.update(self._match(part))
        for part in (p for p in parts if p[0] == "&"):
            chosen &= set(self._match(part[1:]))
        for part in (p for p in parts if p[0] == "!"):
            chosen -= set(self._match(part[1:]))
        return [host for name, host in self.hosts.items() if name in chosen]

    def _match(self, part: str) -> list[str]:
        """Host names one pattern part stands for, in inventory order."""
        part, subscript = _split_subscript(part)
        if part in ("all", "*"):
            names = list(self.hosts)
        else:
            expr = part[1:] if part.startswith("~") else fnmatch.translate(part)
            try:
                regex = re.compile(expr)
            except re.error as exc:
                raise InventoryError(f"{self.source}: invalid host pattern {part!r}: {exc}") from None
            groups = [g for g in self.groups if regex.match(g)]
            found = {h for g in groups for h in self.groups[g]}
            if not groups or part.startswith("~") or any(c in part for c in ".?*["):
                found.update(h for h in self.hosts if regex.match(h))
            names = [h for h in self.hosts if h in found]
        if subscript is None:
            return names
        start, end = subscript
        if end is None:
            return [names[start]] if -len(names) <= start < len(names) else []
        return names[start:(end + 1) if end >= 0 else None]


_SUBSCRIPT = re.compile(r"^(.+)\[(?:(-?[0-9]+)|([0-9]+)[:-]([0-9]*))\]$")


def _split_pattern(pattern: str) -> list[str]:
    """Ansible's split: commas if there are any, else colons outside ``[...]``."""
    if "," in pattern:
        parts = pattern.split(",")
    else:
        parts = re.findall(r"(?:[^\s:\[\]]|\[[^\]]*\])+", pattern)
    return [p.strip() for p in parts if p.strip() and p.strip() not in ("&", "!")]


def _split_subscript(part: str) -> tuple[str, tuple[int, int | None] | None]:
    """``web[1:3]`` -> ('web', (1, 3)); ``web[-1]`` -> ('web', (-1, None)); regexes never."""
    match = None if part.startswith("~") else _SUBSCRIPT.match(part)
    if not match:
        return part, None
    name, single, start, end = match.groups()
    if single is not None:
        return name, (int(single), None)
    return name, (int(start), int(end) if end else -1)


# --- shared by the format parsers -------------------------------------------------------
