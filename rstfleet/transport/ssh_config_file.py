"""Reading ssh_config files the way OpenSSH 9.2's readconf.c reads them: lines into checked
directives, Include resolved, every bad line a ConfigError('file:line: problem').

OpenSSH refuses a whole file for one bad line, even in a block that does not apply to the host
being reached, so every line is checked here, once, before any host is resolved (ssh_config.py)
or touched.  The lexing (strdelim, argv_split), Include (globs relative to ~/.ssh, `~` from $HOME
as glibc's glob reads it, at most 16 deep, included files' permissions checked) and the pattern
rules are OpenSSH's own.
"""

from __future__ import annotations

import functools
import glob
import os
import pwd
import re
from dataclasses import dataclass

from .ssh_keywords import KEYWORDS, canonical, port_number

MAX_INCLUDE_DEPTH = 16               # READCONF_MAX_DEPTH
MAX_FILES_READ = 1000                # globs that include each other grow as N**16: stop early
WHITESPACE = " \t\r\n"
MATCH_ATTRIBUTES = ("host", "originalhost", "user", "localuser", "exec")


class ConfigError(ValueError):
    """'/home/ann/.ssh/config:12: Port: bad port 'abc' (...)' — the file, the line, the problem."""


def user_home() -> str:
    """Home from the passwd entry, as OpenSSH does (paramiko would use $HOME)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:
        return os.path.expanduser("~")


def local_user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return os.environ.get("USER", "root")


def expand_home(path: str) -> str:
    """OpenSSH's tilde_expand_filename(): '~/x' and '~ann/x' from the passwd entries."""
    if not path.startswith("~"):
        return path
    name, _, rest = path[1:].partition("/")
    try:
        home = pwd.getpwnam(name).pw_dir if name else user_home()
    except KeyError:
        raise ValueError(f"no such user {name!r} in {path!r}") from None
    return home.rstrip("/") + "/" + rest.lstrip("/")


def lowercase(text: str) -> str:
    """ASCII only, like OpenSSH's lowercase() in the C locale."""
    return re.sub("[A-Z]+", lambda m: m.group().lower(), text)


def strdelim(text: str | None) -> tuple[str | None, str | None]:
    """OpenSSH's strdelim(): the next word and the rest; splits on blanks or one '=', honours
    double quotes.  ('Port=22') -> ('Port', '22'); an unmatched quote gives (None, None)."""
    if text is None:
        return None, None
    found = re.search(r'[ \t\r\n"=]', text)
    if found is None:
        return text, None
    at = found.start()
    if text[at] == '"':
        text = text[:at] + text[at + 1:]
        end = text.find('"', at)
        if end < 0:
            return None, None
        return text[:end], text[end + 1:].lstrip(WHITESPACE)
    rest = text[at + 1:].lstrip(WHITESPACE)
    if rest.startswith("=") and text[at] != "=":
        rest = rest[1:].lstrip(WHITESPACE)
    return text[:at], rest


def argv_split(text: str) -> list[str]:
    """OpenSSH's argv_split(): blank-separated words, '…' and "…" quotes, backslash escapes, and
    a '#' starting a word ends the line.  ValueError on an unterminated quote."""
    words, i = [], 0
    while i < len(text):
        if text[i] in " \t":
            i += 1
            continue
        if text[i] == "#":
            break
        quote, word = "", []
        while i < len(text):
            char = text[i]
            following = text[i + 1:i + 2]
            if char == "\\" and (following in ("'", '"', "\\") or (not quote and following == " ")):
                word.append(following)
                i += 1
            elif not quote and char in " \t":
                break
            elif not quote and char in "\"'":
                quote = char
            elif quote and char == quote:
                quote = ""
            else:
                word.append(char)
            i += 1
        if quote:
            raise ValueError("unterminated quote")
        words.append("".join(word))
    return words


