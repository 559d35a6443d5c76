"""Where inventories come from: directories, group_vars/ and host_vars/, executable scripts —
with Ansible's rules, bounded, and errors that name the file and line to edit."""
from __future__ import annotations

import ast
import os
import shlex
import time
import warnings
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rstfleet.inventory import InventoryError, load_inventory
from rstfleet.inventory.build import InventoryDraft
from rstfleet.inventory.ini import _literal, shell_words
from rstfleet.inventory.script import parse_script


def write(path: Path, text: str, mode: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mode is not None:
        path.chmod(mode)
    return path


# --- directories ----------------------------------------------------------------------------------


def test_a_directory_reads_every_source_in_sorted_order_and_skips_what_ansible_skips(tmp_path):
    inv = tmp_path / "inv"
    write(inv / "b.yml", "web:\n  vars:\n    who: b.yml\n  hosts:\n    w2:\n")
    write(inv / "a.ini", "[web]\nw1\n[web:vars]\nwho=a.ini\n")
    write(inv / "sub" / "c", "[db]\nd1\n")
    for skipped in (".hidden", "x.retry", "x.orig", "x~", "x.cfg", "x.md", "x.txt", "x.bak", "x.swp"):
        write(inv / skipped, "[skipped]\nmust-not-appear\n")
    write(inv / "group_vars" / "web.yml", "from_group_vars: 1\n")
    inventory = load_inventory(str(inv))
    assert list(inventory.hosts) == ["w1", "w2", "d1"]
    assert inventory.hosts["w1"].vars == {"who": "b.yml", "from_group_vars": 1}  # the later file wins


def test_an_error_inside_a_directory_names_the_file_and_line(tmp_path):
    write(tmp_path / "inv" / "a.ini", "[web]\nw1\n")
    write(tmp_path / "inv" / "b.yml", "web:\n  hosts:\n    w[3:1]:\n")
    with pytest.raises(InventoryError) as caught:
        load_inventory(str(tmp_path / "inv"))
    assert str(caught.value) == f"{tmp_path / 'inv' / 'b.yml'}:3: host range w[3:1] runs backwards"


def test_a_fifo_in_a_directory_is_refused_not_read(tmp_path):
    write(tmp_path / "inv" / "a.ini", "w1\n")
    os.mkfifo(tmp_path / "inv" / "pipe")
    with pytest.raises(InventoryError, match="pipe: not a regular file"):
        load_inventory(str(tmp_path / "inv"))


@pytest.mark.parametrize("name, text, words", [
    ("aws.yml", "plugin: amazon.aws.aws_ec2\nregions: [eu-west-1]\n", "inventory plugin configuration (plugin: "
                                                                       "amazon.aws.aws_ec2)"),
    ("hosts.toml", "[web.hosts]\n", "TOML inventories are not supported"),
])
def test_sources_rstfleet_cannot_read_are_refused_with_what_to_do(tmp_path, name, text, words):
    with pytest.raises(InventoryError, match=r"\(plugin|TOML") as caught:
        load_inventory(str(write(tmp_path / name, text)))
    assert words in str(caught.value)


# --- group_vars and host_vars -----------------------------------------------------------------------


def test_vars_folders_merge_sorted_and_prefer_the_extensionless_name(tmp_path):
    write(tmp_path / "group_vars" / "web" / "20.yml", "order: 20\nsecond: yes\n")
    write(tmp_path / "group_vars" / "web" / "10.yml", "order: 10\nfirst: yes\n")
    write(tmp_path / "group_vars" / "web" / "nested" / "30.json", '{"order": 30}')
    write(tmp_path / "group_vars" / "web" / "99.yml~", "order: backup\n")
    write(tmp_path / "group_vars" / "web" / "notes.md", "order: notes\n")
    write(tmp_path / "host_vars" / "w1", "chosen: bare\n")
    write(tmp_path / "host_vars" / "w1.yml", "chosen: yml\n")
    inventory = load_inventory(str(write(tmp_path / "hosts.ini", "[web]\nw1\n")))
    assert inventory.hosts["w1"].vars == {"order": 30, "first": True, "second": True, "chosen": "bare"}


def test_host_vars_set_the_connection(tmp_path):
    write(tmp_path / "host_vars" / "w1.yml", "ansible_port: 2222\nansible_python_interpreter: /opt/py/bin/python3\n")
    host = load_inventory(str(write(tmp_path / "hosts.yml", "web:\n  hosts:\n    w1:\n"))).hosts["w1"]
    assert (host.port, host.python) == (2222, "/opt/py/bin/python3")


def test_a_vars_file_that_is_not_a_mapping_names_its_line(tmp_path):
    write(tmp_path / "group_vars" / "all.yml", "# comment\n- a\n- b\n")
    with pytest.raises(InventoryError) as caught:
        load_inventory(str(write(tmp_path / "hosts.ini", "w1\n")))
    assert str(caught.value).startswith(f"{tmp_path / 'group_vars' / 'all.yml'}:2: a vars file must be a mapping")


def test_group_vars_that_is_a_file_is_skipped_with_a_warning(tmp_path):
    write(tmp_path / "group_vars", "not: a folder\n")
    inventory = load_inventory(str(write(tmp_path / "hosts.ini", "w1\n")))
    assert inventory.warnings == [f"{tmp_path / 'group_vars'}: not a directory, skipped (as Ansible does)"]


# --- scripts ----------------------------------------------------------------------------------------


def test_a_file_that_is_not_executable_is_never_run(tmp_path):
    marker = tmp_path / "ran"
    source = write(tmp_path / "inventory", f"#!/bin/sh\ntouch {marker}\n", mode=0o644)
    with pytest.raises(InventoryError, match=r":2: expected key=value after host touch"):
        load_inventory(str(source))
    assert not marker.exists()


def test_a_failing_script_is_an_error_naming_it_its_exit_and_its_stderr(tmp_path):
    source = write(tmp_path / "cmdb.sh", "#!/bin/sh\necho 'token expired' >&2\nexit 3\n", mode=0o755)
    with pytest.raises(InventoryError) as caught:
        load_inventory(str(source))
    assert str(caught.value) == f"{source}: inventory script '{source} --list' exited with 3: token expired"


def test_a_script_printing_no_json_names_the_output_line(tmp_path):
    source = write(tmp_path / "cmdb.sh", "#!/bin/sh\necho '{'\necho 'oops'\n", mode=0o755)
    with pytest.raises(InventoryError, match=r"cmdb.sh: --list output line 2: not JSON"):
        load_inventory(str(source))


def test_a_hanging_script_is_killed_with_its_children_at_the_bound(tmp_path):
    pidfile = tmp_path / "child.pid"
    source = write(tmp_path / "slow.sh", f"#!/bin/sh\nsleep 60 &\necho $! > {pidfile}\nwait\n", mode=0o755)
    started = time.monotonic()
    with pytest.raises(InventoryError, match=r"did not finish within 1 s \(killed\)"):
        parse_script(str(source), InventoryDraft(str(source)), budget_s=1.0)
    assert time.monotonic() - started < 5
    child = Path(f"/proc/{int(pidfile.read_text())}/stat")
    deadline = time.monotonic() + 5
    while not dead(child) and time.monotonic() < deadline:
        time.sleep(0.05)  # SIGKILL is delivered asynchronously
    assert dead(child)


def dead(stat: Path) -> bool:
    """Gone, or a zombie waiting for init to reap it."""
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return True


def test_a_script_printing_without_end_is_cut_at_the_output_bound(tmp_path, monkeypatch):
    monkeypatch.setattr("rstfleet.inventory.script.INVENTORY_SCRIPT_OUTPUT", 1_000_000)
    source = write(tmp_path / "chatty.sh", "#!/bin/sh\nexec yes '{\"web\": []}'\n", mode=0o755)
    with pytest.raises(InventoryError, match=r"printed more than 1000000 bytes \(killed\)"):
        parse_script(str(source), InventoryDraft(str(source)), budget_s=20.0)


def test_script_hosts_are_names_not_ranges_and_vars_must_be_objects(tmp_path):
    source = write(tmp_path / "inv.py", "#!/bin/sh\necho '{\"web\": {\"hosts\": [\"w[1:2]\"]}}'\n", mode=0o755)
    assert list(load_inventory(str(source)).hosts) == ["w[1:2]"]
    bad = write(tmp_path / "bad.py", "#!/bin/sh\necho '{\"web\": {\"hosts\": [\"w1\"], \"vars\": [1]}}'\n",
                mode=0o755)
    with pytest.raises(InventoryError, match=r"bad.py \(--list output\): vars of group 'web' must be an object"):
        load_inventory(str(bad))


# --- the fast paths equal what they replace ----------------------------------------------------------


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet=" \t\r'\"\\#ab=\n", max_size=16))
def test_shell_words_split_exactly_as_shlex_with_comments(line):
    try:
        expected = shlex.split(line, comments=True)
    except ValueError:
        with pytest.raises(ValueError):
            shell_words(line)
        return
    assert shell_words(line) == expected


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet="abeTrNu_-.+0123456789x/j '[]{}:,", max_size=10))
def test_ini_values_read_as_ansible_reads_them(value):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = ast.literal_eval(value)
    except Exception:
        expected = value
    if isinstance(expected, (tuple, set, complex, bytes)) or expected is ...:
        return  # converted the way Ansible converts them; corpus 09-types checks those against Ansible
    got = _literal(value)
    assert got == expected and type(got) is type(expected)


def test_a_5000_host_inventory_loads_fast(tmp_path, capsys):
    """A benchmark print, not a timed assertion (shared CI machines vary): see the -s output."""
    lines = []
    for g in range(50):
        lines.append(f"[g{g}]")
        lines += [f"h{g * 100 + h} ansible_host=198.18.{(g * 100 + h) // 256}.{(g * 100 + h) % 256}"
                  f" ansible_ssh_common_args='-o ProxyJump=b{g % 3} -o UserKnownHostsFile=/kh'" for h in range(100)]
        lines.append(f"[g{g}:vars]\nrack=r{g}\nansible_python_interpreter=/usr/bin/python3")
    source = write(tmp_path / "fleet.ini", "\n".join(lines) + "\n")
    write(tmp_path / "group_vars" / "all.yml", "ansible_user: ops\n")
    started = time.perf_counter()
    inventory = load_inventory(str(source))
    elapsed = time.perf_counter() - started
    assert len(inventory.hosts) == 5000 and inventory.hosts["h4999"].proxy_jump == "b1"
    with capsys.disabled():
        print(f"\n  benchmark: 5,000-host INI with group_vars loaded in {elapsed:.3f} s")
