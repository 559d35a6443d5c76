"""Executable inventories: ``SCRIPT --list`` prints JSON, as Ansible's script plugin expects.

    {"web": {"hosts": ["w1", "w2"], "vars": {"tier": "web"}, "children": ["edge"]},
     "db": ["d1"],                                    # a bare list: the group's hosts
     "_meta": {"hostvars": {"w1": {"ansible_port": 2222}}}}

Without ``_meta.hostvars`` the script is asked ``--host NAME`` for each host, as Ansible does.
A script runs only if it is executable (the caller checks), with no stdin, in its own process
group, within ``INVENTORY_SCRIPT_S`` for all its runs together and ``INVENTORY_SCRIPT_OUTPUT``
bytes; on a failure the error names the script and quotes the end of its stderr.
"""
from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import time

from ..probe.host.limits import INVENTORY_SCRIPT_OUTPUT, INVENTORY_SCRIPT_S
from ..textsafe import last_line, printable
from .build import InventoryDraft, Vars
from .model import InventoryError

STDERR_KEPT = 64 * 1024


def is_program(path: str) -> bool:
    """Executable and a program (``#!`` or ELF): an executable YAML or INI file copied from a
    share with the x bit set is still read as data (exec would fail on it anyway)."""
    if not os.access(path, os.X_OK):
        return False
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError:
        return False
    return head.startswith(b"#!") or head == b"\x7fELF"


def parse_script(path: str, draft: InventoryDraft, budget_s: float = INVENTORY_SCRIPT_S) -> None:
    """Run ``path --list`` (and ``--host`` when it gives no ``_meta``) and fill ``draft``."""
    deadline = time.monotonic() + budget_s
    listing = _json(path, "--list", _run(path, ["--list"], deadline, budget_s))
    if not isinstance(listing, dict):
        raise InventoryError(f"{path}: --list printed a JSON {type(listing).__name__}, not an object of groups")
    where = f"{path} (--list output)"
    draft.file = where
    listed: dict[str, None] = {}
    for group, body in listing.items():
        if group != "_meta":
            _group(draft, str(group), body, where, listed)
    meta = listing.get("_meta")
    hostvars = meta.get("hostvars") if isinstance(meta, dict) else None
    if meta is not None and not isinstance(hostvars, dict):
        raise InventoryError(f"{where}: _meta.hostvars must be an object of hosts")
    for host in listed:
        if hostvars is None:
            found = _json(path, f"--host {host}", _run(path, ["--host", host], deadline, budget_s)) or {}
            place = f"{path} (--host {host} output)"
        else:
            found, place = hostvars.get(host, {}), where
        draft.add_named_hosts([host], "all", None, _vars(found, place, f"variables of host {host}"))


def _group(draft: InventoryDraft, name: str, body: object, where: str, listed: dict) -> None:
    """One group of the --list output, read with the leniency of Ansible's script plugin."""
    if not isinstance(body, dict):
        body = {"hosts": body}
    elif not {"hosts", "vars", "children"} & body.keys():
        body = {"hosts": [name], "vars": body}  # Ansible's legacy reading: a host named like the group
    draft.group(name, None)
    hosts = body.get("hosts", [])
    if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
        raise InventoryError(f"{where}: hosts of group {name!r} must be a list of host names")
    draft.add_named_hosts(hosts, name, None, {})
    listed.update(dict.fromkeys(hosts))
    draft.groups[name].vars.update(_vars(body.get("vars", {}), where, f"vars of group {name!r}"))
    children = body.get("children", [])
    if not isinstance(children, list) or not all(isinstance(c, str) for c in children):
        raise InventoryError(f"{where}: children of group {name!r} must be a list of group names")
    for child in children:
        draft.add_child(name, child, None)


def _vars(found: object, where: str, what: str) -> Vars:
    if not isinstance(found, dict):
        raise InventoryError(f"{where}: {what} must be an object, not {type(found).__name__}")
    return {str(key): (value, where) for key, value in found.items()}


def _json(path: str, what: str, output: bytes) -> object:
    try:
        return json.loads(output.decode("utf-8"))
    except UnicodeDecodeError:
        raise InventoryError(f"{path}: {what} printed text that is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise InventoryError(f"{path}: {what} output line {exc.lineno}: not JSON ({exc.msg})") from None


def _run(path: str, args: list[str], deadline: float, budget_s: float) -> bytes:
    """The script's stdout, bounded in time and size; its process group is killed on any excess."""
    try:
        process = subprocess.Popen([path, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, start_new_session=True)
    except OSError as exc:
        raise InventoryError(f"{path}: cannot run inventory script: {exc.strerror or exc}") from None
    out, err, problem = bytearray(), bytearray(), None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ, out)
        selector.register(process.stderr, selectors.EVENT_READ, err)
        while selector.get_map() and problem is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                problem = f"did not finish within {budget_s:g} s (killed)"
                break
            for key, _ in selector.select(remaining):
                chunk = os.read(key.fileobj.fileno(), 65536)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                key.data.extend(chunk)
                if len(out) > INVENTORY_SCRIPT_OUTPUT:
                    problem = f"printed more than {INVENTORY_SCRIPT_OUTPUT} bytes (killed)"
                del err[:-STDERR_KEPT]
    try:
        code = process.wait(timeout=max(0.0, deadline - time.monotonic())) if problem is None else None
    except subprocess.TimeoutExpired:
        code, problem = None, f"did not exit within {budget_s:g} s (killed)"
    if code is None:
        _kill(process)
    process.stdout.close()
    process.stderr.close()
    command = printable(" ".join([path, *args]), 200)
    if problem:
        raise InventoryError(f"{path}: inventory script {command!r} {problem}")
    if code != 0:
        tail = last_line(bytes(err), 300)
        raise InventoryError(f"{path}: inventory script {command!r} exited with {code}" + (f": {tail}" if tail else ""))
    return bytes(out)


def _kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
