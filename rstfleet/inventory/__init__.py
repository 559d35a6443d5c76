"""Which hosts to sweep and how to reach them, read from Ansible-compatible inventories.

    model.py  Host, Inventory, host patterns (no format knowledge)
    build.py  drafts a format fills, Ansible's precedence, the SSH variables interpreted
    ini.py    Ansible INI            yaml.py   Ansible YAML / JSON
"""
from __future__ import annotations

from pathlib import Path

from . import ini, yaml
from .build import InventoryDraft, build_inventory
from .model import Host, Inventory, InventoryError

__all__ = ["Host", "Inventory", "InventoryError", "load_inventory", "localhost_inventory"]


def load_inventory(source: str) -> Inventory:
    """Read an inventory file (.yml/.yaml/.json, .ini, or sniffed) or an ``h1,h2,`` host list."""
    source = str(source)
    path = Path(source)
    if "," in source and not path.exists():
        draft = InventoryDraft(source)
        for item in source.split(","):
            if item.strip():
                draft.add_hosts(item.strip(), "ungrouped", None, {})
        return build_inventory(draft)
    if path.is_dir():
        raise InventoryError(f"{source}: is a directory; give a single inventory file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InventoryError(f"{source}: cannot read inventory: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InventoryError(f"{source}:{line}: not UTF-8 text") from None
    draft = InventoryDraft(source)
    suffix = path.suffix.lower()
    if suffix in (".yml", ".yaml", ".json"):
        parse = yaml.parse_yaml
    elif suffix == ".ini" or not yaml.looks_like_yaml(text):
        parse = ini.parse_ini
    else:
        parse = yaml.parse_yaml
    try:
        parse(text, draft)
        return build_inventory(draft)
    except RecursionError:
        raise InventoryError(f"{source}: inventory nests too deeply") from None


def localhost_inventory() -> Inventory:
    """Ansible's implicit localhost: sweep this machine without SSH."""
    draft = InventoryDraft("implicit localhost")
    draft.add_hosts("localhost", "all", None, {"ansible_connection": ("local", None)})
    return build_inventory(draft)
