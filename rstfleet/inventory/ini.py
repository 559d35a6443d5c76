"""Ansible INI inventories, parsed line by line the way Ansible's ini plugin does.

Kept faithful to Ansible on purpose: host lines are split with shlex (so quotes and
trailing ``#`` comments work), ``[group:vars]`` lines split at the first ``=``, values that
look like Python literals (``2222``, ``True``, ``'quoted'``) become those literals, and a
``[group:vars]`` or ``[parent:children]`` entry naming a group the file never declares is an
error (Ansible refuses the file too; it is usually a typo).
"""
from __future__ import annotations

import ast
import re
import warnings

from .build import InventoryDraft

_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:[#;].*)?$")
_BAD_SECTION = re.compile(r"^\[[^\]]*\]\s*(?:[#;].*)?$")  # looks like a header, but is not one
_CHILD = re.compile(r"^([^:\]\s]+)\s*(?:[#;].*)?$")
_VAR_NAME = re.compile(r"^[^\s=]+$")
# One piece of a shell word: shlex's whitespace | a comment | '...' | "..." | \x | plain text
_PIECE = re.compile(r"""[ \t\r\n]+|(\#[^\n]*)|'([^']*)'|"((?:[^"\\]|\\.)*)"|\\(.)|([^ \t\r\n'"\\#]+)""", re.S)
_DOUBLE_QUOTED_ESCAPE = re.compile(r'\\(["\\])')
_TEXT_VALUE = re.compile(r"[A-Za-z_][\w.-]*|/.*|[0-9]+(?:\.[0-9]+){2,}")  # never a literal (ast would fail, slowly)
_KEYWORDS = {"True", "False", "None"}


def parse_ini(text: str, draft: InventoryDraft) -> None:
    """Fill ``draft`` from INI text; hosts before any section header are 'ungrouped'."""
    group, kind = "ungrouped", "hosts"
    declared = set(draft.groups)  # groups Ansible already knows: earlier files, all, ungrouped
    pending_vars: dict[str, int] = {}
    pending_children: dict[str, tuple[int, list[str]]] = {}  # child -> (line, parents waiting)
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
                if kind == "vars":
                    if group not in declared:
                        pending_vars.setdefault(group, number)
                else:
                    _declare(draft, group, declared, pending_vars, pending_children)
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
            draft.groups[group].vars[name.strip()] = (_literal(value.strip()), draft.where(number))
        else:
            child = _CHILD.match(line)
            if not child:
                raise draft.error(number, f"expected one group name in [{group}:children], got {line!r}")
            if child.group(1) in declared:
                draft.add_child(group, child.group(1), number)
            else:
                pending_children.setdefault(child.group(1), (number, []))[1].append(group)
    for name, number in pending_vars.items():
        raise draft.error(number, f"section [{name}:vars] is for group {name!r}, which no section declares")
    for name, (number, parents) in pending_children.items():
        raise draft.error(number, f"[{parents[-1]}:children] names group {name!r}, which no section declares")


def _declare(draft: InventoryDraft, group: str, declared: set, pending_vars: dict, pending_children: dict) -> None:
    """``[group]`` or ``[group:children]`` declares a group: children waiting for it join now."""
    declared.add(group)
    pending_vars.pop(group, None)
    if group in pending_children:
        number, parents = pending_children.pop(group)
        for parent in parents:
            draft.add_child(parent, group, number)


def _host_line(draft: InventoryDraft, group: str, line: str, number: int) -> None:
    """``pattern key=value ...`` with shell quoting, like Ansible's host definitions."""
    try:
        tokens = shell_words(line)
    except ValueError as exc:
        raise draft.error(number, f"unterminated quote ({exc})") from None
    if not tokens:
        return
    pattern, assignments = tokens[0], tokens[1:]
    if "=" in pattern:
        raise draft.error(number, f"variable {pattern!r} has no host name before it")
    if pattern.endswith(":"):
        raise draft.error(number, f"host {pattern!r} ends in ':' with no port after it")
    host_vars = {}
    where = draft.where(number)
    for token in assignments:
        name, equals, value = token.partition("=")
        if not equals or not name:
            raise draft.error(number, f"expected key=value after host {pattern}, got {token!r}")
        host_vars[name] = (_literal(value), where)
    draft.add_hosts(pattern, group, number, host_vars)


def shell_words(line: str) -> list[str]:
    """``shlex.split(line, comments=True)``, as Ansible splits host lines, at a tenth of the cost
    (a 5,000-host INI spent most of its load time in shlex); ValueError for an open quote or a
    trailing backslash. tests/unit/test_inventory_sources.py checks it against shlex."""
    words, current, at = [], None, 0
    while at < len(line):
        match = _PIECE.match(line, at)
        if match is None:
            raise ValueError("No closing quotation" if line[at] in "'\"" else "No escaped character")
        at = match.end()
        _, single, double, escaped, plain = match.groups()
        if single is None and double is None and escaped is None and plain is None:  # space or comment
            if current is not None:
                words.append(current)
            current = None
            continue
        if double is not None:
            single = _DOUBLE_QUOTED_ESCAPE.sub(r"\1", double)
        current = (current or "") + next(p for p in (single, escaped, plain) if p is not None)
    if current is not None:
        words.append(current)
    return words


def _literal(value: str) -> object:
    """Ansible's INI value rule: a Python literal if it is one, else the text itself; tuples
    and sets become lists, bytes text, complex numbers and ``...`` their text (as Ansible does)."""
    if _TEXT_VALUE.fullmatch(value) and value not in _KEYWORDS:
        return value  # names, paths, addresses: literal_eval would only fail on them, slowly
    if value.isdigit() and (value == "0" or value[0] != "0") and value.isascii():
        return int(value)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. SyntaxWarning for '\d' in a regex value
            return _ansible_types(ast.literal_eval(value), value)
    except Exception:  # ValueError, SyntaxError, and Recursion/MemoryError on pathological input
        return value


def _ansible_types(value: object, text: str) -> object:
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_ansible_types(v, text) for v in value]
    if isinstance(value, dict):
        return {k: _ansible_types(v, text) for k, v in value.items()}
    if value is ... or isinstance(value, complex):
        return "..." if value is ... else str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value
