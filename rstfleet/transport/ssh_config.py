"""OpenSSH's client configuration, resolved for one destination the way `ssh -G HOST` does.

paramiko's SSHConfig differs from OpenSSH (Match, tokens, which value wins), so ~/.ssh/config
would mean one thing to ssh and another to rstfleet.  This resolver follows OpenSSH 9.2 (readconf.c,
ssh.c); tests/unit/test_ssh_config.py compares it field by field with the real `ssh -G` over
tests/fixtures/ssh_config/.

    config = load_client_config(None)       # ~/.ssh/config, then /etc/ssh/ssh_config
    config.resolve("web1").port              # -> 2222 when a `Host web*` block says so

Kept from OpenSSH: Host and Match blocks (host, originalhost, user, localuser, all, canonical,
final, with a second pass for `final`); the first obtained value wins (IdentityFile and
CertificateFile accumulate, a known-hosts line sets all its files); ProxyJump hops and
ProxyCommand exclude each other, the first one wins; `%` tokens where OpenSSH expands them (HostName: %h;
UserKnownHostsFile, IdentityFile, CertificateFile: %C %d %h %i %k %L %l %n %p %r %u and ${VAR};
ProxyCommand: %h %k %n %p %r; User, HostKeyAlias, GlobalKnownHostsFile: none, in 9.2); `~` from
the passwd entry.  Refused: `Match exec` (it would run a command per host): its block is not
applied and the run's one warning says so.  Not done: CanonicalizeHostname's DNS lookups (warned).
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from dataclasses import dataclass, field
from typing import Iterable

from .ssh_config_file import (ConfigError, ConfigFile, Directive, _Reader, expand_home, local_user,
                              lowercase, match_pattern, match_pattern_list, user_home)
from .ssh_keywords import needs_warning

__all__ = ["ConfigError", "ClientConfig", "ResolvedHost", "load_client_config", "unhonoured_warning",
           "expand_home", "user_home"]

SYSTEM_CONFIG = "/etc/ssh/ssh_config"
MAX_KEY_FILES = 100                  # SSH_MAX_IDENTITY_FILES, SSH_MAX_CERTIFICATE_FILES
DEFAULT_IDENTITIES = tuple(f"~/.ssh/{name}" for name in (
    "id_rsa", "id_ecdsa", "id_ecdsa_sk", "id_ed25519", "id_ed25519_sk", "id_xmss", "id_dsa"))
DEFAULT_USER_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
DEFAULT_GLOBAL_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")
STRICT = {"yes": "true", "true": "true", "no": "false", "false": "false", "off": "false",
          "ask": "ask", "accept-new": "accept-new"}          # as ssh -G prints them


@dataclass(frozen=True)
class ResolvedHost:
    """What OpenSSH would use for one destination, each field as `ssh -G` prints it."""
    host_arg: str                              # the destination as given (%n)
    hostname: str                              # after HostName and %h, lowercased unless an address
    port: int
    user: str
    identity_files: tuple[str, ...]            # as written; ssh -G prints them unexpanded
    certificate_files: tuple[str, ...]
    identities_only: bool
    user_known_hosts_files: tuple[str, ...]    # expanded, as ssh -G prints them; () for none
    global_known_hosts_files: tuple[str, ...]
    host_key_alias: str | None
    strict_host_key_checking: str              # true | false | ask | accept-new
    connect_timeout: int | None                # seconds; None: `none`, the system's TCP timeout
    batch_mode: bool
    proxy_jump: tuple[str, ...]                # hops as written; () for none
    proxy_command: str | None                  # as written; None for none
    unhonoured: tuple[str, ...] = ()           # 'ForwardAgent yes (/home/ann/.ssh/config:4)'
    tokens: dict = field(default_factory=dict, compare=False, repr=False)
    sources: dict = field(default_factory=dict, compare=False, repr=False)   # key -> (value, Directive)

    def identity_paths(self) -> tuple[str, ...]:
        """IdentityFile as ssh opens them: ~ from passwd, then tokens and ${VAR}; `none` dropped."""
        return tuple(self.expand_path(p, "IdentityFile") for p in self.identity_files
                     if p.lower() != "none")

    def certificate_paths(self) -> tuple[str, ...]:
        return tuple(self.expand_path(p, "CertificateFile") for p in self.certificate_files)

    def expand_path(self, path: str, name: str) -> str:
        return _expand_path(path, name, self.tokens, self.sources)

    def expanded_proxy_command(self, command: str | None = None, hostname: str | None = None,
                               port: int | None = None, user: str | None = None) -> str:
        """A ProxyCommand's tokens expanded as ssh does before running `exec COMMAND` in $SHELL."""
        command = self.proxy_command if command is None else command
        tokens = {"h": hostname or self.hostname, "n": self.host_arg, "p": str(port or self.port),
                  "r": user or self.user, "k": self.tokens["k"]}
        try:
            return percent_expand(command, tokens)
        except ValueError as exc:
            raise ConfigError(f"{_source(self.sources, 'ProxyCommand', 'ProxyCommand')}: ProxyCommand: "
                              f"{exc}") from None


