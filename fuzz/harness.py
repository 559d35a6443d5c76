"""Fuzz targets for rstfleet's parsers of untrusted input, and the bookkeeping around them.

Each target takes one input (bytes) and returns the outcome of that case:

    "accepted"   the input was read; the target's invariants held
    "rejected"   the documented error type was raised (PcapError, ProbeOutputError, ...)

Anything else a target raises is a *finding*: the runner saves the input under fuzz/crashes/.
A finding is an ordinary exception escaping the documented API, an invariant that does not hold
(:class:`Finding`), the pcap reader's "internal bounds error" (its defence in depth, which the
tests say is unreachable), a case slower than the time bound, a case whose Python allocations
peak over the memory bound, or the probe pipeline opening a file the harness did not write
(see :func:`_guarded_open`).

Targets:
    pcap       rstfleet.evidence.pcap.read_resets + rstfleet.evidence.capture_summary.summarize
    probe      rstfleet.results.parse_probe_output, then, for every document that validates,
               rstfleet.evidence.captures.store_captures / rstfleet.evidence.host_evidence via
               rstfleet.analysis.assess and exit_code -- the controller's own order of calls
    inventory  rstfleet.inventory.load_inventory on a temporary file (.yml, .ini or no suffix)
    playbook   rstfleet.playbook.load_playbook on a temporary file
"""
from __future__ import annotations

import ipaddress
import os
import shutil
import tempfile
import traceback
import zlib
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent          # the repository
FUZZ = ROOT / "fuzz"
TARGETS = ("pcap", "probe", "inventory", "playbook")


class Finding(AssertionError):
    """An invariant of a target did not hold for an input that was otherwise accepted."""


# --- seeds --------------------------------------------------------------------------------------

def _files(*dirs: Path) -> list[Path]:
    out = []
    for d in dirs:
        if d.is_dir():
            out += sorted(p for p in d.iterdir() if p.is_file())
    return out


def seed_files(target: str) -> list[Path]:
    """The real inputs each target starts from (the test fixtures, real probe documents)."""
    if target == "pcap":
        return _files(ROOT / "tests/fixtures/pcap", FUZZ / "seeds/pcap")
    if target == "probe":
        return _files(FUZZ / "seeds/probe")
    if target == "inventory":
        return _files(ROOT / "tests/fixtures/inventory", ROOT / "inventories")
    if target == "playbook":
        return _files(ROOT / "tests/fixtures/playbooks", ROOT / "playbooks")
    raise ValueError(f"unknown target {target!r}")


def seeds(target: str) -> list[bytes]:
    out = []
    for path in seed_files(target):
        data = path.read_bytes()
        if target == "inventory":       # keep the format hint the loader takes from the suffix
            data = _SUFFIX_TAG.get(path.suffix.lower(), b"") + data
        out.append(data)
    return out


# --- pcap ---------------------------------------------------------------------------------------

_MAX_PACKETS = (100_000, 0, 1, 2, 5, 100_000, 100_000)


def pcap_case(data: bytes, max_packets: int | None = None) -> str:
    from rstfleet.evidence.capture_summary import summarize
    from rstfleet.evidence.pcap import PcapError, ResetList, read_resets

    if max_packets is None:                             # deterministic per input
        max_packets = _MAX_PACKETS[len(data) % len(_MAX_PACKETS)]
    try:
        packets = read_resets(data, max_packets)
    except PcapError as exc:
        if str(exc).startswith("internal bounds error"):
            raise Finding(f"defence in depth reached (documented unreachable): {exc}") from exc
        return "rejected"
    if not isinstance(packets, ResetList):
        raise Finding(f"read_resets returned {type(packets).__name__}, not ResetList")
    if len(packets) > max_packets:
        raise Finding(f"{len(packets)} packets returned with max_packets={max_packets}")
    if packets.truncated and len(packets) != max_packets:
        raise Finding("truncated set although max_packets was not reached")
    if packets.records < len(packets) + packets.skipped + sum(packets.undecodable.values()):
        raise Finding(f"reading counts disagree: {packets.records} records, {len(packets)} resets, "
                      f"{packets.skipped} skipped, {packets.undecodable} undecodable")
    for p in packets:
        if not (0 <= p.sport <= 0xFFFF and 0 <= p.dport <= 0xFFFF and 0 <= p.flags <= 0xFF):
            raise Finding(f"port/flags out of range: {p}")
        if not p.flags & 0x04:
            raise Finding(f"non-RST packet returned: {p}")
        if p.direction not in (None, "in", "out"):
            raise Finding(f"bad direction: {p}")
        if not isinstance(p.ts, float):
            raise Finding(f"timestamp is not a float: {p}")
        ipaddress.ip_address(p.src), ipaddress.ip_address(p.dst)
    # summarize as evidence.host_evidence calls it: with and without the host's own addresses
    for local in (set(), {packets[0].src} if packets else {"127.0.0.1"}):
        summary = summarize(packets, local)
        if summary.packets != len(packets) or summary.sent + summary.received != summary.packets:
            raise Finding(f"summary counts disagree: {summary}")
        if summary.truncated != packets.truncated:
            raise Finding("summary.truncated differs from the list's")
        if sum(n for _, n in summary.top_local_ports) > summary.sent:
            raise Finding("top_local_ports counts more resets than were sent")
    return "accepted"


# --- probe output -> evidence -> assessment ----------------------------------------------------

