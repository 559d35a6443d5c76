"""What a big lab needs from the machine: room in the neighbour table, bridges under their port limit.

**The neighbour table.** Measured: with the kernel's defaults (``net.ipv4.neigh.default.gc_thresh2``
512, ``gc_thresh3`` 1024) ``up(600)`` stopped at h513 (198.18.2.2, "does not serve ssh") with
``neighbour: arp_cache: neighbor table overflow!`` in dmesg. The ARP table and its thresholds are
one for the whole machine, namespaces included, and every lab host costs two entries: the root
namespace's entry for the host and the host's entry for its gateway (512 hosts x 2 = 1024, the
hard limit). So ``up`` raises the thresholds when the labs on this machine need more room, records
the values it found in the lab's ``state.json`` (before any host is built), and ``down`` puts them
back — also after a failed ``up``, and only when no remaining lab still needs the room (then the
record moves to the largest remaining lab, which restores it when it goes).

**Bridges.** A Linux bridge takes at most 1,024 ports (BR_MAX_PORTS). A lab keeps to
``BRIDGE_PORTS`` per bridge: hosts past that go on further bridges, chained to the first one (which
holds the gateway address) by veth "trunks" — each bridge keeps two ports for them — so the lab
stays one /22 segment in 198.18.0.0/15 with unchanged addresses.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
from pathlib import Path
from typing import Iterator

log = logging.getLogger("rstfleet_lab")

NEIGH = "/proc/sys/net/ipv4/neigh/default/gc_thresh{}"
RECORD_KEY = "neighbour_limits"      # in state.json: {"original": {...}, "set": {...}}
ENTRIES_PER_HOST = 2                 # root's entry for the host + the host's entry for its gateway
OTHER_ENTRIES = 64                   # the machine's own neighbours
BRIDGE_PORTS = 1000                  # under the kernel's 1,024 (BR_MAX_PORTS), two kept for trunks


# --- the neighbour table ----------------------------------------------------------------------

def entries(lab_hosts: int) -> int:
    return ENTRIES_PER_HOST * lab_hosts + OTHER_ENTRIES


def fits(thresholds: dict[str, int], lab_hosts: int) -> bool:
    """The entries stay under the soft limit (no forced garbage collection) and half the hard one.

    >>> fits({"gc_thresh2": 512, "gc_thresh3": 1024}, 224), fits({"gc_thresh2": 512, "gc_thresh3": 1024}, 225)
    (True, False)
    """
    need = entries(lab_hosts)
    return thresholds["gc_thresh2"] >= need and thresholds["gc_thresh3"] >= 2 * need


def raised_thresholds(current: dict[str, int], lab_hosts: int) -> dict[str, int]:
    """Twice the room ``fits`` asks for, so the next lab rarely has to raise them again.

    >>> raised_thresholds({"gc_thresh2": 512, "gc_thresh3": 1024}, 1000)
    {'gc_thresh2': 4128, 'gc_thresh3': 8256}
    """
    need = entries(lab_hosts)
    return {"gc_thresh2": max(current["gc_thresh2"], 2 * need),
            "gc_thresh3": max(current["gc_thresh3"], 4 * need)}


def read_thresholds(path: str = NEIGH) -> dict[str, int]:
    return {f"gc_thresh{i}": int(Path(path.format(i)).read_text()) for i in (2, 3)}


def write_thresholds(values: dict[str, int], path: str = NEIGH) -> None:
    # gc_thresh2 <= gc_thresh3 is not enforced by the kernel, but write the hard limit first
    # when raising and last when lowering, so the pair is never inverted in between.
    current = read_thresholds(path)
    order = ("gc_thresh3", "gc_thresh2") if values["gc_thresh3"] >= current["gc_thresh3"] \
        else ("gc_thresh2", "gc_thresh3")
    for name in order:
        Path(path.format(name[-1])).write_text(f"{values[name]}\n")


@contextlib.contextmanager
def _labs_locked(lab_root: Path) -> Iterator[None]:
    """The lab root's lock: labs of other processes come and go under it too (fleet._allocate)."""
    lab_root.mkdir(parents=True, exist_ok=True)
    with open(lab_root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _states(lab_root: Path) -> dict[str, dict]:
    states = {}
    for path in lab_root.glob("*/state.json"):
        with contextlib.suppress(OSError, ValueError):
            states[path.parent.name] = json.loads(path.read_text())
    return states


def _hosts_of(state: dict) -> int:
    return len(state.get("hosts") or []) + len(state.get("inner") or [])


def _update_state(state_file: Path, record: dict | None) -> None:
    state = json.loads(state_file.read_text())
    if record is None:
        state.pop(RECORD_KEY, None)
    else:
        state[RECORD_KEY] = record
    tmp = state_file.with_name("state.json.tmp")
    tmp.write_text(json.dumps(state, indent=1))
    tmp.replace(state_file)


def make_room(lab_root: Path, name: str, path: str = NEIGH) -> dict | None:
    """Raise the neighbour-table thresholds if this machine's labs (``name``'s state.json already
    written, with its hosts) need more; the record written to its state.json, or None."""
    with _labs_locked(lab_root):
        states = _states(lab_root)
        hosts = sum(_hosts_of(s) for s in states.values())
        current = read_thresholds(path)
        if fits(current, hosts):
            return None
        # The values before any lab raised them: a lab that already holds a record knows them.
        held = [s[RECORD_KEY]["original"] for s in states.values() if RECORD_KEY in s]
        original = held[0] if held else current
        wanted = raised_thresholds(current, hosts)
        record = {"original": original, "set": wanted}
        _update_state(lab_root / name / "state.json", record)   # recorded before it is changed
        write_thresholds(wanted, path)
        log.info("neighbour table: gc_thresh2/3 %s/%s -> %s/%s for %s lab hosts", current["gc_thresh2"],
                 current["gc_thresh3"], wanted["gc_thresh2"], wanted["gc_thresh3"], hosts)
        return record


def give_back_room(lab_root: Path, name: str, path: str = NEIGH) -> str:
    """At ``down``: restore what ``name`` recorded, unless another lab still needs the room (the
    record then moves to it). Returns what was done, for tests and logs."""
    with _labs_locked(lab_root):
        states = _states(lab_root)
        record = (states.pop(name, None) or {}).get(RECORD_KEY)
        if record is None:
            return "nothing recorded"
        if any(RECORD_KEY in s for s in states.values()):
            return "another lab holds a record and restores later"
        original = record["original"]
        if states and not fits(original, sum(_hosts_of(s) for s in states.values())):
            heir = max(states, key=lambda n: _hosts_of(states[n]))
            with contextlib.suppress(OSError, ValueError):
                _update_state(lab_root / heir / "state.json", record)
                return f"handed to lab {heir}"
        current = read_thresholds(path)
        if current != record["set"]:
            log.warning("neighbour table thresholds changed since the lab set them (%s, set %s): "
                        "left as they are", current, record["set"])
            return "changed by someone else: left"
        write_thresholds(original, path)
        return "restored"


# --- bridges ----------------------------------------------------------------------------------

def bridge_names(index: int, hosts: int, ports: int | None = None) -> list[str]:
    """The lab's bridges: ``rfb<k>`` (the gateway's) then ``rfb<k>x1``, ``rfb<k>x2``, ...

    >>> bridge_names(3, 998), bridge_names(3, 999)
    (['rfb3'], ['rfb3', 'rfb3x1'])
    """
    count = max(1, -(-hosts // ((ports or BRIDGE_PORTS) - 2)))
    return [f"rfb{index}"] + [f"rfb{index}x{j}" for j in range(1, count)]


def bridge_of(index: int, host_number: int, ports: int | None = None) -> str:
    """The bridge host number ``host_number`` (1-based) is plugged into."""
    j = (host_number - 1) // ((ports or BRIDGE_PORTS) - 2)
    return f"rfb{index}" if j == 0 else f"rfb{index}x{j}"


def extra_bridge_lines(index: int, hosts: int, ports: int | None = None) -> list[str]:
    """`ip -batch` lines for the bridges past the first, each trunked to the one before it."""
    lines, bridges = [], bridge_names(index, hosts, ports)
    for j in range(1, len(bridges)):
        trunk, far = f"rf{index}t{j}a", f"rf{index}t{j}b"
        lines += [f"link add {bridges[j]} type bridge", f"link set {bridges[j]} up",
                  f"link add {trunk} type veth peer name {far}",
                  f"link set {trunk} addrgenmode none", f"link set {far} addrgenmode none",
                  f"link set {trunk} master {bridges[j - 1]} up", f"link set {far} master {bridges[j]} up"]
    return lines


def extra_bridge_removal(index: int, hosts: int, ports: int | None = None) -> list[str]:
    """`ip -force -batch` lines removing them (a trunk goes with either end)."""
    return ([f"link del rf{index}t{j}a" for j in range(1, len(bridge_names(index, hosts, ports)))]
            + [f"link del {b}" for b in bridge_names(index, hosts, ports)[1:]])
