"""known_hosts with OpenSSH's semantics (hostfile.c, match.c, sshconnect.c of OpenSSH 9.2).

paramiko's own reader raised InvalidHostKey for a whole file on one line it did not like, and
knew neither markers nor the global file; this one reads lines as OpenSSH does, so one bad line
is skipped with one warning and every other host is unaffected:

    [@cert-authority|@revoked] HOSTS KEYTYPE BASE64 [comment]
    HOSTS: name,*.example.com,!bad.example.com,[name]:2222  or hashed  |1|SALT|HMAC-SHA1

This module is the format and the matching, pure; host_keys.py reads the files of a run.

The verdict on a presented key (sshconnect.c check_host_key), looked up under ``name`` or
``[name]:port`` (or the HostKeyAlias):

    trusted      a plain line for the host holds this key
    unknown      no plain line for the host (a non-22 port also tries the bare name, as OpenSSH)
    changed      plain lines for the host, none with this key (whatever their type)
    revoked      a @revoked line for the host holds this key, even if another line trusts it
    ca_only      only @cert-authority lines name the host: OpenSSH would verify the host's
                 certificate; paramiko cannot, so the host is refused with that reason
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import re
from dataclasses import dataclass, field
from enum import Enum

from .keyblob import KeyBlobError, PublicKey, parse_key

HASH_MAGIC = "|1|"
SALT_BYTES = 20              # an HMAC-SHA1 key
MAX_SUBPATTERN = 1022        # match.c: a longer one makes the whole host field fail to match
MAX_MARKER = 31
_IPAD, _OPAD = bytes(b ^ 0x36 for b in range(256)), bytes(b ^ 0x5C for b in range(256))   # RFC 2104
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


class Marker(str, Enum):
    PLAIN = ""
    CA = "@cert-authority"
    REVOKED = "@revoked"


class HostKeyVerdict(str, Enum):
    TRUSTED = "trusted"
    UNKNOWN = "unknown"
    CHANGED = "changed"
    REVOKED = "revoked"
    CA_ONLY = "ca_only"


def fingerprint(blob: bytes) -> str:
    """OpenSSH's default fingerprint: ``SHA256:`` and unpadded base64."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def host_port(name: str, port: int) -> str:
    """hostfile.c put_host_port: ``name`` on port 22, ``[name]:port`` otherwise."""
    return name if port in (0, 22) else f"[{name}]:{port}"


def lookup_name(name: str) -> str:
    """ssh.c lowercases a host name (ASCII only) before looking it up; not an address."""
    try:
        ipaddress.ip_address(name)
        return name
    except ValueError:
        return name.translate(_ASCII_LOWER)


def hashed_name(name: str, salt: bytes) -> str:
    """hostfile.c host_hash: ``|1|`` base64(salt) ``|`` base64(HMAC-SHA1 of the name, keyed by salt)."""
    digest = hmac.digest(salt, name.encode("utf-8", "surrogateescape"), "sha1")
    return f"{HASH_MAGIC}{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


def entry_text(name: str, key_type: str, blob: bytes, salt: bytes | None = None) -> str:
    """A line as ssh writes it for a new host (hostfile.c write_host_entry), hashed if a salt is given."""
    return f"{hashed_name(name, salt) if salt else name} {key_type} {base64.b64encode(blob).decode()}"


