"""Mutators: a libFuzzer-style byte mutator (used when atheris is absent) and a structure-aware
mutator for probe documents (JSON), so that documents keep validating while their fields change
type and value -- which is what reaches host_evidence/assess."""
from __future__ import annotations

import base64
import json
import math
import random
import struct

INTERESTING8 = (0, 1, 0x7F, 0x80, 0xFF, 0x04, 0x14, 0x06, 0x45, 0x60)
INTERESTING16 = (0, 1, 0x7FFF, 0x8000, 0xFFFF, 0x0800, 0x86DD, 0x8100, 0x88A8, 14, 16, 20, 40)
INTERESTING32 = (0, 1, 12, 16, 20, 24, 28, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 65535, 65536,
                 262144, 262145, 0x0A0D0D0A, 0x1A2B3C4D, 0xA1B2C3D4, 0xA1B23C4D, 6, 3, 1)
TOKENS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\x0a\x0d\x0d\x0a",
          b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d", b"\x08\x00", b"\x86\xdd", b"\x81\x00",
          b'"kind"', b'"rstfleet-probe"', b'"schema"', b"null", b"true", b"[", b"]", b"{", b"}",
          b"1e999", b"-0", b"NaN", b"Infinity", b"\\u0000", b"\\ud800", b"\xc3", b"\xff",
          b"[0:9]", b"ansible_host", b"[all:children]", b"hosts:", b"- ", b"&a", b"*a", b"!!int")


def mutate_bytes(data: bytes, rng: random.Random, max_size: int, others=()) -> bytes:
    """One to eight random edits: bit/byte flips, interesting integers, tokens, chunk copy,
    insert/delete, splice with another corpus entry."""
    buf = bytearray(data or b"\x00")
    for _ in range(rng.choice((1, 1, 2, 2, 3, 4, 8))):
        op = rng.randrange(11)
        n = len(buf)
        pos = rng.randrange(n) if n else 0
        if op == 0 and n:
            buf[pos] ^= 1 << rng.randrange(8)
        elif op == 1 and n:
            buf[pos] = rng.randrange(256)
        elif op == 2 and n:
            buf[pos] = rng.choice(INTERESTING8)
        elif op == 3 and n >= 2:
            pos = rng.randrange(n - 1)
            buf[pos:pos + 2] = struct.pack(rng.choice("<>") + "H", rng.choice(INTERESTING16))
        elif op == 4 and n >= 4:
            pos = rng.randrange(n - 3)
            value = rng.choice(INTERESTING32)
            if rng.random() < 0.3:
                value = (value + rng.randint(-4, 4)) & 0xFFFFFFFF
            buf[pos:pos + 4] = struct.pack(rng.choice("<>") + "I", value)
        elif op == 5:
            buf[pos:pos] = rng.choice(TOKENS)
        elif op == 6 and n > 1:
            del buf[pos:pos + rng.randint(1, min(64, n - pos))]
        elif op == 7 and n:
            a = rng.randrange(n)
            chunk = buf[a:a + rng.randint(1, 128)]
            buf[pos:pos] = chunk
        elif op == 8:
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif op == 9 and others:
            other = rng.choice(others)
            if other:
                a = rng.randrange(len(other))
                buf[pos:] = other[a:a + rng.randint(1, 4096)]
        elif op == 10 and n > 4:
            del buf[rng.randrange(1, n):]              # truncate
    return bytes(buf[:max_size])


# --- probe documents ----------------------------------------------------------------------------

KEYS = ("kind", "schema", "window", "measured_s", "tcp", "delta", "OutRsts", "baseline",
        "OutRsts_per_s_lifetime", "trace", "available", "reason", "flows", "capture", "pcap_b64",
        "path", "error", "owners", "ports", "method", "listening", "facts", "addresses",
        "tcpext_delta", "TCPAbortOnClose", "TCPAbortOnData", "TCPAbortOnLinger",
        "TCPAbortOnMemory", "ListenOverflows", "sysctls", "net.ipv4.tcp_abort_on_overflow",
        "notes", "phase2_window", "22", "4001")
STRINGS = ("", "x", "127.0.0.1", "::1", "fe80::1%eth0", " 192.0.2.1 ", "not-an-ip", "NO_SOCKET",
           "TCP_OLD_ACK", "UNKNOWN", "5", "5.5", "+", "1 +2", "\u202e\u0000", "\ud800",
           "../../etc/passwd", "/nonexistent/x.pcap", "{port}", "%s", "A" * 300, "rstfleet-probe",
           "lsof", "auto", "////", "AAAA", "=")
