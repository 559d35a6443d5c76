"""One captured frame's link, IP and TCP headers -> the fields of a TCP reset (pcap.py reads files).

Link types: EN10MB (1, 802.1Q/802.1ad tags), LINUX_SLL (113), LINUX_SLL2 (276), RAW (101, 12,
14), IPV4 (228), IPV6 (229), NULL (0), LOOP (108).  IPv4 honours IHL and total length and skips
non-first fragments; IPv6 walks at most 8 extension headers.  Bounded and allocation-free but
for the address slices: the bytes are untrusted.

    decode_reset(1, frame, 0, len(frame))
    -> ((b"\\xc0\\x00\\x02\\x01", 80, b"\\xc0\\x00\\x02\\x02", 41000, 0x14, 0), None)
"""
from __future__ import annotations

SUPPORTED_LINKTYPES = frozenset((0, 1, 12, 14, 101, 108, 113, 228, 229, 276))
CUT = object()      # the frame ends (or its IP header is broken) before the TCP flags: undecodable

_MAX_VLAN_TAGS = 4
_MAX_IPV6_EXT_HEADERS = 8
_RST = 0x04
_ETH_IPV4, _ETH_IPV6 = 0x0800, 0x86DD
_VLAN_TPIDS = frozenset((0x8100, 0x88A8, 0x9100))
_IPV6_EXT = frozenset((0, 43, 44, 51, 60, 135, 139, 140))
# Linux packet type (sll_pkttype): HOST, BROADCAST, MULTICAST -> to us; OUTGOING -> from us.
_SLL_DIRECTION = {0: "in", 1: "in", 2: "in", 4: "out"}
_NULL_AF = {2: _ETH_IPV4, 10: _ETH_IPV6, 24: _ETH_IPV6, 28: _ETH_IPV6, 30: _ETH_IPV6}


def decode_reset(linktype: int, buf: bytes, off: int, end: int):
    """((src bytes, sport, dst bytes, dport, flags, seq), direction) for a TCP reset in
    buf[off:end]; None for any other packet; CUT when the frame cannot tell."""
    link = _link(linktype, buf, off, end)
    if link is None:
        return CUT
    hit = _tcp_reset(link[0], buf, link[1], end)
    return hit if hit is None or hit is CUT else (hit, link[2])


def _link(linktype: int, buf: bytes, off: int, end: int):
    """Strip the link layer: return (ethertype, network offset, direction) or None (too short)."""
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
    """(src bytes, sport, dst bytes, dport, flags, seq) for a TCP RST; None for anything else;
    CUT when the frame ends (or its IP header is broken) before the TCP flags."""
    if ethertype == _ETH_IPV4:
        if end - off < 20:
            return CUT
        if buf[off] >> 4 != 4:
            return None
        ihl = (buf[off] & 0x0F) * 4
        total = (buf[off + 2] << 8) | buf[off + 3]
        if ihl < 20 or (total and total < ihl):
            return CUT
        if total:
            end = min(end, off + total)                 # drop link-layer padding / FCS
        if ((buf[off + 6] & 0x1F) << 8) | buf[off + 7]:  # non-first fragment
            return None
        if buf[off + 9] != 6:
            return None
        src, dst, tcp = buf[off + 12:off + 16], buf[off + 16:off + 20], off + ihl
    elif ethertype == _ETH_IPV6:
        if end - off < 40:
            return CUT
        if buf[off] >> 4 != 6:
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
            return CUT if nxt in _IPV6_EXT else None    # still inside the extension headers
    else:
        return None
    if end - tcp < 14:
        return CUT
    if not buf[tcp + 13] & _RST:
        return None
    seq = int.from_bytes(buf[tcp + 4:tcp + 8], "big")
    return (src, (buf[tcp] << 8) | buf[tcp + 1], dst, (buf[tcp + 2] << 8) | buf[tcp + 3], buf[tcp + 13], seq)
