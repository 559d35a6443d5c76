"""Where an inventory comes from: a file, a directory of them, an executable script, plus the
``group_vars/`` and ``host_vars/`` folders beside it — read the way Ansible reads them.

    inventories/prod/            -i inventories/prod (a directory: every source in it, sorted)
      01-hosts.ini               INI
      02-cloud.yml               YAML
      03-cmdb                    executable: run with --list
      group_vars/web.yml         vars of group web
      group_vars/all/10.yml      a folder: its files merge in sorted order
      host_vars/web1.yml         vars of host web1

Ansible skips hidden names, ``group_vars``/``host_vars``/``vars_plugins`` and backup and note
extensions inside an inventory directory; so does rstfleet. Where Ansible only warns about a
file it cannot parse and carries on without its hosts, rstfleet stops with ``file:line:
problem``: a silently smaller fleet is the worse failure for a sweep.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from . import ini, yaml
from .build import InventoryDraft, Vars
from .model import InventoryError
from .script import is_program, parse_script

# Ansible's IGNORED_ALWAYS + INVENTORY_IGNORE_EXTS (REJECT_EXTS + .orig .cfg .retry)
_IGNORED = re.compile(r"^\.|^host_vars$|^group_vars$|^vars_plugins$|"
                      r"(\.pyc|\.pyo|\.swp|\.bak|~|\.rpm|\.md|\.txt|\.rst|\.orig|\.cfg|\.retry)$")
_VARS_EXTENSIONS = ("", ".yml", ".yaml", ".json")  # Ansible's order: the first that exists wins
_VAULT_HEADER = "$ANSIBLE_VAULT;"


def read_source(path: str, draft: InventoryDraft) -> None:
    """Fill ``draft`` from one path (a directory recursively), then its vars folders."""
    _read_path(path, draft)
    base = path if os.path.isdir(path) else os.path.dirname(path) or "."
    read_vars_folders(base, draft)


def _read_path(path: str, draft: InventoryDraft, named: bool = True) -> None:
    """``named``: the path the user gave (it may be a pipe, ``-i <(command)``); files found in
    a directory must be regular files (a FIFO there would block the run)."""
    if os.path.isdir(path):
        try:
            names = sorted(os.listdir(path))
        except OSError as exc:
            raise InventoryError(f"{path}: cannot read inventory directory: {exc.strerror or exc}") from None
        for name in names:
            if not _IGNORED.search(name):
                _read_path(os.path.join(path, name), draft, named=False)
        return
    draft.file = path
    regular = os.path.isfile(path)
    if not regular and not named and os.path.exists(path):
        raise InventoryError(f"{path}: not a regular file; remove it from the inventory directory")
    if regular and is_program(path):
        parse_script(path, draft)
        return
    text = read_text(path)
    suffix = Path(path).suffix.lower()
    if suffix == ".toml":
        raise InventoryError(f"{path}: TOML inventories are not supported; write it as YAML or INI")
    if suffix in (".yml", ".yaml", ".json") or (suffix != ".ini" and yaml.looks_like_yaml(text)):
        yaml.parse_yaml(text, draft)
    else:
        ini.parse_ini(text, draft)


def read_text(path: str) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InventoryError(f"{path}: cannot read inventory: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InventoryError(f"{path}:{line}: not UTF-8 text") from None


def read_vars_folders(base: str, draft: InventoryDraft) -> None:
    """``group_vars/NAME`` for every group and ``host_vars/NAME`` for every host, as files
    ``NAME``, ``NAME.yml``, ``NAME.yaml``, ``NAME.json`` (the first that exists) or a folder
    ``NAME/`` whose files merge in sorted order (hidden and ``~`` files skipped)."""
    for folder_name, names, target in (("group_vars", draft.groups, draft.group_files),
                                       ("host_vars", draft.host_vars, draft.host_files)):
        folder = os.path.join(base, folder_name)
        if not os.path.exists(folder):
            continue
        if not os.path.isdir(folder):
            draft.warnings.append(f"{folder}: not a directory, skipped (as Ansible does)")
            continue
        for name, path in _entries(folder, names).items():
            files = _folder_files(path) if os.path.isdir(path) else [path]
            merged: Vars = target.setdefault(name, {})
            for file in files:
                merged.update(_vars_file(file, draft))


def _entries(folder: str, names) -> dict[str, str]:
    """Entity name -> the file or folder Ansible would read for it (one listing, not 4 stats a host)."""
    best: dict[str, tuple[int, str]] = {}
    try:
        listing = os.listdir(folder)
    except OSError as exc:
        raise InventoryError(f"{folder}: cannot read: {exc.strerror or exc}") from None
    for entry in listing:
        for rank, extension in enumerate(_VARS_EXTENSIONS):
            stem = entry[: len(entry) - len(extension)] if extension else entry
            if (not extension or entry.endswith(extension)) and stem in names and not stem.startswith(os.sep):
                if stem not in best or rank < best[stem][0]:
                    best[stem] = (rank, os.path.join(folder, entry))
    return {name: path for name, (_, path) in best.items()}


def _folder_files(folder: str) -> list[str]:
    found = []
    for entry in sorted(os.listdir(folder)):
        if entry.startswith(".") or entry.endswith("~"):
            continue
        path = os.path.join(folder, entry)
        extension = os.path.splitext(entry)[1]
        if os.path.isdir(path) and not extension:
            found.extend(_folder_files(path))
        elif os.path.isfile(path) and extension in _VARS_EXTENSIONS:
            found.append(path)
    return found


def _vars_file(path: str, draft: InventoryDraft) -> Vars:
    text = read_text(path)
    if text.lstrip().startswith(_VAULT_HEADER):
        draft.warnings.append(f"{path}: encrypted with ansible-vault: not read (rstfleet reads no vaulted files)")
        return {}
    draft.file = path
    return yaml.parse_vars(text, draft)
