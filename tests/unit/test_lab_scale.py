"""What a big lab needs from the machine: neighbour-table room raised and given back, bridges split.

The sysctls here are files in a temporary folder standing in for /proc/sys/net/ipv4/neigh/default
(a unit test must not change this machine's neighbour table, and needs no root); the lab root is a
temporary folder of state.json files. tests/e2e/test_lab_scale_e2e.py does both for real.
"""

from __future__ import annotations

import json

import pytest

from rstfleet_lab import scale

DEFAULTS = {"gc_thresh2": 512, "gc_thresh3": 1024}      # the kernel's


@pytest.fixture
def machine(tmp_path):
    """(lab root, sysctl path pattern) with the kernel's defaults."""
    sysctl = tmp_path / "neigh"
    sysctl.mkdir()
    for name, value in DEFAULTS.items():
        (sysctl / name).write_text(f"{value}\n")
    root = tmp_path / "labs"
    root.mkdir()
    return root, str(sysctl / "gc_thresh{}")


def add_lab(root, name: str, hosts: int) -> None:
    (root / name).mkdir()
    (root / name / "state.json").write_text(json.dumps({"name": name, "hosts": [{}] * hosts}))


def state(root, name: str) -> dict:
    return json.loads((root / name / "state.json").read_text())


def drop_lab(root, name: str, path: str) -> str:
    done = scale.give_back_room(root, name, path)
    (root / name / "state.json").unlink()
    return done


def restored(path: str) -> bool:
    return scale.read_thresholds(path) == DEFAULTS


def test_two_entries_per_lab_host_the_measured_wall_does_not_fit_the_defaults():
    assert scale.fits(DEFAULTS, 100)
    assert not scale.fits(DEFAULTS, 510)           # measured: up(600) stopped at h513
    assert scale.fits(scale.raised_thresholds(DEFAULTS, 1021), 1021)


def test_a_small_lab_changes_nothing(machine):
    root, path = machine
    add_lab(root, "small", 3)
    assert scale.make_room(root, "small", path) is None
    assert scale.read_thresholds(path) == DEFAULTS
    assert scale.RECORD_KEY not in state(root, "small")
    assert scale.give_back_room(root, "small", path) == "nothing recorded"


def test_a_big_lab_records_the_original_values_before_raising_and_restores_them(machine):
    root, path = machine
    add_lab(root, "big", 1000)
    record = scale.make_room(root, "big", path)
    assert record == {"original": DEFAULTS,
                      "set": {"gc_thresh2": 4128, "gc_thresh3": 8256}}
    assert state(root, "big")[scale.RECORD_KEY] == record
    assert scale.read_thresholds(path) == record["set"]
    assert drop_lab(root, "big", path) == "restored" and restored(path)


def test_the_last_of_two_big_labs_to_go_restores_the_true_original(machine):
    root, path = machine
    add_lab(root, "a", 300)
    scale.make_room(root, "a", path)
    add_lab(root, "b", 600)
    record_b = scale.make_room(root, "b", path)
    assert record_b["original"] == DEFAULTS     # not a's raised values
    assert scale.fits(scale.read_thresholds(path), 900)
    assert drop_lab(root, "a", path) == "another lab holds a record and restores later"
    assert scale.read_thresholds(path) == record_b["set"]
    assert drop_lab(root, "b", path) == "restored" and restored(path)


def test_a_lab_that_still_needs_the_room_inherits_the_record(machine):
    """c came up after a had raised the limits, so c recorded nothing, yet it needs the room."""
    root, path = machine
    add_lab(root, "a", 600)
    raised = scale.make_room(root, "a", path)["set"]
    add_lab(root, "c", 300)
    assert scale.make_room(root, "c", path) is None
    assert drop_lab(root, "a", path) == "handed to lab c"
    assert scale.read_thresholds(path) == raised
    assert drop_lab(root, "c", path) == "restored" and restored(path)


def test_values_changed_by_someone_else_since_are_left_alone(machine):
    root, path = machine
    add_lab(root, "big", 1000)
    scale.make_room(root, "big", path)
    scale.write_thresholds({"gc_thresh2": 9000, "gc_thresh3": 18000}, path)
    assert drop_lab(root, "big", path) == "changed by someone else: left"
    assert scale.read_thresholds(path) == {"gc_thresh2": 9000, "gc_thresh3": 18000}


def test_bridges_keep_under_their_port_limit_and_are_chained_to_the_gateways_bridge():
    assert scale.bridge_names(7, 998) == ["rfb7"]
    assert scale.bridge_names(7, 1021) == ["rfb7", "rfb7x1"]
    assert [scale.bridge_of(7, i) for i in (1, 998, 999, 1021)] == ["rfb7", "rfb7", "rfb7x1", "rfb7x1"]
    ports = {}
    for i in range(1, 1022):
        ports[scale.bridge_of(7, i)] = ports.get(scale.bridge_of(7, i), 0) + 1
    for line in scale.extra_bridge_lines(7, 1021):
        if " master " in line:
            bridge = line.split(" master ")[1].split()[0]
            ports[bridge] += 1
    assert max(ports.values()) <= scale.BRIDGE_PORTS
    lines = scale.extra_bridge_lines(7, 1021, ports=400)       # three bridges: a chain
    assert "link set rf7t1a master rfb7 up" in lines and "link set rf7t2a master rfb7x1 up" in lines
    assert scale.extra_bridge_removal(7, 1021, ports=400) == [
        "link del rf7t1a", "link del rf7t2a", "link del rfb7x1", "link del rfb7x2"]
    assert all(len(name) <= 15 for name in scale.bridge_names(127, 1021, ports=400))