def parse_hop(hop: str) -> tuple[str | None, str, int | None]:
    """One ProxyJump hop: 'ann@bastion:2222', '[2001:db8::1]:22', 'ssh://ann@bastion:2222'
    -> (user, host, port); ValueError when OpenSSH would refuse it (`ssh -J HOP -G` is the
    oracle: the user ends at the last '@', only ':' separates the port, an IPv6 address goes in
    brackets, and not in an ssh:// hop).  A host with a space is refused too (ssh would keep its
    first word)."""
    uri = hop[:6].lower() == "ssh://"
    text = hop[6:] if uri else hop
    if uri and text.endswith("/"):
        text = text[:-1]
    user, at, address = text.rpartition("@")
    if at and not user:
        raise ValueError(f"empty user in jump host {hop!r}")
    if address.startswith("["):
        host, bracket, rest = address[1:].partition("]")
        if not bracket or (rest and rest[0] != ":"):
            raise ValueError(f"bad jump host {hop!r}")
        colon, port = rest[:1], rest[1:]
    else:
        host, colon, port = address.partition(":")
    if not host:
        raise ValueError(f"no host in jump host {hop!r} (an IPv6 address goes in brackets)")
    if "/" in host or any(c.isspace() for c in host) or (uri and (":" in host or (colon and not port))):
        raise ValueError(f"bad jump host {hop!r}")
    if port:
        return (user or None), host, port_number(port)
    return (user or None), host, None


@dataclass(frozen=True)
class Directive:
    """One checked line: `name` is OpenSSH's keyword ('Port'), None for an unknown one that an
    IgnoreUnknown seen earlier may excuse."""
    path: str
    line: int
    keyword: str                     # as written, lowercased
    name: str | None
    args: tuple[str, ...]
    raw: str                         # the rest of the line, for commands and ProxyJump
    value: object = None
    userconf: bool = True            # read from a user's file (OpenSSH's "userprovided")
    criteria: tuple = ()             # Match: ((negate, attribute, argument), ...)
    included: tuple = ()             # Include: (ConfigFile, ...)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class ConfigFile:
    path: str
    directives: tuple[Directive, ...]


def match_criteria(text: str) -> tuple:
    """A Match line's criteria, checked as OpenSSH's match_cfg_line() checks them."""
    criteria, attributes, rest = [], 0, text
    while True:
        attribute, rest = strdelim(rest)
        if not attribute or attribute.startswith("#"):
            break
        negate = attribute.startswith("!")
        name = attribute[1:].lower() if negate else attribute.lower()
        if name == "all":
            following, _ = strdelim(rest)
            if attributes > 1 or (following and not following.startswith("#")):
                raise ValueError(f"'{attribute}' cannot be combined with other Match attributes")
            return tuple(criteria) + ((negate, "all", None),)
        attributes += 1
        if name in ("canonical", "final"):
            criteria.append((negate, name, None))
            continue
        argument, rest = strdelim(rest)
        if not argument or argument.startswith("#"):
            raise ValueError(f"missing Match criteria for {attribute}")
        if name not in MATCH_ATTRIBUTES:
            raise ValueError(f"unsupported Match attribute {attribute}")
        criteria.append((negate, name, argument))
    if attributes == 0:
        raise ValueError("one or more attributes required for Match")
    return tuple(criteria)


