"""Defensive reader for the TCP-reset captures that fleet hosts send back.

Hosts run ``tcpdump -i any 'tcp[tcpflags] & (tcp-rst) == (tcp-rst)' -w -`` and
a host may be hostile, so the bytes are untrusted: stdlib only, O(len(data))
memory, every record/block consumes >= 12 bytes (no endless loops), and
:class:`PcapError` -- nothing else -- for input that cannot be read.

Formats: classic pcap (us and ns magic, both byte orders); pcapng (Section
Header, Interface Description, Enhanced, Simple and obsolete Packet blocks,
both byte orders, per-interface link type, unknown blocks skipped).
Link types and headers: frames.py.  Non-TCP and non-RST packets are skipped.

Snaplen as libpcap 1.10 reads it (sf-pcap.c, savefile.c): a file snaplen of 0
or above the 256 KiB maximum (macOS writes 524,288) means the maximum; a pcap
record longer than the file's snaplen but within the maximum is cut to the
snaplen (counted in ``cut``).  A record whose caplen is beyond the maximum
stops libpcap ("invalid packet capture length"); here, when its bytes are
present, it is skipped and counted (``skipped``) and reading goes on.  In
pcapng a packet longer than its interface's snaplen is read whole (libpcap
refuses the file; Wireshark reads it).

Never "no resets" for a file it could not read: records that cannot be decoded
far enough to tell whether they are TCP resets (a link type this reader does
not decode, a frame cut before the TCP flags) are counted in ``undecodable``;
when no record at all could be decoded, :class:`PcapError` says why.

Truncation policy: tcpdump killed by a timeout may leave a half-written last
record.  A *cleanly truncated final record* -- a header plausible in every
field whose bytes run past the end of the data, or a partial record header --
ends reading; the packets before it are returned with ``partial_tail`` set.
Anything implausible raises :class:`PcapError`: bad magic, file header under
24 bytes, caplen beyond the maximum with its bytes missing, pcapng block
lengths too small, unaligned, disagreeing with their trailer or running past
the data by more than a packet block could, caplen larger than its block,
unknown interface id.
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from .frames import CUT, SUPPORTED_LINKTYPES, decode_reset

__all__ = ["PcapError", "ResetPacket", "ResetList", "read_resets", "MAX_CAPLEN"]

MAX_CAPLEN = 256 * 1024          # libpcap's MAXIMUM_SNAPLEN; nothing larger is plausible
_MAX_TAIL_BLOCK = MAX_CAPLEN + 65536  # a final block running past EOF longer than this is a lie
_PCAP_MAGIC = {  # magic bytes as stored -> (struct byte order, fraction divisor)
    b"\xd4\xc3\xb2\xa1": ("<", 1_000_000), b"\xa1\xb2\xc3\xd4": (">", 1_000_000),
    b"\x4d\x3c\xb2\xa1": ("<", 1_000_000_000), b"\xa1\xb2\x3c\x4d": (">", 1_000_000_000),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
_PCAPNG_ORDER = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}


def _snaplen(snaplen: int) -> int:
    """libpcap's pcap_adjust_snapshot, clamped: 0 or beyond the maximum means the maximum."""
    return snaplen if 0 < snaplen <= MAX_CAPLEN else MAX_CAPLEN


class PcapError(ValueError):
    """Why a capture could not be read; the only exception the reader raises for bad input."""


@dataclass(frozen=True)
class ResetPacket:
    ts: float                       # seconds since epoch
    src: str                        # textual IPv4/IPv6 address (ipaddress module)
    sport: int
    dst: str
    dport: int
    flags: int                      # TCP flags byte
    direction: str | None = None    # "in" (to us), "out" (sent by us), None (unknown)
    seq: int = 0                    # TCP sequence number (0 on an RST+ACK answering a SYN)


class ResetList(list):
    """The list returned by :func:`read_resets`, plus how reading went.

    ``truncated``: max_packets was hit and at least one more reset followed.
    ``partial_tail``: the data ended inside a record (see module docstring).
    ``records``: packet records met, resets or not; ``skipped``: of them, beyond the maximum
    caplen; ``cut``: cut to the file's snaplen; ``undecodable``: {why: count}.
    ``first_ts``/``last_ts``: the first and last timestamped record (the capture's span).
    """
    truncated = False
    partial_tail = False
    records = skipped = cut = 0
    first_ts: float | None = None
    last_ts: float | None = None

    def __init__(self, *packets):
        super().__init__(*packets)
        self.undecodable: dict = {}

    def notes(self) -> list[str]:
        """What reading left out, in words; empty when every record was read and decoded."""
        notes = [f"{n} record(s) not decoded: {why}" for why, n in sorted(self.undecodable.items())]
        if self.skipped:
            notes.append(f"{self.skipped} record(s) longer than the {MAX_CAPLEN}-byte maximum skipped "
                         f"(libpcap stops reading at the first)")
        if self.cut:
            notes.append(f"{self.cut} record(s) longer than the file's snaplen cut to it, as libpcap does")
        if self.partial_tail:
            notes.append("the last record is cut short (the capture was stopped mid-write)")
        if self.truncated:
            notes.append(f"only the first {len(self)} resets were read")
        return notes