def _canonical_b64(text: str) -> bytes | None:
    """b64_pton accepts exactly the canonical encoding (padding, zero slop bits)."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if base64.b64encode(raw).decode() == text else None


class HashedField:
    """A hashed host field ready for names: the HMAC's inner and outer SHA-1 states are computed
    once per line, so a name costs ~0.6 µs, not 2 µs (a fleet in a hashed known_hosts of
    thousands of lines tries every line for every host, as OpenSSH does)."""

    __slots__ = ("inner", "outer", "digest")

    def __init__(self, salt: bytes, digest: bytes | None):
        key = salt.ljust(64, b"\0")
        self.inner = hashlib.sha1(key.translate(_IPAD))
        self.outer = hashlib.sha1(key.translate(_OPAD))
        self.digest = digest          # None: not a base64 HMAC, never matches (valid all the same)

    def matches(self, name: bytes) -> bool:
        if self.digest is None:
            return False
        inner, outer = self.inner.copy(), self.outer.copy()
        inner.update(name)
        outer.update(inner.digest())
        return outer.digest() == self.digest


@dataclass(frozen=True)
class KnownHostsLine:
    path: str
    number: int
    marker: Marker
    hosts: str
    key_type: str
    key: PublicKey
    fingerprint: str
    patterns: tuple = field(repr=False, compare=False, default=())   # (negated, text, regex|None)
    hashed: HashedField | None = field(repr=False, compare=False, default=None)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.number}"

    def matches(self, name: str) -> bool:
        """match_maybe_hashed: the HMAC of a hashed field, else match_pattern_list (a negated
        pattern that matches excludes the line; `*` and `?` are the only wildcards)."""
        if self.hashed is not None:
            return self.hashed.matches(name.encode("utf-8", "surrogateescape"))
        positive = False
        for negated, text, regex in self.patterns:
            if len(text) > MAX_SUBPATTERN:
                return False
            if (regex.fullmatch(name) is not None) if regex else text == name:
                if negated:
                    return False
                positive = True
        return positive


def _patterns(hosts: str) -> tuple:
    out = []
    for sub in hosts.split(","):
        negated = sub.startswith("!")
        text = sub[1:] if negated else sub
        text = text.translate(_ASCII_LOWER)
        regex = None
        if "*" in text or "?" in text:
            regex = re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                                       for c in text), re.S)
        out.append((negated, text, regex))
    return tuple(out)


def _split(text: str) -> tuple[str, str]:
    """The next field up to a space or tab (OpenSSH's only separators) and the rest after them."""
    match = re.match(r"([^ \t]*)[ \t]*(.*)", text, re.S)
    return match.group(1), match.group(2)


def _marker(text: str) -> tuple[Marker, str]:
    """hostfile.c check_markers; ValueError for an unknown or repeated marker."""
    marker = Marker.PLAIN
    while text.startswith("@"):
        end = text.find(" ")
        end = text.find("\t") if end < 0 else end
        if marker is not Marker.PLAIN or end <= 1 or end > MAX_MARKER:
            raise ValueError("invalid marker")
        if text[:end] not in (Marker.CA.value, Marker.REVOKED.value):
            raise ValueError(f"unknown marker {text[:end]!r}")
        marker = Marker(text[:end])
        text = text[end:].lstrip(" \t")
    return marker, text


def parse_line(text: str, path: str, number: int) -> KnownHostsLine | None:
    """One line, or None for a blank or comment line; ValueError says why OpenSSH skips it."""
    rest = text.lstrip(" \t")
    if not rest or rest.startswith("#"):
        return None
    marker, rest = _marker(rest)
    hosts, rest = _split(rest)
    hashed = None
    if hosts.startswith("|"):
        body = hosts[len(HASH_MAGIC):].split("|", 1)
        salt = _canonical_b64(body[0]) if hosts.startswith(HASH_MAGIC) and len(body) == 2 else None
        if salt is None or len(salt) != SALT_BYTES:
            raise ValueError("malformed hashed host field")
        digest = _canonical_b64(body[1])
        hashed = HashedField(salt, digest if digest and len(digest) == SALT_BYTES else None)
    if not rest or rest.startswith("#"):
        raise ValueError("no key after the host field")
    key_type, rest = _split(rest)
    blob_text, _ = _split(rest)
    if not blob_text:
        raise ValueError(f"no key after the key type {key_type!r}")
    blob = _canonical_b64(re.sub(r"[\r\v\f]", "", blob_text))
    if blob is None:
        raise ValueError("key is not valid base64")
    try:
        key = parse_key(key_type, blob)
    except KeyBlobError as exc:
        raise ValueError(str(exc)) from None
    return KnownHostsLine(path, number, marker, hosts, key_type, key, fingerprint(blob),
                          () if hashed else _patterns(hosts), hashed)


def parse_text(text: str, path: str) -> tuple[list[KnownHostsLine], list[str]]:
    """Every usable line of a file, and ``path:line: problem`` for each line OpenSSH skips."""
    lines, problems = [], []
    for number, raw in enumerate(text.split("\n"), 1):
        try:
            line = parse_line(raw, path, number)
        except ValueError as exc:
            problems.append(f"{path}:{number}: {exc}")
            continue
        if line is not None:
            lines.append(line)
    return lines, problems


@dataclass(frozen=True)
class HostKeyCheck:
    """What known_hosts says of one presented key, and the line that decided it."""
    verdict: HostKeyVerdict
    name: str                          # the name looked up: host, [host]:port or the alias
    line: KnownHostsLine | None = None


class KnownHosts:
    """The usable lines of some files, in order, indexed by the exact names they list (lines
    with wildcards or hashes are tried for every name)."""

    def __init__(self, lines: list[KnownHostsLine] = ()):
        self.lines: list[KnownHostsLine] = []
        self._exact: dict[str, list[int]] = {}
        self._wildcard: list[int] = []
        self._hashed: list[tuple[int, HashedField]] = []
        self._found: dict[str, tuple[int, list[KnownHostsLine]]] = {}   # name -> (len(lines), lines)
        for line in lines:
            self.add(line)

    def add(self, line: KnownHostsLine) -> None:
        index = len(self.lines)
        self.lines.append(line)
        if line.hashed is not None:
            self._hashed.append((index, line.hashed))
        elif any(regex for _, _, regex in line.patterns):
            self._wildcard.append(index)
        for name in {text for negated, text, regex in line.patterns if not negated and regex is None}:
            self._exact.setdefault(name, []).append(index)

    def lookup(self, name: str) -> list[KnownHostsLine]:
        """The lines that apply to ``name`` (already lowercased as ssh does), in file order;
        remembered until a line is added (a host is looked up for its key types, then its key)."""
        seen = self._found.get(name)
        if seen is not None and seen[0] == len(self.lines):
            return seen[1]
        count, encoded = len(self.lines), name.encode("utf-8", "surrogateescape")
        hits = {i for i in set(self._exact.get(name, ())).union(self._wildcard) if self.lines[i].matches(name)}
        hits.update(i for i, hashed in self._hashed if hashed.matches(encoded))
        found = [self.lines[i] for i in sorted(hits) if i < count]
        self._found[name] = (count, found)
        return found

    def check(self, name: str, key: PublicKey) -> HostKeyCheck:
        """hostfile.c check_key_in_hostkeys for a plain presented key."""
        lines = self.lookup(name)
        revoked = next((l for l in lines if l.marker is Marker.REVOKED and l.key.identity == key.identity), None)
        if revoked:
            return HostKeyCheck(HostKeyVerdict.REVOKED, name, revoked)
        plain = [l for l in lines if l.marker is Marker.PLAIN]
        trusted = next((l for l in plain if not l.key.cert and l.key.identity == key.identity), None)
        if trusted:
            return HostKeyCheck(HostKeyVerdict.TRUSTED, name, trusted)
        if plain:
            same_kind = [l for l in plain if l.key.kind == key.kind]
            return HostKeyCheck(HostKeyVerdict.CHANGED, name, (same_kind or plain)[0])
        ca = next((l for l in lines if l.marker is Marker.CA), None)
        return HostKeyCheck(HostKeyVerdict.CA_ONLY if ca else HostKeyVerdict.UNKNOWN, name, ca)

    def verify(self, hostname: str, port: int, key: PublicKey, alias: str | None = None) -> HostKeyCheck:
        """The verdict under ``[host]:port`` (or the alias); an unknown host on a non-22 port is
        trusted if its bare name holds the key (sshconnect.c: "checking without port identifier")."""
        name = lookup_name(alias) if alias else host_port(lookup_name(hostname), port)
        result = self.check(name, key)
        if result.verdict in (HostKeyVerdict.UNKNOWN, HostKeyVerdict.CA_ONLY) and not alias and port not in (0, 22):
            bare = self.check(lookup_name(hostname), key)
            if bare.verdict is HostKeyVerdict.TRUSTED:
                return bare
        return result

    def known_kinds(self, hostname: str, port: int, alias: str | None = None) -> set[tuple]:
        """(kind, curve) of the plain, unrevoked keys known for the host: the host key types to
        negotiate first (sshconnect.c order_hostkeyalgs), so a host with several keys presents
        the one known here."""
        names = [lookup_name(alias)] if alias else [host_port(lookup_name(hostname), port)]
        if not alias and port not in (0, 22):
            names.append(lookup_name(hostname))
        for name in names:
            lines = self.lookup(name)
            revoked = {l.key.identity for l in lines if l.marker is Marker.REVOKED}
            kinds = {(l.key.kind, l.key.curve) for l in lines
                     if l.marker is Marker.PLAIN and not l.key.cert and l.key.identity not in revoked}
            if kinds:
                return kinds
        return set()
