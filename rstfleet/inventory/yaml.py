"""Ansible YAML inventories, read as composed nodes so every error can name its line.

``yaml.safe_load`` forgets where values came from; composing keeps ``start_mark`` on every
node, so a list where a mapping belongs, or a bad port three groups deep, is reported at
the line the operator has to edit. libyaml composes when it is there (5x faster). Ansible's
own tags: ``!unsafe`` is a plain string here; a ``!vault`` value cannot be read without the
vault password, so it is left out with a warning (rstfleet takes no secrets from inventories).
"""
from __future__ import annotations

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode

from .build import InventoryDraft, Vars

_NULL = "tag:yaml.org,2002:null"
_GROUP_KEYS = ("hosts", "vars", "children")
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Vaulted:
    """A ``!vault`` value: encrypted, unreadable here, dropped with a warning."""


class _Constructor(SafeConstructor):
    pass


_Constructor.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))
_Constructor.add_constructor("!vault", lambda loader, node: Vaulted())


def looks_like_yaml(text: str) -> bool:
    """Sniff extension-less files: a mapping of groups to mappings (or nothing) is YAML."""
    try:
        root = yaml.compose(text, Loader=LOADER)
    except Exception:  # anything YAML cannot read is left to the INI parser
        return False
    return isinstance(root, MappingNode) and all(
        isinstance(value, MappingNode) or _is_null(value) for _, value in root.value
    )


def _compose(text: str, draft: InventoryDraft) -> Node | None:
    """The document's node tree (None when empty); a syntax error names its line."""
    try:
        root = yaml.compose(text, Loader=LOADER)
    except yaml.YAMLError as exc:
        raise draft.error(_error_line(exc, text), f"YAML syntax error: {_problem(exc)}") from None
    return None if root is None or _is_null(root) else root


def parse_yaml(text: str, draft: InventoryDraft) -> None:
    """Fill ``draft`` from YAML text: top-level keys are groups, as in Ansible's yaml plugin."""
    root = _compose(text, draft)
    if root is None:
        return
    if not isinstance(root, MappingNode):
        raise draft.error(_line(root), f"top level must be a mapping of group names, not a {_kind(root)}")
    for key, value in root.value:
        if isinstance(key, ScalarNode) and key.value == "plugin" and isinstance(value, ScalarNode):
            raise draft.error(_line(key), f"an inventory plugin configuration (plugin: {value.value}) cannot be "
                                          f"read by rstfleet; save its hosts with `ansible-inventory -i "
                                          f"{draft.file} --list --yaml --output hosts.yml` and give that file")
    done: set = set()
    for key, value in root.value:
        _group(draft, _name(draft, key, "group"), value, _line(key), frozenset(), done)


def parse_vars(text: str, draft: InventoryDraft) -> Vars:
    """A ``group_vars``/``host_vars`` file: a mapping of variables (or nothing)."""
    root = _compose(text, draft)
    return {} if root is None else _vars(draft, root, "a vars file")


def _group(draft: InventoryDraft, name: str, node: Node, line: int, open_nodes: frozenset, done: set) -> None:
    """One group body: ``hosts`` mapping, ``vars`` mapping, ``children`` mapping of groups.

    ``done`` remembers (group, node) pairs already read, so aliases reused at every level
    of a nested children tree cost linear rather than exponential time.
    """
    draft.group(name, line)
    if _is_null(node) or (name, id(node)) in done:
        return
    if not isinstance(node, MappingNode):
        raise draft.error(_line(node),
                          f"group {name!r} must be a mapping with hosts/vars/children, not a {_kind(node)}")
    if id(node) in open_nodes:  # an alias that contains itself
        raise draft.error(line, f"group cycle: {name!r} contains itself through a YAML alias")
    open_nodes = open_nodes | {id(node)}
    for key, value in node.value:
        section = key.value if isinstance(key, ScalarNode) else None
        if section not in _GROUP_KEYS:
            raise draft.error(_line(key), f"unexpected key {section or _kind(key)!r} in group {name!r} "
                                          "(expected hosts, vars or children)")
        if _is_null(value):
            continue
        if not isinstance(value, MappingNode):
            what = "host names" if section == "hosts" else "variables" if section == "vars" else "groups"
            raise draft.error(_line(value),
                              f"{section} of group {name!r} must be a mapping of {what}, not a {_kind(value)}")
        if section == "vars":
            draft.groups[name].vars.update(_vars(draft, value, f"vars of group {name!r}"))
        elif section == "hosts":
            for host_key, host_value in value.value:
                pattern = _name(draft, host_key, "host")
                draft.add_hosts(pattern, name, _line(host_key), _vars(draft, host_value, f"vars of host {pattern}"))
        else:
            for child_key, child_value in value.value:
                child = _name(draft, child_key, "group")
                draft.add_child(name, child, _line(child_key))
                _group(draft, child, child_value, _line(child_key), open_nodes, done)
    done.add((name, id(node)))


def _vars(draft: InventoryDraft, node: Node, what: str) -> Vars:
    """A variable block as {name: (python value, 'file:line')}; values built by PyYAML's safe
    constructor (plus Ansible's tags)."""
    if _is_null(node):
        return {}
    if not isinstance(node, MappingNode):
        raise draft.error(_line(node), f"{what} must be a mapping, not a {_kind(node)}")
    lines = {str(k.value): _line(k) for k, _ in node.value if isinstance(k, ScalarNode)}
    try:
        values = _Constructor().construct_document(node)
    except Exception as exc:  # PyYAML raises ValueError/TypeError too, e.g. for '!!int abc'
        line = _error_line(exc, "") if isinstance(exc, yaml.YAMLError) else None
        raise draft.error(line or _line(node), f"{what}: {_problem(exc)}") from None
    found = {}
    for key, value in values.items():
        where = draft.where(lines.get(str(key), _line(node)))
        if _vaulted(value):
            draft.warnings.append(f"{where}: {key} is encrypted with ansible-vault: left out "
                                  "(rstfleet reads no vaulted values)")
        else:
            found[str(key)] = (value, where)
    return found


def _vaulted(value: object) -> bool:
    if isinstance(value, dict):
        return any(_vaulted(v) for v in value.values())
    if isinstance(value, list):
        return any(_vaulted(v) for v in value)
    return isinstance(value, Vaulted)


def _name(draft: InventoryDraft, node: Node, kind: str) -> str:
    if not isinstance(node, ScalarNode) or _is_null(node):
        raise draft.error(_line(node), f"{kind} name must be a plain string, not a {_kind(node)}")
    return node.value


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _NULL


def _kind(node: Node) -> str:
    if isinstance(node, ScalarNode):
        return "null" if _is_null(node) else "string" if node.tag.endswith(":str") else node.tag.rsplit(":", 1)[-1]
    return "mapping" if isinstance(node, MappingNode) else "list"


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _problem(exc: Exception) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        return " ".join(part for part in (exc.context, exc.problem) if part) or str(exc)
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _error_line(exc: Exception, text: str) -> int | None:
    """problem_mark when PyYAML has one; reader errors only know a character position."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        return mark.line + 1
    position = getattr(exc, "position", None)
    return text[:position].count("\n") + 1 if isinstance(position, int) and text else None

