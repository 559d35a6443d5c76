"""Ansible INI inventories, parsed line by line the way Ansible's ini plugin does.

Kept faithful to Ansible on purpose: host lines are split with shlex (so quotes and
trailing ``#`` comments work), ``[group:vars]`` lines split at the first ``=``, and values
that look like Python literals (``2222``, ``True``, ``'quoted'``) become those literals.
"""
from __future__ import annotations

import ast
import re
import shlex
import warnings

from .build import InventoryDraft

_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:[#;].*)?$")
_BAD_SECTION = re.compile(r"^\[[^\]]*\]\s*(?:[#;].*)?$")  # looks like a header, but is not one
_CHILD = re.compile(r"^([^:\]\s]+)\s*(?:[#;].*)?$")
_VAR_NAME = re.compile(r"^[^\s=]+$")


def parse_ini(text: str, draft: InventoryDraft) -> None:
    """Fill ``draft`` from INI text; hosts before any section header are 'ungrouped'."""
    group, kind = "ungrouped", "hosts"
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            header = _SECTION.match(line)
            if header:
                group, kind = header.group(1), header.group(2) or "hosts"
                if kind not in ("hosts", "vars", "children"):
                    raise draft.error(number, f"section [{group}:{kind}] has unknown type {kind!r} "
                                              "(expected vars or children)")
                draft.group(group, number)
                continue
            if _BAD_SECTION.match(line):
                raise draft.error(number, f"malformed section header {line!r} "
                                          "(no spaces or colons inside group names)")
        if kind == "hosts":
            _host_line(draft, group, line, number)
        elif kind == "vars":
            name, equals, value = line.partition("=")
            if not equals or not _VAR_NAME.match(name.strip()):
                raise draft.error(number, f"expected key=value in [{group}:vars], got {line!r}")
            draft.groups[group].vars[name.strip()] = (_literal(value.strip()), number)
        else:
            child = _CHILD.match(line)
            if not child:
                raise draft.error(number, f"expected one group name in [{group}:children], got {line!r}")
            draft.add_child(group, child.group(1), number)


def _host_line(draft: InventoryDraft, group: str, line: str, number: int) -> None:
    """``pattern key=value ...`` with shell quoting, like Ansible's host definitions."""
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError as exc:  # shlex only raises for an unterminated quote or escape
        raise draft.error(number, f"unterminated quote ({exc})") from None
    if not tokens:
        return
    pattern, assignments = tokens[0], tokens[1:]
    if "=" in pattern:
        raise draft.error(number, f"variable {pattern!r} has no host name before it")
    host_vars = {}
    for token in assignments:
        name, equals, value = token.partition("=")
        if not equals or not name:
            raise draft.error(number, f"expected key=value after host {pattern}, got {token!r}")
        host_vars[name] = (_literal(value), number)
    draft.add_hosts(pattern, group, number, host_vars)


def _literal(value: str) -> object:
    """Ansible's INI value rule: a Python literal if it is one, else the text itself."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. SyntaxWarning for '\d' in a regex value
            return ast.literal_eval(value)
    except Exception:  # ValueError, SyntaxError, and Recursion/MemoryError on pathological input
        return value
