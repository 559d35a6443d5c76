"""From a format's parse to the model: drafts, host ranges, Ansible's variable precedence.

The INI and YAML readers fill an ``InventoryDraft`` (groups, hosts, variables with the line
that set them); ``build_inventory`` turns it into the model, applying Ansible's rules, and
interprets the few variables an SSH sweep needs (``_make_host``).
"""
from __future__ import annotations

import re
import shlex
import unicodedata
from dataclasses import dataclass, field

from .model import MAX_INVENTORY_HOSTS, MAX_RANGE_HOSTS, Host, Inventory, InventoryError

_TRUE = {"y", "yes", "on", "1", "true", "t"}  # Ansible's BOOLEANS_TRUE
_SSH_CONNECTIONS = {"ssh", "paramiko", "paramiko_ssh", "smart"}

Vars = dict  # variable name -> (value, line where it was set); lines make later errors precise


@dataclass
class GroupDraft:
    """A group as written: its own vars, child groups (with declaring line) and direct hosts."""

    vars: Vars = field(default_factory=dict)
    children: dict[str, int | None] = field(default_factory=dict)
    hosts: dict[str, None] = field(default_factory=dict)  # an ordered set: ranges can be large


@dataclass
class InventoryDraft:
    """What a parser collects before Ansible's membership and precedence rules are applied."""

    source: str
    groups: dict[str, GroupDraft] = field(default_factory=dict)
    host_vars: dict[str, Vars] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.groups.setdefault("all", GroupDraft())
        self.groups.setdefault("ungrouped", GroupDraft())

    def error(self, line: int | None, problem: str) -> InventoryError:
        where = f"{self.source}:{line}" if line is not None else self.source
        return InventoryError(f"{where}: {problem}")

    def group(self, name: str, line: int | None) -> GroupDraft:
        if _bad_name(name):
            raise self.error(line, f"invalid group name {name!r} (empty, whitespace or control character)")
        return self.groups.setdefault(name, GroupDraft())

    def add_child(self, parent: str, child: str, line: int | None) -> None:
        self.group(child, line)
        if child == "all":
            raise self.error(line, f"group cycle: 'all' cannot be a child of {parent!r}")
        self.group(parent, line).children.setdefault(child, line)

    def add_hosts(self, pattern: str, group: str, line: int | None, host_vars: Vars) -> None:
        """Expand a host pattern (ranges, ``name:port``) into ``group``; later vars win."""
        port = None
        match = re.fullmatch(r"((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)", pattern)  # the one colon outside ranges
        if match:
            if len(match.group(2)) > 5:
                raise self.error(line, f"port of {pattern} is not a valid port number")
            pattern, port = match.group(1), int(match.group(2))
        try:
            names = expand_host_range(pattern)
        except ValueError as exc:
            raise self.error(line, str(exc)) from None
        members = self.group(group, line).hosts
        if len(self.host_vars) + len(names) > MAX_INVENTORY_HOSTS:
            raise self.error(line, f"inventory holds more than {MAX_INVENTORY_HOSTS} hosts")
        for name in names:
            if _bad_name(name):
                raise self.error(line, f"invalid host name {name!r} (empty, whitespace or control character)")
            merged = self.host_vars.setdefault(name, {})
            if port is not None:
                merged["ansible_port"] = (port, line)
            merged.update(host_vars)
            members.setdefault(name)


def _bad_name(name: str) -> bool:
    return not name or any(c.isspace() or unicodedata.category(c) == "Cc" for c in name)


def expand_host_range(pattern: str) -> list[str]:
    """``web[01:03]`` -> web01 web02 web03; letters, ``[a:b:step]`` and several ranges too."""
    if "[" not in pattern:
        if "]" in pattern:
            raise ValueError(f"host range {pattern} has ']' without '['")
        return [pattern]
    head, _, rest = pattern.partition("[")
    inner, closed, tail = rest.partition("]")
    if not closed or "[" in inner:
        raise ValueError(f"host range {pattern} has '[' without ']'")
    bounds = inner.split(":")
    if len(bounds) not in (2, 3):
        raise ValueError(f"host range {pattern} needs [start:end] or [start:end:step]")
    begin, end, step = bounds[0] or "0", bounds[1], (bounds[2] if len(bounds) == 3 else "1")
    if not end:
        raise ValueError(f"host range {pattern} has no end")
    if not re.fullmatch(r"[0-9]+", step) or int(step) == 0:
        raise ValueError(f"host range {pattern} has a bad step {step!r}")
    width = len(begin) if begin.startswith("0") and len(begin) > 1 else 0  # web[01:20] keeps padding
    if re.fullmatch(r"[0-9]+", begin) and re.fullmatch(r"[0-9]+", end):
        if width and len(end) != width:
            raise ValueError(f"host range {pattern} must give zero-padded start and end the same width")
        first, last = int(begin), int(end)
    elif re.fullmatch(r"[a-z]{2}|[A-Z]{2}", begin + end):
        first, last = ord(begin), ord(end)
    else:
        raise ValueError(f"host range {pattern} must run between two numbers or two same-case letters")
    if first > last:
        raise ValueError(f"host range {pattern} runs backwards")
    count = (last - first) // int(step) + 1 if last >= first else 0   # len(range()) overflows
    tails = expand_host_range(tail)
    if count * len(tails) > MAX_RANGE_HOSTS:
        raise ValueError(f"host range {pattern} expands to more than {MAX_RANGE_HOSTS} hosts")
    labels = [chr(i) if begin.isalpha() else str(i).zfill(width) for i in range(first, last + 1, int(step))]
    return [head + label + t for label in labels for t in tails]