FLOATS = (0.0, -0.0, 0.5, -1.5, 1e-320, 1e308, -1e308, math.inf, -math.inf, math.nan)
INTS = (0, 1, -1, 2, 9, 10, 50, 65535, 65536, 2 ** 31, 2 ** 63, 10 ** 30, -(10 ** 30))


def random_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice(INTS) if rng.random() < 0.7 else rng.randint(-10 ** 6, 10 ** 6)
    if kind == 3:
        return rng.choice(FLOATS) if rng.random() < 0.7 else rng.uniform(-1e6, 1e6)
    if kind in (4, 5):
        return rng.choice(STRINGS)
    if kind == 6:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if kind == 7:
        return [[rng.choice(INTS), rng.choice(STRINGS), rng.choice(("NO_SOCKET", None, "X", 1)),
                 rng.choice(INTS)] for _ in range(rng.randint(0, 3))]
    return {rng.choice(KEYS): random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def _nodes(doc, limit: int = 4000):
    """(container, key) of every value in the document, breadth first."""
    out, queue = [], [doc]
    while queue and len(out) < limit:
        node = queue.pop(0)
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            out.append((node, key))
            if isinstance(value, (dict, list)):
                queue.append(value)
    return out


def mutate_document(doc: dict, rng: random.Random) -> dict:
    """1-4 structural edits of a parsed probe document, in place; returns it."""
    for _ in range(rng.randint(1, 4)):
        nodes = _nodes(doc)
        if not nodes:
            doc[rng.choice(KEYS)] = random_value(rng)
            continue
        container, key = rng.choice(nodes)
        value = container[key]
        op = rng.randrange(9)
        if op <= 2:                                     # new value of any type
            container[key] = random_value(rng)
        elif op == 3 and isinstance(container, dict):   # delete a key
            del container[key]
        elif op == 3 and isinstance(container, list):
            del container[key]
        elif op == 4:                                   # add a known key somewhere
            target = value if isinstance(value, dict) else container
            if isinstance(target, dict):
                target[rng.choice(KEYS)] = random_value(rng)
            else:
                target.append(random_value(rng))
        elif op == 5:                                   # nudge a number / flip its type
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                container[key] = rng.choice(INTS + FLOATS)
            else:
                container[key] = rng.choice((value + 1, value - 1, -value, value * 1000, float(value),
                                             str(value), int(value) if math.isfinite(value) else 0))
        elif op == 6:                                   # another subtree, type-confused
            other_container, other_key = rng.choice(nodes)
            container[key] = json.loads(json.dumps(other_container[other_key]))
        elif op == 7 and isinstance(value, list):       # list surgery
            if value and rng.random() < 0.5:
                row = rng.choice(value)
                value.append(json.loads(json.dumps(row)))
                if isinstance(row, list) and row:
                    value[-1] = row[:rng.randrange(len(row))] + [random_value(rng)] * rng.randint(0, 2)
            elif value:
                del value[rng.randrange(len(value)):]
        elif op == 8 and isinstance(value, str) and key == "pcap_b64":
            try:
                raw = base64.b64decode(value)
                container[key] = base64.b64encode(mutate_bytes(raw, rng, 1 << 20)).decode()
            except ValueError:
                container[key] = value[: rng.randrange(len(value) + 1)] + "!"
        else:                                           # strings: pick an interesting one
            container[key] = rng.choice(STRINGS) if isinstance(value, str) else random_value(rng)
    return doc


def mutate_probe(data: bytes, rng: random.Random, max_size: int, byte_mutate) -> bytes:
    """Structural edit of a JSON document when the input is one (75 %), else a byte edit."""
    if rng.random() < 0.75:
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError):
            doc = None
        if isinstance(doc, dict):
            mutate_document(doc, rng)
            if rng.random() < 0.9:                      # keep it a probe document most times
                doc.setdefault("kind", "rstfleet-probe")
                doc.setdefault("schema", 1)
            try:
                out = json.dumps(doc, separators=(",", ":")).encode()
            except (ValueError, RecursionError):
                out = b""
            if out and len(out) <= max_size:
                return out
    return byte_mutate(data, max_size)