def _expand_path(path: str, name: str, tokens: dict[str, str], sources: dict) -> str:
    try:
        return percent_expand(expand_home(path), tokens, environment=True)
    except ValueError as exc:
        where = _source(sources, path) or _source(sources, name, "ssh_config")
        raise ConfigError(f"{where}: {name} {path}: {exc}") from None


def _source(sources: dict, key: str, default: str | None = None) -> str | None:
    """The file:line that set key (a keyword, or an IdentityFile or CertificateFile path): looked
    up only for an error message, so a resolution keeps the lines and names none of them."""
    where = {name.partition(":")[2] or name: line.where for name, (_, line) in sources.items()
             if line is not None}
    return where.get(key, default)


class ClientConfig:
    """The files ssh would read, checked; resolve() answers for one destination."""

    def __init__(self, files: tuple[ConfigFile, ...], source: str | None):
        self.files = files
        self.source = source          # None: OpenSSH's default files; else what `ssh -F` takes

    def resolve(self, host_arg: str) -> ResolvedHost:
        return _Resolution(self.files, host_arg).result()


def load_client_config(path: str | None, system_path: str = SYSTEM_CONFIG) -> ClientConfig:
    """None: OpenSSH's defaults, ~/.ssh/config (passwd home, if present) then the system file.
    'none': no file at all.  A path: that file only, as `ssh -F PATH` reads it; it must exist."""
    reader = _Reader()
    if path is None:
        user_file = os.path.join(user_home(), ".ssh", "config")
        return ClientConfig(tuple(reader.read(p, user, user) for p, user in
                                  ((user_file, True), (system_path, False)) if os.path.exists(p)), None)
    if path == "none":
        return ClientConfig((), "none")
    try:
        full = expand_home(path)
    except ValueError as exc:
        raise ConfigError(f"--ssh-config: {exc}") from None
    if not os.path.exists(full):
        raise ConfigError(f"--ssh-config: {path}: no such file")
    if os.path.isdir(full):
        raise ConfigError(f"--ssh-config: {path}: is a directory, not a config file")
    return ClientConfig((reader.read(full, True, False),), full)


def unhonoured_warning(resolved: Iterable[ResolvedHost]) -> str | None:
    """One sentence for the whole run naming every directive rstfleet did not follow."""
    named = list(dict.fromkeys(item for host in resolved for item in host.unhonoured))
    if not named:
        return None
    return (f"ssh_config directives rstfleet does not follow (the connection differs from ssh's "
            f"for the hosts they apply to; see docs/ssh.md): {', '.join(named)}")


_NOT_NUMERIC = re.compile(r"[^:\s]*[^0-9a-fA-FxX.:\s][^:\s]*")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED_QUAD = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}")


def is_address(name: str) -> bool:
    """A numeric IPv4 (inet_aton's forms: '127.1', '0x7f.1') or IPv6 address, as getaddrinfo's
    AI_NUMERICHOST reads it.  A name with a character no such form holds (and no ':' or blank),
    and a plain dotted quad, are answered without the call (~10-20 µs a host at 10,000)."""
    if _NOT_NUMERIC.fullmatch(name):
        return False
    if _DOTTED_QUAD.fullmatch(name):
        return True
    try:
        socket.getaddrinfo(name, None, flags=socket.AI_NUMERICHOST)
        return True
    except (socket.gaierror, UnicodeError, ValueError):
        return False


_TOKEN = re.compile(r"%(.?)", re.DOTALL)
_TOKEN_OR_VARIABLE = re.compile(r"\$\{([^}]*)(\}?)|%(.?)", re.DOTALL)


