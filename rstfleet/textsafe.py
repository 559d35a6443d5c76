"""Text that came from a host is data: make it safe to show before it reaches any sink.

A hostname or an error line from a compromised host could carry terminal escape sequences
("\x1b]0;owned\x07"), NULs or megabytes; every renderer passes host text through here first.
"""

from __future__ import annotations

import re

_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# Lone surrogates and noncharacters: not encodable (a probe's JSON may carry "\ud800", which would
# crash a write), not valid in XML 1.0, never to be interchanged (U+FDD0..FDEF, U+xxFFFE/xxFFFF).
_UNSAFE_CODEPOINTS = re.compile("[\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff"
                                + "".join(f"{chr(plane * 0x10000 + 0xFFFE)}{chr(plane * 0x10000 + 0xFFFF)}"
                                          for plane in range(1, 17)) + "]")


def printable(text: object, limit: int = 200) -> str:
    r"""Control and bidi characters become visible escapes; long text is cut with an ellipsis.

    >>> printable("web1\x1b[2J")
    'web1\\x1b[2J'
    """
    value = str(text)
    if len(value) > limit:
        value = value[:limit] + "…"
    value = _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                             else f"\\u{ord(m.group()):04x}", value)
    return _UNSAFE_CODEPOINTS.sub(lambda m: f"\\u{ord(m.group()):04x}", value)


def last_line(data: bytes, limit: int = 200) -> str:
    """The last non-empty line of a host's stderr, decoded leniently and made printable."""
    lines = [line for line in data.decode("utf-8", "replace").splitlines() if line.strip()]
    return printable(lines[-1].strip(), limit) if lines else ""
