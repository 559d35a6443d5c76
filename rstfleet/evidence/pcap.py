"""Defensive reader for the TCP-reset captures that fleet hosts send back.

Hosts run ``tcpdump -i any 'tcp[tcpflags] & (tcp-rst) == (tcp-rst)' -w -`` and
a host may be hostile, so the bytes are untrusted: stdlib only, O(len(data))
memory, every record/block consumes >= 12 bytes (no endless loops), and
:class:`PcapError` -- nothing else -- for input that cannot be read.

Formats: classic pcap (us and ns magic, both byte orders); pcapng (Section
Header, Interface Description, Enhanced and Simple Packet blocks, both byte
orders, per-interface link type, unknown blocks and link types skipped).
Link types: EN10MB (1, 802.1Q/802.1ad tags), LINUX_SLL (113), LINUX_SLL2 (276),
RAW (101, 12, 14), IPV4 (228), IPV6 (229), NULL (0), LOOP (108).  IPv4 honours
IHL and total length and skips non-first fragments; IPv6 walks at most 8
extension headers.  Non-TCP and non-RST packets are skipped silently.

Truncation policy: tcpdump killed by a timeout may leave a half-written last
record.  A *cleanly truncated final record* -- a header plausible in every
field whose bytes run past the end of the data, or a partial record header --
ends reading; the packets before it are returned with ``partial_tail`` set.
Anything implausible raises :class:`PcapError`: bad magic, file header under
24 bytes, snaplen 0 or > 256 KiB, caplen > snaplen or > 256 KiB, pcapng block
lengths too small, unaligned, disagreeing with their trailer or running past
the data by more than a packet block could, caplen larger than its block,
unknown interface id.
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

__all__ = ["PcapError", "ResetPacket", "ResetList", "read_resets", "MAX_CAPLEN"]

MAX_CAPLEN = 256 * 1024          # libpcap's MAXIMUM_SNAPLEN; nothing larger is plausible
_MAX_TAIL_BLOCK = MAX_CAPLEN + 65536  # a final block running past EOF longer than this is a lie
_MAX_VLAN_TAGS = 4
_MAX_IPV6_EXT_HEADERS = 8
_RST = 0x04
_ETH_IPV4, _ETH_IPV6 = 0x0800, 0x86DD
_VLAN_TPIDS = frozenset((0x8100, 0x88A8, 0x9100))
# Linux packet type (sll_pkttype): HOST, BROADCAST, MULTICAST -> to us; OUTGOING -> from us.
_SLL_DIRECTION = {0: "in", 1: "in", 2: "in", 4: "out"}
_NULL_AF = {2: _ETH_IPV4, 10: _ETH_IPV6, 24: _ETH_IPV6, 28: _ETH_IPV6, 30: _ETH_IPV6}
_PCAP_MAGIC = {  # magic bytes as stored -> (struct byte order, fraction divisor)
    b"\xd4\xc3\xb2\xa1": ("<", 1_000_000), b"\xa1\xb2\xc3\xd4": (">", 1_000_000),
    b"\x4d\x3c\xb2\xa1": ("<", 1_000_000_000), b"\xa1\xb2\x3c\x4d": (">", 1_000_000_000),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
_PCAPNG_ORDER = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}
_SUPPORTED_LINKTYPES = frozenset((0, 1, 12, 14, 101, 108, 113, 228, 229, 276))


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


class ResetList(list):
    """The list returned by :func:`read_resets`, plus how reading ended.

    ``truncated``: max_packets was hit and at least one more reset followed.
    ``partial_tail``: the data ended inside a record (see module docstring).
    """
    truncated = False
    partial_tail = False


def _link(linktype: int, buf: bytes, off: int, end: int):
    """Strip the link layer: return (ethertype, network offset, direction) or None."""
    n = end - off
    if linktype == 1:                                   # EN10MB
        if n < 14:
            return None
        return _vlan(buf, (buf[off + 12] << 8) | buf[off + 13], off + 14, end, None)
    if linktype == 113:                                 # LINUX_SLL: type, hatype, alen, addr[8], proto
        if n < 16:
            return None
        direction = _SLL_DIRECTION.get((buf[off] << 8) | buf[off + 1])
        return _vlan(buf, (buf[off + 14] << 8) | buf[off + 15], off + 16, end, direction)
    if linktype == 276:                                 # LINUX_SLL2: proto, rsv, ifindex, hatype, type, ...
        if n < 20:
            return None
        direction = _SLL_DIRECTION.get(buf[off + 10])
        return _vlan(buf, (buf[off] << 8) | buf[off + 1], off + 20, end, direction)
    if linktype in (12, 14, 101):                       # RAW: IP version nibble decides
        if n < 1:
            return None
        version = buf[off] >> 4
        return ({4: _ETH_IPV4, 6: _ETH_IPV6}.get(version, 0), off, None)
    if linktype == 228:
        return (_ETH_IPV4, off, None)
    if linktype == 229:
        return (_ETH_IPV6, off, None)
    if linktype in (0, 108):                            # NULL: host-order AF; LOOP: network order
        if n < 4:
            return None
        family = int.from_bytes(buf[off:off + 4], "big")
        if linktype == 0 and family > 0xFFFF:
            family = int.from_bytes(buf[off:off + 4], "little")
        return (_NULL_AF.get(family, 0), off + 4, None)
    return None


def _vlan(buf: bytes, ethertype: int, off: int, end: int, direction):
    for _ in range(_MAX_VLAN_TAGS):
        if ethertype not in _VLAN_TPIDS:
            break
        if end - off < 4:
            return None
        ethertype = (buf[off + 2] << 8) | buf[off + 3]
        off += 4
    return (ethertype, off, direction)


def _tcp_reset(ethertype: int, buf: bytes, off: int, end: int):
    """Return (src bytes, sport, dst bytes, dport, flags) for a TCP RST, else None."""
    if ethertype == _ETH_IPV4:
        if end - off < 20 or buf[off] >> 4 != 4:
            return None
        ihl = (buf[off] & 0x0F) * 4
        total = (buf[off + 2] << 8) | buf[off + 3]
        if ihl < 20 or (total and total < ihl):
            return None
        if total:
            end = min(end, off + total)                 # drop link-layer padding / FCS
        if ((buf[off + 6] & 0x1F) << 8) | buf[off + 7]:  # non-first fragment
            return None
        if buf[off + 9] != 6:
            return None
        src, dst, tcp = buf[off + 12:off + 16], buf[off + 16:off + 20], off + ihl
    elif ethertype == _ETH_IPV6:
        if end - off < 40 or buf[off] >> 4 != 6:
            return None
        plen = (buf[off + 4] << 8) | buf[off + 5]
        if plen:
            end = min(end, off + 40 + plen)
        nxt, src, dst, tcp = buf[off + 6], buf[off + 8:off + 24], buf[off + 24:off + 40], off + 40
        for _ in range(_MAX_IPV6_EXT_HEADERS):
            if nxt == 6 or end - tcp < 8:
                break
            if nxt in (0, 43, 60, 135, 139, 140):       # hop-by-hop, routing, dstopts, mobility, HIP, shim6
                nxt, tcp = buf[tcp], tcp + (buf[tcp + 1] + 1) * 8
            elif nxt == 44:                             # fragment: only the first one has the TCP header
                if ((buf[tcp + 2] << 8) | buf[tcp + 3]) & 0xFFF8:
                    return None
                nxt, tcp = buf[tcp], tcp + 8
            elif nxt == 51:                             # AH
                nxt, tcp = buf[tcp], tcp + (buf[tcp + 1] + 2) * 4
            else:
                return None
        if nxt != 6:
            return None
    else:
        return None
    if end - tcp < 14 or not buf[tcp + 13] & _RST:
        return None
    return (src, (buf[tcp] << 8) | buf[tcp + 1], dst, (buf[tcp + 2] << 8) | buf[tcp + 3], buf[tcp + 13])


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

    def add(self, linktype, buf, off, end, ts, direction=None) -> bool:
        """Decode one captured frame; return False once max_packets is exceeded."""
        link = _link(linktype, buf, off, end)
        if link is None:
            return True
        hit = _tcp_reset(link[0], buf, link[1], end)
        if hit is None:
            return True
        if len(self.out) >= self.limit:
            self.out.truncated = True
            return False
        self.out.append(ResetPacket(ts, self._name(hit[0]), hit[1], self._name(hit[2]), hit[3],
                                    hit[4], link[2] or direction))
        return True


def _read_pcap(buf: bytes, order: str, divisor: int, col: _Collector) -> None:
    if len(buf) < 24:
        raise PcapError(f"truncated pcap file header ({len(buf)} of 24 bytes)")
    major, _minor, _zone, _sigfigs, snaplen, network = struct.unpack_from(order + "HHiIII", buf, 4)
    linktype = network & 0xFFFF                        # upper bits carry FCS information
    if major != 2:
        raise PcapError(f"unsupported pcap version {major}.{_minor}")
    if not 0 < snaplen <= MAX_CAPLEN:
        raise PcapError(f"bogus snaplen {snaplen}")
    if linktype not in _SUPPORTED_LINKTYPES:
        raise PcapError(f"unsupported link type {linktype}")
    record = struct.Struct(order + "IIII")
    pos, n = 24, len(buf)
    while pos < n:
        if n - pos < 16:
            col.out.partial_tail = True
            return
        sec, frac, caplen, _origlen = record.unpack_from(buf, pos)
        if caplen > snaplen:
            raise PcapError(f"record at offset {pos}: caplen {caplen} > snaplen {snaplen}")
        pos += 16
        if n - pos < caplen:
            col.out.partial_tail = True
            return
        if not col.add(linktype, buf, pos, pos + caplen, sec + frac / divisor):
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
            interfaces.append((linktype, snaplen, divisor, offset))
        elif btype in (3, 6):                           # Simple / Enhanced Packet Block
            if size < (20 if btype == 6 else 4):
                raise PcapError(f"pcapng packet block at offset {pos} too short")
            if btype == 6:
                ifid, hi, lo, caplen, _orig = struct.unpack_from(order + "IIIII", buf, body)
                data = body + 20
            else:                                       # SPB: interface 0, no timestamp
                ifid, hi, lo, data = 0, 0, 0, body + 4
                caplen = min(struct.unpack_from(order + "I", buf, body)[0], bend - data)
            if caplen > bend - data:
                raise PcapError(f"pcapng packet block at offset {pos}: caplen {caplen} overruns block")
            if ifid >= len(interfaces):
                raise PcapError(f"pcapng packet block at offset {pos}: unknown interface {ifid}")
            linktype, snaplen, divisor, offset = interfaces[ifid]
            if btype == 3 and snaplen:
                caplen = min(caplen, snaplen)
            if caplen > MAX_CAPLEN or (snaplen and caplen > snaplen):
                raise PcapError(f"pcapng packet block at offset {pos}: caplen {caplen} too large")
            direction = None
            if btype == 6:
                for code, at, length in _options(buf, data + ((caplen + 3) & ~3), bend, order):
                    if code == 2 and length >= 4:       # epb_flags: bits 0-1 = direction
                        bits = struct.unpack_from(order + "I", buf, at)[0] & 3
                        direction = {1: "in", 2: "out"}.get(bits)
            if linktype in _SUPPORTED_LINKTYPES:
                ts = ((hi << 32) | lo) / divisor + offset
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
    except (struct.error, IndexError, ValueError, OverflowError) as exc:
        if isinstance(exc, PcapError):
            raise
        raise PcapError(f"internal bounds error: {exc}") from exc   # defence in depth; tests assert unreachable
    return col.out