class _Collector:
    def __init__(self, limit: int):
        self.out = ResetList()
        self.limit = limit
        self._names: dict = {}

    def _name(self, raw: bytes) -> str:
        name = self._names.get(raw)
        if name is None:
            name = self._names[raw] = str(ipaddress.ip_address(raw))
        return name

    def undecodable(self, why: str) -> None:
        self.out.undecodable[why] = self.out.undecodable.get(why, 0) + 1

    def add(self, linktype, buf, off, end, ts, direction=None) -> bool:
        """Decode one captured frame; return False once max_packets is exceeded."""
        out = self.out
        out.records += 1
        if ts is not None:
            out.first_ts = ts if out.first_ts is None else min(out.first_ts, ts)
            out.last_ts = ts if out.last_ts is None else max(out.last_ts, ts)
        if linktype not in SUPPORTED_LINKTYPES:
            self.undecodable(f"link type {linktype}")
            return True
        decoded = decode_reset(linktype, buf, off, end)
        if decoded is CUT:
            self.undecodable("cut (or broken) before the TCP flags")
            return True
        if decoded is None:
            return True
        if len(out) >= self.limit:
            out.truncated = True
            return False
        (src, sport, dst, dport, flags, seq), link_direction = decoded
        out.append(ResetPacket(ts or 0.0, self._name(src), sport, self._name(dst), dport, flags,
                               link_direction or direction, seq))
        return True

    def skip(self) -> None:
        self.out.records += 1
        self.out.skipped += 1

    def check_decoded(self) -> None:
        """Never 'no resets' for a file none of whose records could be decoded."""
        out = self.out
        if out.records and out.records == out.skipped + sum(out.undecodable.values()):
            why = [f"{n} {reason}" for reason, n in sorted(out.undecodable.items())]
            why += [f"{out.skipped} beyond the {MAX_CAPLEN}-byte maximum"] if out.skipped else []
            raise PcapError(f"none of the {out.records} packet record(s) could be decoded "
                            f"({', '.join(why)}); link types read: "
                            f"{', '.join(map(str, sorted(SUPPORTED_LINKTYPES)))}")


def _read_pcap(buf: bytes, order: str, divisor: int, col: _Collector) -> None:
    if len(buf) < 24:
        raise PcapError(f"truncated pcap file header ({len(buf)} of 24 bytes)")
    major, _minor, _zone, _sigfigs, snaplen, network = struct.unpack_from(order + "HHiIII", buf, 4)
    linktype = network & 0xFFFF                        # upper bits carry FCS information
    if major != 2:
        raise PcapError(f"unsupported pcap version {major}.{_minor}")
    snaplen = _snaplen(snaplen)
    if linktype not in SUPPORTED_LINKTYPES:
        raise PcapError(f"link type {linktype} is not one this reader decodes (it reads "
                        f"{', '.join(map(str, sorted(SUPPORTED_LINKTYPES)))})")
    record = struct.Struct(order + "IIII")
    pos, n = 24, len(buf)
    while pos < n:
        if n - pos < 16:
            col.out.partial_tail = True
            return
        sec, frac, caplen, _origlen = record.unpack_from(buf, pos)
        pos += 16
        if caplen > MAX_CAPLEN:
            if n - pos < caplen:
                raise PcapError(f"record at offset {pos - 16}: caplen {caplen} is beyond the "
                                f"{MAX_CAPLEN}-byte maximum and runs past the data")
            col.skip()
        elif n - pos < caplen:
            col.out.partial_tail = True
            return
        else:
            col.out.cut += caplen > snaplen
            if not col.add(linktype, buf, pos, pos + min(caplen, snaplen), sec + frac / divisor):
                return
        pos += caplen


def _options(buf: bytes, pos: int, end: int, order: str):
    """Yield (code, value offset, value length) of a pcapng option list."""
    while end - pos >= 4:
        code, length = struct.unpack_from(order + "HH", buf, pos)
        if code == 0:
            return
        if length > end - pos - 4:
            raise PcapError(f"pcapng option at offset {pos} overruns its block")
        yield code, pos + 4, length
        pos += 4 + ((length + 3) & ~3)