class _ProbeSandbox:
    """A run folder for store_captures, and a guard on the files the evidence code opens.

    ``rstfleet.evidence.captures.read_stored_pcap`` opens ``capture["path"]``.  The controller writes that
    key itself (store_captures), but a document from a host may carry its own: the harness then
    must not read /dev/zero or a file descriptor number of its own process.  ``open`` in the
    evidence module is replaced by a guard that lets through only files under the run folder
    and records every other path or file descriptor number as a finding (raised after the case,
    so the case still runs to the end with the open failing as a missing file would; a path
    with a NUL byte raises ValueError, as open() does).
    """

    def __init__(self):
        self.base = Path(tempfile.mkdtemp(prefix="rstfleet-fuzz-"))
        self.args = SimpleNamespace(run_dir=str(self.base))
        self.foreign_opens: list = []
        import builtins

        import rstfleet.evidence.captures as evidence
        real_open = builtins.open
        base = str(self.base) + os.sep

        def _guarded_open(file, *args, **kwargs):
            if not isinstance(file, (str, int)):        # None, float, list...: open() raises
                return real_open(file, *args, **kwargs)  # TypeError itself, touching nothing
            if isinstance(file, str) and "\0" not in file and \
                    os.path.realpath(file).startswith(base):
                return real_open(file, *args, **kwargs)
            self.foreign_opens.append(file)             # a path or a file descriptor number
            if isinstance(file, str) and "\0" in file:
                raise ValueError("embedded null byte")  # what open() itself raises
            raise FileNotFoundError(2, "blocked by the fuzz harness", str(file))

        evidence.open = _guarded_open   # module global shadows the builtin for evidence only

    def close(self):
        shutil.rmtree(self.base, ignore_errors=True)


_sandbox: _ProbeSandbox | None = None


def probe_case(data: bytes, store: bool | None = None) -> str:
    global _sandbox
    from rstfleet.analysis import assess, exit_code
    from rstfleet.evidence.captures import store_captures
    from rstfleet.results import Status, HostResult, ProbeOutputError, parse_probe_output

    if _sandbox is None:
        _sandbox = _ProbeSandbox()
    try:
        document = parse_probe_output(data)
    except ProbeOutputError:
        return "rejected"
    if not isinstance(document, dict):
        raise Finding(f"parse_probe_output returned {type(document).__name__}")
    result = HostResult("fuzz-host", "192.0.2.1", Status.OK, probe=document)
    _sandbox.foreign_opens.clear()
    # Both orders the controller uses: sweep stores captures first, triage's phase 1 assesses
    # the raw document (pcap_b64 still inside, any host-written capture.path untouched).
    if store if store is not None else zlib.crc32(data) & 1:
        store_captures([result], _sandbox.args.run_dir, "run")
    assessments = assess([result])
    exit_code(assessments, "warn")
    if _sandbox.foreign_opens:
        raise Finding("host document made the controller open a file it did not write: "
                      f"{_sandbox.foreign_opens[0]!r:.80}")
    return "accepted"


# --- inventory / playbook (temporary files) ---------------------------------------------------

# The inventory loader picks YAML or INI by suffix, else by sniffing: the first byte of a fuzz
# input picks the suffix when it is one of these tags, so the seeds keep their format.
_SUFFIX_TAG = {".yml": b"Y", ".yaml": b"Y", ".json": b"J", ".ini": b"I"}
_TAG_SUFFIX = {ord("Y"): ".yml", ord("J"): ".json", ord("I"): ".ini"}
_tmpdir: Path | None = None


def _tmp() -> Path:
    global _tmpdir
    if _tmpdir is None:
        _tmpdir = Path(tempfile.mkdtemp(prefix="rstfleet-fuzz-files-"))
    return _tmpdir


def inventory_case(data: bytes) -> str:
    from rstfleet.inventory import InventoryError, load_inventory

    suffix = _TAG_SUFFIX.get(data[0], "") if data else ""
    path = _tmp() / f"inventory{suffix}"
    path.write_bytes(data[1:] if suffix else data)
    try:
        inventory = load_inventory(str(path))
    except InventoryError:
        return "rejected"
    for pattern in (None, "all", "web*:!db", "~^c"):
        inventory.select(pattern)
    return "accepted"


def playbook_case(data: bytes) -> str:
    from rstfleet.playbook import PlaybookError, load_playbook

    path = _tmp() / "playbook.yml"
    path.write_bytes(data)
    try:
        load_playbook(str(path))
    except PlaybookError:
        return "rejected"
    return "accepted"


CASES = {"pcap": pcap_case, "probe": probe_case, "inventory": inventory_case,
         "playbook": playbook_case}


def cleanup() -> None:
    if _sandbox is not None:
        _sandbox.close()
    if _tmpdir is not None:
        shutil.rmtree(_tmpdir, ignore_errors=True)


# --- findings ----------------------------------------------------------------------------------

def signature(exc: BaseException) -> str:
    """Type and innermost rstfleet frame: the same bug reached twice has the same signature."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/rstfleet/" in f.filename] or frames[-1:]
    where = ours[-1] if ours else None
    place = (f"{Path(where.filename).name}:{where.lineno}:{where.name}" if where else "?")
    if isinstance(exc, Finding):      # invariants: the message says which one
        return f"Finding@{place}:{str(exc).split(':')[0][:60]}"
    return f"{type(exc).__name__}@{place}"
