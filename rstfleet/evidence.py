"""Turn a probe document's evidence (tracepoint flows, capture, owners) into HostEvidence.

Captures are written to the run folder (0700), one file per host (0600: they hold other
people's traffic), under a name made safe from the inventory name, then replaced in the probe
document by their path so saved reports stay small.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import stat
from collections import Counter
from pathlib import Path

from .capture_summary import bare_rst_share, summarize
from .causes import WILDCARD_PEERS, HostEvidence, PortInfo, combine, from_counters
from .pcap import PcapError, read_resets
from .results import HostResult



def safe_file_name(host: str) -> str:
    """A file name no inventory name can turn into a path: '../../etc/x' -> '.._.._etc_x-1a2b3c'."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", host).lstrip(".") or "host"
    if cleaned != host:
        cleaned += "-" + hashlib.sha256(host.encode()).hexdigest()[:6]
    return cleaned[:100]


def make_run_dir(base: str | os.PathLike, stamp: str) -> Path:
    root = Path(base)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    run_dir = root / stamp
    run_dir.mkdir(mode=0o700, exist_ok=True)
    os.chmod(run_dir, 0o700)
    return run_dir


def save_capture(result: HostResult, run_dir: Path | None) -> bytes | None:
    """Decode the host's pcap, store it (0600) and replace it in the document by its path."""
    capture = (result.probe or {}).get("capture") or {}
    encoded = capture.pop("pcap_b64", None)
    if not encoded:
        return None
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        capture["error"] = "capture was not valid base64"
        return None
    if run_dir is not None:
        path = run_dir / (safe_file_name(result.host) + ".pcap")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        capture["path"] = str(path)
    return data


MAX_STORED_PCAP = 64 * 1024 * 1024


def _stored_pcap(capture: dict) -> bytes | None:
    """The capture the controller saved (the path is ours: host-sent paths are dropped on
    validation); a regular file of bounded size, never a device or a file descriptor."""
    path = capture.get("path")
    if not isinstance(path, str) or not path:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except (OSError, ValueError):
        return None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_STORED_PCAP:
            return None
        return handle.read(MAX_STORED_PCAP)


def host_evidence(result: HostResult) -> HostEvidence | None:
    """Everything known about why this host sent its resets, from its (validated) probe document."""
    probe = result.probe
    if not probe:
        return None
    used, notes = ["counters"], []
    out_rsts = probe["tcp"]["delta"].get("OutRsts") or 0
    trace = probe.get("trace") or {}
    capture = probe.get("capture") or {}
    ports: Counter = Counter()
    peers: Counter = Counter()
    scan_suspects: list[dict] = []
    bare_share: dict = {}
    pcap = _stored_pcap(capture) if capture else None
    if trace and not trace.get("available"):
        notes.append(f"no per-reset attribution: {trace.get('reason')}")
    if capture and capture.get("available") is False:
        notes.append(f"no capture: {capture.get('reason')}")
    if pcap is not None:
        try:
            packets = read_resets(pcap)
            local = set(probe.get("facts", {}).get("addresses") or [])
            summary = summarize(packets, local)
            used.append("capture")
            ports.update(dict(summary.top_local_ports))
            peers.update(dict(summary.top_peers))
            scan_suspects = summary.scan_suspects
            bare_share = bare_rst_share(packets, local)
        except PcapError as exc:
            notes.append(f"capture unreadable: {exc}")
    if trace.get("available"):
        used.insert(0, "tracepoint")
        causes = combine(trace, out_rsts, probe.get("tcpext_delta") or {},
                         probe.get("sysctls") or {}, bare_share)
        tier = "tracepoint"
        ports, peers = Counter(), Counter()
        for port, peer, _, count in trace.get("flows", []):
            ports[port] += count
            if peer not in WILDCARD_PEERS:
                peers[peer] += count
    else:
        causes = from_counters(out_rsts, probe.get("tcpext_delta") or {}, probe.get("sysctls") or {})
        tier = "counters" if out_rsts else "none"
    owners = (probe.get("owners") or {}).get("ports") or {}
    if owners:
        used.append((probe.get("owners") or {}).get("method", "owners"))
    top_ports = []
    for port, count in ports.most_common(10):
        info = owners.get(str(port)) or {}
        top_ports.append(PortInfo(port, count, info.get("listening"), info.get("owners", [])))
    return HostEvidence(tier, used, causes, top_ports, peers.most_common(10), scan_suspects,
                        capture.get("path"), notes)
