"""From a format's parse to the model: drafts, host ranges, Ansible's variable precedence.

The INI, YAML and script readers fill one ``InventoryDraft`` (groups, hosts, variables with
the place that set them, ``file:line``); the vars files (``group_vars/``, ``host_vars/``) fill
its second layer; ``build_inventory`` turns it into the model with Ansible's rules and hands
the merged variables of each host to ``connection.host_from_vars``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .connection import Unsupported, host_from_vars
from .model import MAX_INVENTORY_HOSTS, MAX_RANGE_HOSTS, Inventory, InventoryError

Vars = dict  # variable name -> (value, 'file:line' that set it); the place makes later errors precise


@dataclass
class GroupDraft:
    """A group as written: its own vars, child groups (with declaring place) and direct hosts."""

    vars: Vars = field(default_factory=dict)
    children: dict[str, str] = field(default_factory=dict)
    hosts: dict[str, None] = field(default_factory=dict)  # an ordered set: ranges can be large


@dataclass
class InventoryDraft:
    """What the readers collect before Ansible's membership and precedence rules are applied.

    ``source`` is what the user named (a file, a directory, a script); ``file`` is the file
    being read now, so an error inside a directory names the file and line to edit.
    """

    source: str
    groups: dict[str, GroupDraft] = field(default_factory=dict)
    host_vars: dict[str, Vars] = field(default_factory=dict)
    group_files: dict[str, Vars] = field(default_factory=dict)  # group_vars/NAME*, beats inventory group vars
    host_files: dict[str, Vars] = field(default_factory=dict)   # host_vars/NAME*, beats inventory host vars
    warnings: list[str] = field(default_factory=list)
    file: str = ""

    def __post_init__(self) -> None:
        self.file = self.file or self.source
        self.groups.setdefault("all", GroupDraft())
        self.groups.setdefault("ungrouped", GroupDraft())
        self.groups["all"].children.setdefault("ungrouped", self.source)  # as Ansible starts

    def where(self, line: int | None) -> str:
        return f"{self.file}:{line}" if line is not None else self.file

    def error(self, line: int | None, problem: str) -> InventoryError:
        return InventoryError(f"{self.where(line)}: {problem}")

    def group(self, name: str, line: int | None) -> GroupDraft:
        if _bad_name(name):
            raise self.error(line, f"invalid group name {name!r} (empty, whitespace or control character)")
        return self.groups.setdefault(name, GroupDraft())

    def add_child(self, parent: str, child: str, line: int | None) -> None:
        self.group(child, line)
        if child == "all":
            raise self.error(line, f"group cycle: 'all' cannot be a child of {parent!r}")
        self.group(parent, line).children.setdefault(child, self.where(line))

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
        if port is not None:
            host_vars = {"ansible_port": (port, self.where(line)), **host_vars}
        self.add_named_hosts(names, group, line, host_vars)

    def add_named_hosts(self, names: list[str], group: str, line: int | None, host_vars: Vars) -> None:
        """Hosts by their literal names (scripts' output is never a range)."""
        members = self.group(group, line).hosts
        if len(self.host_vars) + len(names) > MAX_INVENTORY_HOSTS:
            raise self.error(line, f"inventory holds more than {MAX_INVENTORY_HOSTS} hosts")
        for name in names:
            if _bad_name(name):
                raise self.error(line, f"invalid host name {name!r} (empty, whitespace or control character)")
            merged = self.host_vars.setdefault(name, {})
            merged.update(host_vars)
            members.setdefault(name)


_BAD_NAME_CHARACTER = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")  # whitespace or a control character (Cc)


def _bad_name(name: str) -> bool:
    return not name or _BAD_NAME_CHARACTER.search(name) is not None


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
    """Apply Ansible's rules: children imply membership; variables merge in Ansible's order.

    For one host, later layers win (Ansible's default VARIABLE_PRECEDENCE): the 'all' group's
    inventory vars, the host's other groups' inventory vars, ``group_vars/all``, the other
    groups' ``group_vars/`` files (groups sorted by depth, then ``ansible_group_priority``,
    then name, as Ansible's ``sort_groups``), the host's inventory vars, its ``host_vars/``.
    """
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

    ancestry: dict[str, frozenset[str]] = {}

    def ancestors(g: str) -> frozenset[str]:
        if g not in ancestry:
            found = {g}
            for p in parents[g]:
                found |= ancestors(p)
            ancestry[g] = frozenset(found)
        return ancestry[g]

    direct: dict[str, set[str]] = {h: set() for h in draft.host_vars}
    for name, group in groups.items():
        for h in group.hosts:
            direct[h].add(name)
    priority = {g: _priority(draft, g) for g in groups}
    layers: dict[frozenset[str], tuple[tuple[str, ...], Vars]] = {}  # many hosts share their groups
    hosts, membership, unsupported = {}, {}, Unsupported()
    for h, own_vars in draft.host_vars.items():
        found: set[str] = set()
        for g in direct[h]:
            found |= ancestors(g)
        found.discard("all")
        if found - {"ungrouped"}:
            found.discard("ungrouped")
        else:
            found.add("ungrouped")  # Ansible's reconcile: hosts in no real group are 'ungrouped'
        key = frozenset(found)
        if key not in layers:
            ordered = sorted(found, key=lambda g: (depth_of(g), priority[g], g))
            merged: Vars = dict(groups["all"].vars)
            for g in ordered:
                merged.update(groups[g].vars)
            for g in ("all", *ordered):
                merged.update(draft.group_files.get(g, {}))
            layers[key] = (tuple(sorted(found)), merged)
        names, group_layer = layers[key]
        merged = {**group_layer, **own_vars, **draft.host_files.get(h, {})}
        membership[h] = key
        hosts[h] = host_from_vars(h, merged, names, unsupported)
    members: dict[str, list[str]] = {g: [] for g in groups}
    for h in hosts:
        for g in ("all", *membership[h]):
            members[g].append(h)
    warnings = draft.warnings + unsupported.warnings(draft.source)
    return Inventory(source=draft.source, hosts=hosts, groups=members, children=_children(draft, parents),
                     group_hosts=_group_hosts(draft, membership), warnings=warnings)


def _priority(draft: InventoryDraft, group: str) -> int:
    """``ansible_group_priority`` from the inventory itself: it orders the group and, as in
    Ansible, is no variable of its hosts (in group_vars/ it is only a variable)."""
    value, where = draft.groups[group].vars.pop("ansible_group_priority", (1, None))
    try:
        if isinstance(value, (dict, list)):
            raise TypeError
        return int(value)
    except (TypeError, ValueError):
        raise InventoryError(f"{where}: ansible_group_priority of group {group!r} must be an integer, "
                             f"got {value!r}") from None


def _children(draft: InventoryDraft, parents: dict[str, list[str]]) -> dict[str, list[str]]:
    """Child groups in the order Ansible lists them; groups with no parent hang under 'all'."""
    children = {g: list(group.children) for g, group in draft.groups.items()}
    children["all"] += [g for g in draft.groups if g != "all" and not parents[g]]
    return children


def _group_hosts(draft: InventoryDraft, membership: dict[str, frozenset[str]]) -> dict[str, list[str]]:
    """Hosts written directly under each group; 'ungrouped' as Ansible reconciles it."""
    direct = {g: list(group.hosts) for g, group in draft.groups.items() if g not in ("all", "ungrouped")}
    alone = [h for h, groups in membership.items() if groups == {"ungrouped"}]
    declared = [h for h in draft.groups["ungrouped"].hosts if membership[h] == {"ungrouped"}]
    direct["ungrouped"] = declared + [h for h in alone if h not in draft.groups["ungrouped"].hosts]
    return direct


def _check_cycles(draft: InventoryDraft) -> None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(g: str, path: list[str]) -> None:
        state[g] = 1
        for child, where in draft.groups[g].children.items():
            if state.get(child) == 1:
                loop = " -> ".join(path[path.index(child):] + [child])
                raise InventoryError(f"{where}: group cycle: {loop}")
            if child not in state:
                visit(child, path + [child])
        state[g] = 2

    for g in draft.groups:
        if g not in state:
            visit(g, [g])