# --- from draft to inventory ---------------------------------------------------------------


def build_inventory(draft: InventoryDraft) -> Inventory:
    """Apply Ansible's rules: children imply membership, deeper groups' vars win, host vars last."""
    groups = draft.groups
    _check_cycles(draft)
    parents: dict[str, list[str]] = {g: [] for g in groups}
    for name, group in groups.items():
        for child in group.children:
            parents[child].append(name)
    depth: dict[str, int] = {"all": 0}

    def depth_of(g: str) -> int:
        if g not in depth:
            depth[g] = 1 + max((depth_of(p) for p in parents[g] if p != "all"), default=0)
        return depth[g]

    def ancestors(g: str, seen: set[str]) -> set[str]:
        if g not in seen:
            seen.add(g)
            for p in parents[g]:
                ancestors(p, seen)
        return seen

    direct: dict[str, set[str]] = {h: set() for h in draft.host_vars}
    for name, group in groups.items():
        for h in group.hosts:
            direct[h].add(name)
    membership: dict[str, set[str]] = {}
    for h, own in direct.items():
        found: set[str] = set()
        for g in own:
            ancestors(g, found)
        found.discard("all")
        if found - {"ungrouped"}:
            found.discard("ungrouped")
        else:
            found.add("ungrouped")  # Ansible's reconcile: hosts in no real group are 'ungrouped'
        membership[h] = found
    hosts = {}
    for h, own_vars in draft.host_vars.items():
        merged: Vars = {}
        for g in sorted(["all", *membership[h]], key=lambda g: (depth_of(g), g)):
            merged.update(groups[g].vars)
        merged.update(own_vars)
        hosts[h] = _make_host(draft, h, merged, tuple(sorted(membership[h])))
    members: dict[str, list[str]] = {g: [] for g in groups}
    for h in hosts:
        for g in ("all", *membership[h]):
            members[g].append(h)
    return Inventory(source=draft.source, hosts=hosts, groups=members)


def _check_cycles(draft: InventoryDraft) -> None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(g: str, path: list[str]) -> None:
        state[g] = 1
        for child, line in draft.groups[g].children.items():
            if state.get(child) == 1:
                loop = " -> ".join(path[path.index(child):] + [child])
                raise draft.error(line, f"group cycle: {loop}")
            if child not in state:
                visit(child, path + [child])
        state[g] = 2

    for g in draft.groups:
        if g not in state:
            visit(g, [g])


def _make_host(draft: InventoryDraft, name: str, merged: Vars, groups: tuple[str, ...]) -> Host:
    """Interpret the few variables an SSH sweep needs; reject values it cannot honour."""

    def text(*keys: str) -> str | None:
        for key in keys:
            if key in merged and merged[key][0] is not None:
                value, line = merged[key]
                if isinstance(value, (dict, list, bool)):
                    raise draft.error(line, f"{key} of host {name} must be a string, got {value!r}")
                return str(value)
        return None

    port = None
    for key in ("ansible_port", "ansible_ssh_port"):
        if key in merged and merged[key][0] is not None:
            value, line = merged[key]
            text_value = str(value).strip()
            valid = not isinstance(value, bool) and re.fullmatch(r"[0-9]{1,5}", text_value)
            if not valid or not 0 < int(text_value) < 65536:
                raise draft.error(line, f"{key} of host {name} must be an integer port, got {value!r}")
            port = int(text_value)
            break
    connection = text("ansible_connection") or "ssh"
    plugin = re.sub(r"^ansible\.(builtin|legacy)\.", "", connection)
    if plugin != "local" and plugin not in _SSH_CONNECTIONS:
        raise draft.error(merged["ansible_connection"][1],
                          f"ansible_connection {connection!r} of host {name} is not supported (use ssh or local)")
    become = merged.get("ansible_become", (False, None))[0]
    known_hosts = None
    for key in ("ansible_ssh_common_args", "ansible_ssh_extra_args"):
        args = text(key)
        if args and known_hosts is None:
            try:
                known_hosts = _known_hosts_option(shlex.split(args))
            except ValueError as exc:
                raise draft.error(merged[key][1], f"{key} of host {name}: {exc}") from None
    return Host(
        name=name,
        address=text("ansible_host", "ansible_ssh_host") or name,
        port=port,
        user=text("ansible_user", "ansible_ssh_user"),
        key_file=text("ansible_ssh_private_key_file", "ansible_private_key_file"),
        become=str(become).strip().lower() in _TRUE,  # True, 1 and Ansible's truthy strings
        connection="local" if plugin == "local" else "ssh",
        known_hosts_file=known_hosts,
        groups=groups,
        vars={key: value for key, (value, _) in merged.items()},
    )


def _known_hosts_option(tokens: list[str]) -> str | None:
    """First ``UserKnownHostsFile`` in ssh arguments (ssh itself keeps the first value)."""
    i = 0
    while i < len(tokens):
        token, i = tokens[i], i + 1
        if token == "-o" and i < len(tokens):
            option, i = tokens[i], i + 1
        elif token.startswith("-o"):
            option = token[2:]
        else:
            continue
        key, value = re.match(r"\s*([^=\s]*)[=\s]*(.*)", option, re.S).groups()
        if key.lower() != "userknownhostsfile":
            continue
        if not value and i < len(tokens):
            value, i = tokens[i], i + 1
        if value.split():
            return value.split()[0]  # several files may follow; the first is the one we write to
    return None