class _Reader:
    """Reads one configuration (a file and what it includes), collecting OpenSSH's errors."""

    def __init__(self):
        self.ignore_patterns: list[str] = []
        self.files_read = 0

    def read(self, path: str, userconf: bool, checkperm: bool, depth: int = 0,
             included_by: str = "") -> ConfigFile:
        if depth > MAX_INCLUDE_DEPTH:
            raise ConfigError(f"{included_by}: Include nested more than {MAX_INCLUDE_DEPTH} "
                              f"files deep (does an Include include itself?)")
        self.files_read += 1
        if self.files_read > MAX_FILES_READ:
            raise ConfigError(f"{included_by}: Include reads more than {MAX_FILES_READ} files "
                              f"(included files including each other through a glob?)")
        try:
            with open(path, "rb") as handle:
                if checkperm:
                    status = os.fstat(handle.fileno())
                    if status.st_uid not in (0, os.getuid()) or status.st_mode & 0o022:
                        raise ConfigError(f"{path}: bad owner or permissions (writable by others or "
                                          f"owned by another user: OpenSSH refuses it too)")
                data = handle.read()
        except IsADirectoryError:
            data = b""
        except OSError as exc:
            raise ConfigError(f"{included_by or path}: cannot read {path}: {exc.strerror}") from None
        directives, errors = [], []
        for number, line in enumerate(data.split(b"\n")[: data.count(b"\n") + (not data.endswith(b"\n"))], 1):
            text = line.split(b"\0")[0].decode("utf-8", "surrogateescape")
            try:
                directive = self.directive(text, path, number, userconf, depth)
            except ConfigError:
                raise                        # an included file's own, already placed
            except ValueError as exc:
                errors.append(f"{path}:{number}: {exc}")
                continue
            if directive is not None:
                directives.append(directive)
        if errors:
            raise ConfigError("\n".join(errors))
        return ConfigFile(path, tuple(directives))

    def directive(self, line: str, path: str, number: int, userconf: bool, depth: int) -> Directive | None:
        keyword, rest = strdelim(line.rstrip(WHITESPACE + "\f"))
        if keyword == "":
            keyword, rest = strdelim(rest)
        if not keyword or keyword.startswith("#"):
            return None
        rest = (rest or "").lstrip(WHITESPACE)
        if not rest:
            raise ValueError(f'no argument after keyword "{keyword}"')
        name = canonical(keyword)
        if name is None and not any(match_pattern_list(keyword.lower(), p, True) == 1
                                    for p in self.ignore_patterns):
            raise ValueError(f"unknown keyword {keyword!r} (OpenSSH refuses it too; "
                             f"'IgnoreUnknown {keyword}' before it makes both skip it)")
        args = tuple(argv_split(rest))
        made = Directive(path, number, keyword.lower(), name, args, rest, userconf=userconf)
        if name == "Host":
            if "" in args:
                raise ValueError("Host: empty pattern")
            return made
        if name == "Match":
            return Directive(path, number, made.keyword, name, args, rest, userconf=userconf,
                             criteria=match_criteria(rest))
        if name == "Include":
            return Directive(path, number, made.keyword, name, args, rest, userconf=userconf,
                             included=self.include(made, userconf, depth))
        if name is None:
            return made
        try:
            value = KEYWORDS[name](args, rest)
            if name == "ProxyJump":
                value = jump_hops(value)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
        if name == "IgnoreUnknown":
            self.ignore_patterns.append(value)
        return Directive(path, number, made.keyword, name, args, rest, value, userconf)

    def include(self, line: Directive, userconf: bool, depth: int) -> tuple:
        files = []
        for pattern in line.args:
            if pattern == "":
                raise ValueError("Include: empty argument")
            if pattern.startswith("~") and not userconf:
                raise ValueError(f"Include: bad include path {pattern} (no ~ in the system file)")
            if not pattern.startswith(("/", "~")):
                pattern = ("~/.ssh/" if userconf else "/etc/ssh/") + pattern
            if pattern.startswith("~") and not os.environ.get("HOME"):
                pattern = expand_home(pattern)     # glibc's GLOB_TILDE: $HOME, else passwd
            for path in sorted(glob.glob(os.path.expanduser(pattern))):
                files.append(self.read(path, userconf, True, depth + 1, line.where))
        return tuple(files)


def jump_hops(text: str) -> tuple[str, ...]:
    """'a,ann@b:22' -> ('a', 'ann@b:22'); ('none',) for none; every hop checked."""
    if text.lower() == "none":
        return ("none",)
    hops = tuple(text.split("#")[0].rstrip(WHITESPACE).split(","))
    for hop in hops:
        parse_hop(hop)
    return hops


# --- matching ----------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4096)
def _pattern(pattern: str) -> re.Pattern:
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern),
                      re.DOTALL)


def match_pattern(text: str, pattern: str) -> bool:
    """OpenSSH's match_pattern(): '*' and '?' wildcards, case-sensitive."""
    return _pattern(pattern).fullmatch(text) is not None


def match_pattern_list(text: str, patterns: str, dolower: bool) -> int:
    """'web*,!web3' -> 1 on a positive match, -1 when a negated pattern matches, 0 otherwise."""
    found, parts = 0, patterns.split(",")
    for pattern in parts[:-1] if len(parts) > 1 and parts[-1] == "" else parts:
        negated = pattern.startswith("!")
        pattern = pattern[1:] if negated else pattern
        if match_pattern(text, lowercase(pattern) if dolower else pattern):
            if negated:
                return -1
            found = 1
    return found
