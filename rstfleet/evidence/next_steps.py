r"""The next command a person runs on a host, built only from validated values: safe to paste.

A host is hostile input: the peer it reports may be ``198.18.0.1;touch /tmp/x``, a port may be
``9$(reboot)``. So a suggestion is an argv from a fixed template whose only variable words are a
port (an integer 1..65535) or an address (parsed by `ipaddress`, printed in canonical form, no
scope id); a value that does not validate is not used (the cause gets the generic "find the port
and peer" capture instead). The line shown in every format is ``shlex.join(argv)`` (each word
quoted for a POSIX shell where needed) and a comment naming the host it is for, whose host name is
shown with every character but letters, digits and ``.:@+_-`` as a visible ``\xNN`` escape (no
newline can end the comment, no markup survives a careless renderer) and shell-quoted (a shell
without interactive comments, such as zsh by default, still sees no separator):

    lsof -i:9 -P -n   # on h02: is something meant to listen on port 9, a crashed service
    tcpdump -i any -n host 198.18.4.2   # on h05: who is 198.18.4.2, block it if unexpected

The comment's other words are ours (letters, digits, ``,.:/_=+-`` and validated values), so the
whole line holds no unquoted shell metacharacter. The command runs on that host, usually as root.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass


HOST_SHOWN = 60        # characters of the host's name in the comment (a line stays under 250)
RST_FILTER = "tcp[tcpflags] & (tcp-rst) == (tcp-rst)"

# cause key -> (argv template, why). Placeholders {port} and {peer} only; every other word is fixed.
STEPS = {
    "closed_port": (("lsof", "-i:{port}", "-P", "-n"),
                    "is something meant to listen on port {port}, a crashed service"),
    "port_scan": (("tcpdump", "-i", "any", "-n", "host", "{peer}"),
                  "who is {peer}, block it if unexpected"),
    "syn_reset_attack": (("tcpdump", "-i", "any", "-n", "tcp[tcpflags] & tcp-syn != 0 and dst port {port}"),
                         "the peers sending SYNs to closed port {port}"),
    "aborted_connection": (("ss", "-tnp", "( sport = :{port} )"),
                           "which program aborts on port {port}, does it read all its input"),
    "half_open": (("tcpdump", "-i", "any", "-n", "host", "{peer}"),
                  "{peer} talks on a connection this host dropped"),
    "time_wait_assassination": (("ss", "-tan", "state", "time-wait", "( sport = :{port} )"),
                                "TIME_WAIT sockets of port {port} hit by late segments"),
    "listen_queue_full": (("ss", "-ltn", "( sport = :{port} )"),
                          "Recv-Q at Send-Q on port {port}: raise the backlog or accept faster"),
    "buffer_overflow": (("head", "/proc/net/sockstat", "/proc/sys/net/ipv4/tcp_mem"),
                        "TCP memory in use against the tcp_mem limits"),
    "other": (("tcpdump", "-i", "any", "-n", "-c", "200", RST_FILTER),
              "200 resets on the wire: their ports, peers and flags"),
}
# When a cause needs a port or peer that no valid evidence gives (counters know neither).
FIND = (("tcpdump", "-i", "any", "-n", "-c", "200", RST_FILTER),
        "find the port and peer, or rerun with rstfleet triage, then lsof -i:PORT -P -n")
COMMANDS = frozenset(argv[0] for argv, _ in list(STEPS.values()) + [FIND])
_NOT_LABEL = re.compile(r"[^\w.:@+-]")


def _visible(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def host_label(host: str) -> str:
    r"""The host's name for a comment, at most HOST_SHOWN characters as shown (escapes included, cut
    between them, so a renderer never cuts the line): 'h<1>;x' -> 'h\x3c1\x3e\x3bx'."""
    shown = ""
    for char in host:
        piece = _visible(char) if _NOT_LABEL.match(char) else char
        if len(shown) + len(piece) > HOST_SHOWN:
            return shown + "..."
        shown += piece
    return shown


def valid_port(value: object) -> int | None:
    """An integer 1..65535 (not a bool, not a digit string from elsewhere), else None."""
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535:
        return value
    return None


def valid_peer(value: object) -> str | None:
    """The canonical text of an IP address (IPv4-mapped IPv6 shown as IPv4), else None.

    Refused: anything `ipaddress` does not parse, an IPv6 scope id (``fe80::1%eth0;x`` parses,
    its scope is free text), and the unspecified address (a listener's RST names no peer).
    """
    if not isinstance(value, str) or "%" in value:
        return None
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return None if address.is_unspecified else str(address)


@dataclass(frozen=True)
class Suggestion:
    host: str                     # the inventory name it is for
    argv: tuple[str, ...]         # exactly what runs
    why: str                      # our words and validated values only

    @property
    def command(self) -> str:
        return shlex.join(self.argv)

    @property
    def line(self) -> str:
        """What every format shows: the command, then a comment naming the host."""
        return f"{self.command}   # on {shlex.quote(host_label(self.host))}: {self.why}"


def _first(values, check) -> object | None:
    return next((v for v in map(check, values) if v is not None), None)


def suggest(key: str, host: str, ports: list, peers: list) -> Suggestion:
    """The cause's next step on host with the first valid port and peer of the candidates."""
    template, why = STEPS.get(key, STEPS["other"])
    port, peer = _first(ports, valid_port), _first(peers, valid_peer)
    if ("{port}" in " ".join(template) + why and port is None) or \
            ("{peer}" in " ".join(template) + why and peer is None):
        template, why = FIND
    fill = {"port": port, "peer": peer}
    return Suggestion(host, tuple(word.format(**fill) for word in template), why.format(**fill))


def cause_suggestion(host: str, cause, top_ports: list, top_peers: list) -> Suggestion:
    """A cause's next step. A cause without ports or peers of its own (the counters tier) takes
    the host's top ones (from the capture)."""
    return suggest(cause.key, host, list(cause.ports) or [p.port for p in top_ports],
                   list(cause.peers) or [peer for peer, _ in top_peers])


def host_suggestions(host: str, causes: list, top_ports: list, top_peers: list) -> list[Suggestion]:
    """One suggestion per distinct command, in the causes' order."""
    found: list[Suggestion] = []
    for cause in causes:
        suggestion = cause_suggestion(host, cause, top_ports, top_peers)
        if all(s.argv != suggestion.argv for s in found):
            found.append(suggestion)
    return found
