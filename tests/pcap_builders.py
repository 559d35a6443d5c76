"""Builders of frames and capture files, shared by the pcap reader's tests (tests/e2e/test_pcap.py,
tests/unit/test_analyze.py): the bytes tcpdump or Wireshark would write, or lies about them.

    pcap_file([eth(v4_rst("192.0.2.1", 9, "192.0.2.2", 40000))], linktype=1)
    ng_shb() + ng_idb(276) + ng_epb(0, ts_units, sll2(v4_rst(...), 4))
"""
from __future__ import annotations

import ipaddress
import struct

RST, ACK, SYN = 0x04, 0x10, 0x02


# --------------------------------------------------------------------------- frame builders

def tcp(sport, dport, flags=RST | ACK, seq=0, ack=0):
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 0, 0, 0)


def ipv4(src, dst, payload, proto=6, options=b"", frag_offset=0, more_fragments=False):
    ihl = 5 + len(options) // 4
    frag = (0x2000 if more_fragments else 0) | frag_offset
    return struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 20 + len(options) + len(payload), 1, frag,
                       64, proto, 0, ipaddress.IPv4Address(src).packed,
                       ipaddress.IPv4Address(dst).packed) + options + payload


def ipv6(src, dst, payload, next_header=6, ext=b""):
    return struct.pack("!IHBB16s16s", 0x60000000, len(ext) + len(payload), next_header, 64,
                       ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed) + ext + payload


def ext_opts(next_header):            # hop-by-hop / destination options, 8 bytes of PadN
    return bytes([next_header, 0, 1, 4, 0, 0, 0, 0])


def ext_chain(count):              # hop-by-hop, then destination options ..., then TCP
    return b"".join(ext_opts(60) for _ in range(count - 1)) + ext_opts(6)


def ext_fragment(next_header, offset, more=False):
    return struct.pack("!BBHI", next_header, 0, (offset << 3) | int(more), 0x1234)


def eth(payload, ethertype=0x0800, vlans=(), pad_to=0):
    frame = b"\x02\x00\x00\x00\x00\x01" + b"\x02\x00\x00\x00\x00\x02"
    for tpid, vid in vlans:
        frame += struct.pack("!HH", tpid, vid)
    frame += struct.pack("!H", ethertype) + payload
    return frame + b"\x00" * max(0, pad_to - len(frame))


def sll(payload, pkttype, proto=0x0800):
    return struct.pack("!HHH8sH", pkttype, 1, 6, b"\x02\x00\x00\x00\x00\x09", proto) + payload


def sll2(payload, pkttype, proto=0x0800, ifindex=2):
    return struct.pack("!HHIHBB8s", proto, 0, ifindex, 1, pkttype, 6, b"\x02\x00\x00\x00\x00\x09") + payload


def v4_rst(src, sport, dst, dport, flags=RST | ACK, seq=0):
    return ipv4(src, dst, tcp(sport, dport, flags, seq))


def v6_rst(src, sport, dst, dport, flags=RST):
    return ipv6(src, dst, tcp(sport, dport, flags))


# --------------------------------------------------------------------------- file builders

def pcap_file(frames, linktype=1, order="<", nano=False, snaplen=262144, t0=1_700_000_000):
    """frames: list of bytes, or (bytes, caplen, origlen) to lie about lengths."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)
    for i, frame in enumerate(frames):
        data, caplen, origlen = frame if isinstance(frame, tuple) else (frame, len(frame), len(frame))
        frac = 123_456_789 if nano else 123_456
        out += struct.pack(order + "IIII", t0 + i, frac, caplen, origlen) + data
    return out


def _pad4(b):
    return b + b"\x00" * (-len(b) % 4)


def ng_block(btype, body, o="<", total=None, trailer=None):
    body = _pad4(body)
    blen = 12 + len(body)
    return struct.pack(o + "II", btype, total or blen) + body + struct.pack(o + "I", trailer or blen)


def ng_options(options, o="<"):
    if not options:
        return b""
    return b"".join(struct.pack(o + "HH", c, len(v)) + _pad4(v) for c, v in options) + b"\0\0\0\0"


def ng_shb(o="<"):
    return ng_block(0x0A0D0D0A, struct.pack(o + "IHHq", 0x1A2B3C4D, 1, 0, -1), o)


def ng_idb(linktype, o="<", snaplen=262144, options=()):
    return ng_block(1, struct.pack(o + "HHI", linktype, 0, snaplen) + ng_options(options, o), o)


def ng_epb(ifid, ts_units, data, o="<", flags=None, caplen=None):
    options = [(2, struct.pack(o + "I", flags))] if flags is not None else []
    head = struct.pack(o + "IIIII", ifid, ts_units >> 32, ts_units & 0xFFFFFFFF,
                       len(data) if caplen is None else caplen, len(data))
    return ng_block(6, head + _pad4(data) + ng_options(options, o), o)


def ng_spb(data, o="<"):
    return ng_block(3, struct.pack(o + "I", len(data)) + data, o)


def ng_pb(ifid, ts_units, data, o="<", flags=None, drops=0):
    """The obsolete Packet Block (type 2): 16-bit interface id and drop count, pack_flags."""
    options = [(2, struct.pack(o + "I", flags))] if flags is not None else []
    head = struct.pack(o + "HHIIII", ifid, drops, ts_units >> 32, ts_units & 0xFFFFFFFF, len(data), len(data))
    return ng_block(2, head + _pad4(data) + ng_options(options, o), o)


def pcap_to_pcapng(data: bytes, o: str = "<", block: int = 6) -> bytes:
    """A classic pcap rewritten as Wireshark saves it: one section, one interface of the same link
    type and snaplen (if_tsresol 9 for a nanosecond file), an Enhanced (or, block=2, obsolete)
    Packet Block per record. The pcap's own byte order and precision are read from its magic."""
    order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    nano = data[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    snaplen, network = struct.unpack_from(order + "II", data, 16)
    units = 10 ** 9 if nano else 10 ** 6
    out = ng_shb(o) + ng_idb(network & 0xFFFF, o, snaplen, options=[(9, bytes([9]))] if nano else ())
    pos = 24
    while pos + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack_from(order + "IIII", data, pos)
        frame = data[pos + 16:pos + 16 + caplen]
        stamp = sec * units + frac
        out += ng_pb(0, stamp, frame, o) if block == 2 else ng_epb(0, stamp, frame, o)
        pos += 16 + caplen
    return out
