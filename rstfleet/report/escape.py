r"""One escaper per sink, because host text is hostile and each sink breaks in its own way.

Host names, reasons, process names and peers come from hosts we do not trust. Every renderer
passes such text through the escaper of its sink, and never builds markup by pasting raw text:

    >>> terminal("h1\x1b]0;pwn\x07")
    'h1\\x1b]0;pwn\\x07'
    >>> markdown("a|b*c_<d>")
    'a\\|b\\*c\\_&lt;d&gt;'
    >>> prometheus_label('say "hi"\\')
    'say \\"hi\\"\\\\'

All of them first make the text *printable* (`rstfleet.textsafe.printable`: control and bidi
characters become visible ``\xNN`` escapes, long text is cut) and replace what no UTF-8 or XML
consumer should receive: lone surrogates (a probe's JSON may carry ``"\ud800"``, which cannot be
encoded and would crash the write) and Unicode noncharacters (``\ufffe``, ``\uffff``, …).
"""

from __future__ import annotations

import html
import re

from ..textsafe import printable

DEFAULT_LIMIT = 200


def clean(text: object, limit: int = DEFAULT_LIMIT) -> str:
    """Printable, encodable, XML-legal text: the common first step of every sink."""
    return printable("" if text is None else text, limit)


def fit(text: object, width: int) -> str:
    """Cleaned text cut to at most width characters *as shown* (escapes included), for fixed-size
    places such as the chart's label column: 'web\x1b[2J-very-long' -> 'web\\x1b[2J-ve…'."""
    value = clean(text, max(width * 6, DEFAULT_LIMIT))
    return value if len(value) <= width else value[:width - 1] + "…"


def terminal(text: object, limit: int = DEFAULT_LIMIT) -> str:
    """For a terminal or a plain text file: no escape sequences, no NULs, bounded length."""
    return clean(text, limit)


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~#!])")


def markdown(text: object, limit: int = DEFAULT_LIMIT) -> str:
    """Markdown inline text: emphasis, links, code spans, table cells and raw HTML stay inert.

    ``<``, ``>`` and ``&`` become entities (CommonMark decodes them to plain text; a backslash
    escape of ``<`` is not honoured by every ticket system). Newlines are already visible
    ``\\x0a`` escapes after `clean`, so a value cannot end a table row or start a heading.
    """
    value = clean(text, limit)
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN_SPECIAL.sub(r"\\\1", value)


def markdown_code(text: object, limit: int = DEFAULT_LIMIT) -> str:
    """A command as an inline code span whose rendered text is exactly the cleaned command.

    The fence is one backtick longer than the longest run inside (CommonMark), padded with a
    space when the text starts or ends with a backtick; blank text becomes escaped text.
    """
    value = clean(text, limit)
    if not value.strip():
        return markdown(value, limit)
    fence = "`" * (max((len(run) for run in re.findall(r"`+", value)), default=0) + 1)
    pad = " " if value[0] == "`" or value[-1] == "`" else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def html_text(text: object, limit: int = DEFAULT_LIMIT) -> str:
    """HTML element content or a quoted attribute value (quotes are escaped too)."""
    return html.escape(clean(text, limit), quote=True)


def xml_text(text: object, limit: int = DEFAULT_LIMIT) -> str:
    """Text for xml.etree (which escapes markup itself): no character XML 1.0 forbids."""
    return clean(text, limit)


def xml_block(text: str) -> str:
    """Multi-line text for an XML element: each line cleaned, the newlines kept."""
    return "\n".join(clean(line, 1000) for line in text.split("\n"))


def prometheus_label(text: object, limit: int = DEFAULT_LIMIT) -> str:
    """A label value of the Prometheus text format: backslash, double quote and newline escaped."""
    value = clean(text, limit)
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