def _read_pcapng(buf: bytes, col: _Collector) -> None:
    pos, n = 0, len(buf)
    order = "<"
    interfaces: list = []          # (linktype, snaplen, ts divisor, ts offset seconds)
    while pos < n:
        if n - pos < 12:
            if pos == 0:
                raise PcapError(f"truncated pcapng section header ({n} bytes)")
            col.out.partial_tail = True
            return
        if buf[pos:pos + 4] == _PCAPNG_SHB:
            order = _PCAPNG_ORDER.get(buf[pos + 8:pos + 12], "")
            if not order:
                raise PcapError(f"bad pcapng byte-order magic at offset {pos}")
            interfaces = []
        elif pos == 0:
            raise PcapError("pcapng data does not start with a section header")
        btype, blen = struct.unpack_from(order + "II", buf, pos)
        if blen < 12 or blen % 4:
            raise PcapError(f"pcapng block at offset {pos}: bad length {blen}")
        if pos == 0 and blen > n:
            raise PcapError(f"truncated pcapng section header ({n} of {blen} bytes)")
        if blen > n - pos:
            if blen > _MAX_TAIL_BLOCK:
                raise PcapError(f"pcapng block at offset {pos}: length {blen} runs past the data")
            col.out.partial_tail = True
            return
        body, bend = pos + 8, pos + blen - 4
        if struct.unpack_from(order + "I", buf, bend)[0] != blen:
            raise PcapError(f"pcapng block at offset {pos}: trailing length disagrees")
        size = bend - body
        if btype == 0x0A0D0D0A:
            if size < 16:
                raise PcapError(f"pcapng section header at offset {pos} too short")
            major = struct.unpack_from(order + "H", buf, body + 4)[0]
            if major != 1:
                raise PcapError(f"unsupported pcapng version {major}")
        elif btype == 1:                                # Interface Description Block
            if size < 8:
                raise PcapError(f"pcapng interface block at offset {pos} too short")
            linktype, _, snaplen = struct.unpack_from(order + "HHI", buf, body)
            divisor, offset = 1_000_000, 0
            for code, at, length in _options(buf, body + 8, bend, order):
                if code == 9 and length >= 1:           # if_tsresol
                    divisor = 2 ** (buf[at] & 0x7F) if buf[at] & 0x80 else 10 ** buf[at]
                elif code == 14 and length >= 8:        # if_tsoffset
                    offset = struct.unpack_from(order + "q", buf, at)[0]
            interfaces.append((linktype, _snaplen(snaplen), divisor, offset))
        elif btype in (2, 3, 6):                        # obsolete / Simple / Enhanced Packet Block
            if size < (4 if btype == 3 else 20):
                raise PcapError(f"pcapng packet block at offset {pos} too short")
            data = body + 20
            if btype == 6:
                ifid, hi, lo, caplen, _orig = struct.unpack_from(order + "IIIII", buf, body)
            elif btype == 2:                            # PB: 16-bit interface id, drop count
                ifid, _drops, hi, lo, caplen, _orig = struct.unpack_from(order + "HHIIII", buf, body)
            else:                                       # SPB: interface 0, no timestamp
                ifid, hi, lo, data = 0, 0, 0, body + 4
                caplen = min(struct.unpack_from(order + "I", buf, body)[0], bend - data)
            if caplen > bend - data:
                raise PcapError(f"pcapng packet block at offset {pos}: caplen {caplen} overruns block")
            if ifid >= len(interfaces):
                raise PcapError(f"pcapng packet block at offset {pos}: unknown interface {ifid}")
            linktype, snaplen, divisor, offset = interfaces[ifid]
            if btype == 3:
                caplen = min(caplen, snaplen)
            direction = None
            if btype != 3:
                for code, at, length in _options(buf, data + ((caplen + 3) & ~3), bend, order):
                    if code == 2 and length >= 4:       # epb_flags / pack_flags: bits 0-1 = direction
                        bits = struct.unpack_from(order + "I", buf, at)[0] & 3
                        direction = {1: "in", 2: "out"}.get(bits)
            if caplen > MAX_CAPLEN:
                col.skip()
            else:
                ts = ((hi << 32) | lo) / divisor + offset if btype != 3 else None
                if not col.add(linktype, buf, data, data + caplen, ts, direction):
                    return
        pos += blen


def read_resets(data: bytes, max_packets: int = 100_000) -> ResetList:
    """Parse a pcap or pcapng capture and return its TCP resets, in capture order.

    Returns a :class:`ResetList` (a ``list`` of :class:`ResetPacket`) holding at
    most ``max_packets`` resets; ``.truncated`` says the limit cut the capture
    short, ``.partial_tail`` that the final record was cleanly truncated (the
    packets before it are returned).  Raises :class:`PcapError` for anything
    else that is not a readable capture -- see the module docstring.
    """
    if max_packets < 0:
        raise ValueError("max_packets must be >= 0")
    buf = data if isinstance(data, bytes) else bytes(memoryview(data))  # no bytes(int) surprises
    if len(buf) < 4:
        raise PcapError(f"not a capture: only {len(buf)} bytes")
    col = _Collector(max_packets)
    try:
        magic = buf[:4]
        if magic in _PCAP_MAGIC:
            _read_pcap(buf, *_PCAP_MAGIC[magic], col)
        elif magic == _PCAPNG_SHB:
            _read_pcapng(buf, col)
        else:
            raise PcapError(f"not a pcap/pcapng capture (magic {magic.hex()})")
        col.check_decoded()
    except (struct.error, IndexError, ValueError, OverflowError) as exc:
        if isinstance(exc, PcapError):
            raise
        raise PcapError(f"internal bounds error: {exc}") from exc   # defence in depth; tests assert unreachable
    return col.out

