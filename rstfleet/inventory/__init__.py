"""Which hosts to sweep and how to reach them, read from Ansible-compatible inventories.

    model.py       Host, Inventory, host patterns (no format knowledge)
    build.py       drafts the readers fill, Ansible's membership and variable precedence
    connection.py  a host's SSH variables and ssh arguments read as Ansible + OpenSSH do
    sources.py     files, directories, scripts (script.py), group_vars/ and host_vars/
    ini.py         Ansible INI            yaml.py   Ansible YAML / JSON
    listing.py     `rstfleet inventory --list` (ansible-inventory's shape) and --list-hosts
"""
from __future__ import annotations

from pathlib import Path

from .build import InventoryDraft, build_inventory
from .model import Host, Inventory, InventoryError
from .sources import read_source

__all__ = ["Host", "Inventory", "InventoryError", "load_inventory", "localhost_inventory"]


def load_inventory(source: str) -> Inventory:
    """Read an inventory file (.yml/.yaml/.json, .ini, or sniffed), a directory of them, an
    executable inventory script, or an ``h1,h2,`` host list; with group_vars/ and host_vars/."""
    source = str(source)
    draft = InventoryDraft(source)
    if "," in source and not Path(source).exists():
        for item in source.split(","):
            if item.strip():
                draft.add_hosts(item.strip(), "ungrouped", None, {})
        return build_inventory(draft)
    try:
        read_source(source, draft)
        return build_inventory(draft)
    except RecursionError:
        raise InventoryError(f"{source}: inventory nests too deeply") from None


def localhost_inventory() -> Inventory:
    """Ansible's implicit localhost: sweep this machine without SSH."""
    draft = InventoryDraft("implicit localhost")
    draft.add_hosts("localhost", "all", None, {"ansible_connection": ("local", "implicit localhost")})
    return build_inventory(draft)