def percent_expand(text: str, tokens: dict[str, str], environment: bool = False) -> str:
    """'%d/.ssh/kh_%h' with {'d': '/root', 'h': 'web1'} -> '/root/.ssh/kh_web1'; '%%' is '%';
    '${VAR}' from the environment when asked; ValueError on an unknown token or unset variable.
    Left to right, each token or variable once: what it expands to is not read again."""
    if "%" not in text and not (environment and "${" in text):
        return text                      # most paths: ~/.ssh/id_rsa, /etc/ssh/ssh_known_hosts

    def one(found: re.Match) -> str:
        if environment and found.group(0).startswith("${"):
            name = found.group(1)
            if not found.group(2) or not name:
                raise ValueError(f"bad environment variable reference in {text!r}")
            if name not in os.environ:
                raise ValueError(f"environment variable ${{{name}}} is not set")
            return os.environ[name]
        token = found.group(found.lastindex)
        if token != "%" and token not in tokens:
            raise ValueError(f"unknown token %{token} (here: %{' %'.join(sorted(tokens))})")
        return "%" if token == "%" else tokens[token]

    return (_TOKEN_OR_VARIABLE if environment else _TOKEN).sub(one, text)


class _Resolution:
    """One destination through every file, once or twice (Match final), as ssh.c does."""

    def __init__(self, files: tuple[ConfigFile, ...], host_arg: str):
        self.files, self.host_arg = files, host_arg
        self.values: dict[str, tuple[object, Directive]] = {}
        self.keys: dict[str, list[tuple[str, bool]]] = {"IdentityFile": [], "CertificateFile": []}
        self.obtained: dict[str, Directive] = {}
        self.refused: list[str] = []
        self.want_final = False
        self.final_hostname: str | None = None
        self.local_user = local_user()

    def value(self, name: str, default=None):
        return self.values[name][0] if name in self.values else default

    def read(self, directives: tuple[Directive, ...], host: str, final: bool, active: bool,
             parse_only: bool) -> None:
        for line in directives:
            if line.name == "Host":
                active = not parse_only and _match_host_line(host, line.args)
            elif line.name == "Match":
                active = self.match(line, host, final, parse_only) and not parse_only
            elif line.name == "Include":
                for included in line.included:      # each starts with, and cannot change, ours
                    self.read(included.directives, host, final, active, parse_only or not active)
            elif line.name is None:
                self.unknown(line)
            elif active:
                self.obtain(line)

    def unknown(self, line: Directive) -> None:
        """A keyword OpenSSH does not know passes only under an IgnoreUnknown obtained before it."""
        patterns = self.value("IgnoreUnknown")
        if patterns is None or match_pattern_list(line.keyword, patterns, True) != 1:
            raise ConfigError(f"{line.where}: unknown keyword {line.keyword!r} (OpenSSH refuses it "
                              f"too; an IgnoreUnknown that applies before it makes both skip it)")

    def obtain(self, line: Directive) -> None:
        name = line.name
        self.obtained.setdefault(name, line)
        if name in self.keys:
            entry = (line.value, line.userconf)
            if entry not in self.keys[name]:
                if len(self.keys[name]) >= MAX_KEY_FILES:
                    raise ConfigError(f"{line.where}: {name}: more than {MAX_KEY_FILES} files")
                self.keys[name].append(entry)
                self.values.setdefault(f"{name}:{line.value}", (line.value, line))
        elif name == "ProxyJump":
            # Hops take the ProxyCommand slot; `none` only stops later ProxyJumps (OpenSSH since
            # 2026-03, in Debian's 9.2p1-2+deb12u10: the oracle here).
            if line.value == ("none",) or "ProxyCommand" not in self.values:
                if self.values.setdefault(name, (line.value, line))[1] is line and line.value != ("none",):
                    self.values.setdefault("ProxyCommand", ("none", line))
        elif line.value is not None:         # `ConnectTimeout none` leaves it unset, as in ssh
            self.values.setdefault(name, (line.value, line))

    def match(self, line: Directive, host: str, final: bool, parse_only: bool) -> bool:
        """match_cfg_line(): every criterion is evaluated; `exec` is refused, never run."""
        if final:
            target = self.final_hostname
        elif "HostName" in self.values:
            target = self.hostname_from(host)
        else:
            target = host
        user = self.value("User") or self.local_user
        result = True
        for negate, attribute, argument in line.criteria:
            if attribute == "all":
                return result and not negate
            if attribute in ("canonical", "final"):
                self.want_final |= attribute == "final"
                matched = final
            elif attribute == "exec":
                if result and not parse_only:
                    self.refused.append(f"Match exec ({line.where}: not run; its block is not applied)")
                result = False
                continue
            elif attribute in ("host", "originalhost"):
                name = target if attribute == "host" else self.host_arg
                matched = match_pattern_list(lowercase(name), argument, True) == 1
            else:
                name = user if attribute == "user" else self.local_user
                matched = match_pattern_list(name, argument, False) == 1
            if matched == negate:
                result = False
        return result

    def hostname_from(self, host: str) -> str:
        raw, line = self.values["HostName"]
        try:
            return percent_expand(raw, {"h": host})
        except ValueError as exc:
            raise ConfigError(f"{line.where}: HostName {raw}: {exc}") from None

    def passes(self) -> str:
        for config in self.files:
            self.read(config.directives, self.host_arg, False, True, False)
        hostname = self.hostname_from(self.host_arg) if "HostName" in self.values else self.host_arg
        hostname = hostname if is_address(hostname) else lowercase(hostname)
        if self.want_final or self.value("CanonicalizeHostname", "no") not in ("no", "false"):
            self.final_hostname = hostname
            self.values["HostName"] = (hostname, self.values.get("HostName", (None, None))[1])
            for config in self.files:
                self.read(config.directives, hostname, True, True, False)
        return hostname

    def result(self) -> ResolvedHost:
        hostname = self.passes()
        port = self.value("Port") or 22
        user = self.value("User") or self.local_user
        alias = self.value("HostKeyAlias")
        alias = lowercase(alias) if alias else None
        thishost = socket.gethostname()
        tokens = {"C": hashlib.sha1(f"{thishost}{hostname}{port}{user}".encode()).hexdigest(),
                  "L": thishost.split(".")[0], "i": str(os.getuid()), "k": alias or self.host_arg,
                  "l": thishost, "n": self.host_arg, "p": str(port), "d": user_home(), "h": hostname,
                  "r": user, "u": self.local_user}
        jump = self.value("ProxyJump", ("none",))
        proxy = self.value("ProxyCommand")
        user_files = _known_hosts(self.value("UserKnownHostsFile"), DEFAULT_USER_KNOWN_HOSTS)
        return ResolvedHost(
            self.host_arg, hostname, port, user,
            tuple(p for p, _ in self.keys["IdentityFile"]) or DEFAULT_IDENTITIES,
            tuple(p for p, _ in self.keys["CertificateFile"]),
            self.value("IdentitiesOnly") in ("yes", "true"),
            tuple(_expand_path(p, "UserKnownHostsFile", tokens, self.values) for p in user_files),
            _known_hosts(self.value("GlobalKnownHostsFile"), DEFAULT_GLOBAL_KNOWN_HOSTS),
            alias, STRICT[self.value("StrictHostKeyChecking", "ask")], self.value("ConnectTimeout"),
            self.value("BatchMode") in ("yes", "true"), () if jump == ("none",) else jump,
            None if proxy is None or proxy.lower() == "none" else proxy,
            tuple(self.refused) + self.unhonoured(), tokens, self.values)

    def unhonoured(self) -> tuple[str, ...]:
        named = []
        for name, line in self.obtained.items():
            if needs_warning(name, line.value if line.value is not None else line.args):
                shown = " ".join(line.args)
                named.append(f"{name} {shown[:40] + '…' if len(shown) > 40 else shown} ({line.where})")
        return tuple(named)


def _match_host_line(host: str, patterns: tuple[str, ...]) -> bool:
    """A Host line: some pattern matches and no negated one does (no comma lists here)."""
    active = False
    for pattern in patterns:
        if pattern.startswith("!"):
            if match_pattern(host, pattern[1:]):
                return False
        elif match_pattern(host, pattern):
            active = True
    return active


def _known_hosts(files: tuple[str, ...] | None, default: tuple[str, ...]) -> tuple[str, ...]:
    if files is None:
        return default
    return () if files[0].lower() == "none" else files
