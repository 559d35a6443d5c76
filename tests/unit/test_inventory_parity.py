"""Ansible parity with the real ``ansible-inventory`` (ansible-core) as the oracle.

Each folder of tests/fixtures/inventory_parity/ holds one inventory (the entry named
``inventory*``: a file, a directory or an executable script) with whatever group_vars/ and
host_vars/ sit beside it. ``rstfleet inventory --list`` must print the JSON
``ansible-inventory --list`` prints: the same groups with the same direct hosts and children
in the same order, and the same merged variables for every host.

Differences kept on purpose (docs/inventory.md):
- ansible-inventory marks ``!unsafe`` strings as ``{"__ansible_unsafe": "..."}``; rstfleet has
  no templating, so they are plain strings (normalised below before comparing).
- where Ansible refuses an inventory only when ANSIBLE_INVENTORY_UNPARSED_FAILED is set (and
  otherwise warns and carries on without it), rstfleet always refuses: the oracle runs with it set.

About 0.5-1 s per ansible-inventory call: the corpus runs in ~15 s on this machine.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import FIXTURES, ansible_inventory, plain, run_cli
from rstfleet.inventory import InventoryError, load_inventory
from rstfleet.inventory.listing import ansible_list, to_json

CORPUS = FIXTURES / "inventory_parity"
CASES = sorted(p for p in CORPUS.iterdir() if p.is_dir())


def source_of(case: Path) -> Path:
    (source,) = [p for p in case.iterdir() if p.name.startswith("inventory")]
    return source


def test_the_corpus_has_the_tricky_cases():
    names = " ".join(case.name for case in CASES)
    assert len(CASES) >= 12
    for topic in ("ranges", "group-vars", "host-vars", "precedence", "priority", "mixed-dir", "script",
                  "types", "unicode", "ungrouped", "ssh-args"):
        assert topic in names, topic


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_inventory_list_equals_ansible_inventory_list(case, tmp_path):
    oracle = ansible_inventory(tmp_path, "-i", str(source_of(case)), "--list")
    assert oracle.returncode == 0, oracle.stderr.decode()
    expected = plain(json.loads(oracle.stdout))
    got = json.loads(to_json(ansible_list(load_inventory(str(source_of(case))))))
    assert got == expected


def test_cli_inventory_list_and_host_print_what_ansible_inventory_prints(tmp_path):
    source = str(source_of(CORPUS / "07-mixed-dir"))
    listed = run_cli("inventory", "-i", source, "--list")
    assert listed.returncode == 0, listed.stderr.decode()
    assert json.loads(listed.stdout) == json.loads(ansible_inventory(tmp_path, "-i", source, "--list").stdout)
    host = run_cli("inventory", "-i", source, "--host", "vm1")
    assert host.returncode == 0, host.stderr.decode()
    oracle = ansible_inventory(tmp_path, "-i", source, "--host", "vm1")
    assert json.loads(host.stdout) == json.loads(oracle.stdout)
    assert json.loads(host.stdout)["host_file"] == "vm1"  # from host_vars/ inside the directory


def test_inventory_command_refuses_an_unknown_host_and_bad_input_with_exit_2(tmp_path):
    source = str(source_of(CORPUS / "01-ranges"))
    unknown = run_cli("inventory", "-i", source, "--host", "nope")
    assert unknown.returncode == 2
    assert b"--host: no host 'nope'" in unknown.stderr
    bad = tmp_path / "bad.ini"
    bad.write_text("[web]\nweb[3:1]\n")
    refused = run_cli("inventory", "-i", str(bad), "--list")
    assert (refused.returncode, refused.stdout) == (2, b"")
    assert f"{bad}:2: host range web[3:1] runs backwards".encode() in refused.stderr


REFUSED = [
    ("cycle.ini", "[a:children]\nb\n[b:children]\na\n", 4, "group cycle: a -> b -> a", b"recursive dependency loop"),
    ("cycle.yml", "a:\n  children:\n    b:\n      children:\n        a:\n", 5, "group cycle: a -> b -> a",
     b"recursive dependency loop"),
    ("undeclared-child.ini", "[p:children]\nmissing\n[x]\nh1\n", 2, "names group 'missing', which no section declares",
     b"undefined group 'missing'"),
    ("undeclared-vars.ini", "[x]\nh1\n[y:vars]\na=1\n", 3, "[y:vars] is for group 'y', which no section declares",
     b"undefined group 'y'"),
]


@pytest.mark.parametrize("name, text, line, ours, theirs", REFUSED, ids=[case[0] for case in REFUSED])
def test_inventories_ansible_refuses_are_refused_with_file_and_line(tmp_path, name, text, line, ours, theirs):
    path = tmp_path / name
    path.write_text(text)
    oracle = ansible_inventory(tmp_path, "-i", str(path), "--list")
    assert oracle.returncode != 0 and theirs in oracle.stderr
    with pytest.raises(InventoryError) as caught:
        load_inventory(str(path))
    assert str(caught.value).startswith(f"{path}:{line}: ") and ours in str(caught.value)
