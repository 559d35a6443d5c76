"""The lab past its old ceiling, for real: hosts split over chained bridges still all serve ssh,
and the neighbour-table thresholds a lab raises are the machine's own again after `down` — also
when `up` fails half-way. (The 1,000-host lab itself is measured by bench/window_bench.py.)

The limits are made small here (bridge ports, the machine's own neighbour entries) so that a lab
of a few hosts takes the same code paths a lab of a thousand would; the sysctls written are real.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rstfleet_lab import fleet as labmod
from rstfleet_lab import lab_context, scale

from helpers import require_root_lab

pytestmark = pytest.mark.lab


def name(suffix: str) -> str:
    return suffix + str(os.getpid() % 10000)


def links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def test_hosts_split_over_chained_bridges_all_serve_ssh_and_down_removes_every_bridge(monkeypatch):
    require_root_lab()
    monkeypatch.setattr(scale, "BRIDGE_PORTS", 4)          # two hosts a bridge: three bridges for six
    with lab_context(6, name("b")) as lab:
        bridges = scale.bridge_names(lab.index, 6)
        assert bridges == [f"rfb{lab.index}", f"rfb{lab.index}x1", f"rfb{lab.index}x2"]
        for bridge in bridges:
            ports = os.listdir(f"/sys/class/net/{bridge}/brif")
            assert 1 <= len(ports) <= 4, (bridge, ports)
        assert f"rf{lab.index}v6" in os.listdir(f"/sys/class/net/{bridges[2]}/brif")
        # up() already read every host's banner from the root namespace, through the trunks;
        # and hosts on the first and last bridge reach each other.
        banner = lab.run_in(lab.hosts[0], ["python3", "-c", "import socket, sys; s = socket.create_connection("
                            "(sys.argv[1], 22), 2); print(s.recv(64).decode().split('-')[0]); s.close()",
                            lab.hosts[-1].address])
        assert banner.stdout.strip() == "SSH", banner.stdout + banner.stderr
        index = lab.index
    left = links() & ({f"rfb{index}x1", f"rfb{index}x2", f"rf{index}t1a", f"rf{index}t2b", f"rfb{index}"})
    assert left == set()


def test_a_lab_needing_more_neighbour_room_raises_the_thresholds_and_down_restores_them(monkeypatch):
    require_root_lab()
    before = scale.read_thresholds()
    monkeypatch.setattr(scale, "OTHER_ENTRIES", before["gc_thresh2"] + 100)   # as if the table were full
    with lab_context(3, name("n")) as lab:
        record = json.loads((lab.state_dir / "state.json").read_text())[scale.RECORD_KEY]
        assert record["original"] == before
        assert scale.read_thresholds() == record["set"]
        assert record["set"]["gc_thresh2"] > before["gc_thresh2"]
        assert Path("/proc/sys/net/ipv4/neigh/default/gc_thresh3").read_text().strip() == \
            str(record["set"]["gc_thresh3"])
    assert scale.read_thresholds() == before


def test_a_failed_up_still_restores_the_thresholds(monkeypatch):
    require_root_lab()
    before = scale.read_thresholds()
    monkeypatch.setattr(scale, "OTHER_ENTRIES", before["gc_thresh2"] + 100)

    def broken(lab):
        assert scale.read_thresholds() != before        # raised before the network is built
        raise labmod.LabError("network could not be built (injected)")
    monkeypatch.setattr(labmod, "_build_network", broken)
    with pytest.raises(labmod.LabError, match="injected"):
        labmod.up(2, name("f"))
    assert scale.read_thresholds() == before
    assert not (labmod.LAB_ROOT / name("f")).exists()
