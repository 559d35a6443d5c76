"""How to reach one host, read from its merged Ansible variables as Ansible and OpenSSH would.

Ansible's ssh connection builds one ``ssh`` command line: ``ansible_ssh_args``, then
``-o Port=`` (ansible_port), ``-o IdentityFile=`` (the private key), ``-o User=`` (ansible_user),
then ``ansible_ssh_common_args`` and ``ansible_ssh_extra_args``. OpenSSH keeps the *first* value
of each option (identity files add up), so ``ansible_port`` beats a ``-o Port`` in the common
args, and a ProxyCommand and a ProxyJump compete: the first one written wins. The same order
and rule are applied here, so a host is reached where Ansible would reach it:

    h1 ansible_port=2222 ansible_ssh_common_args='-o Port=22 -J ops@bastion'
      -> Host(port=2222, proxy_jump='ops@bastion')

Variables that would change the connection but that rstfleet does not honour (passwords,
other become methods, host key checking off, ...) are collected in ``Unsupported`` and named in
one warning, never dropped silently.
"""
from __future__ import annotations

import re
import shlex
from functools import lru_cache

from .model import Host, InventoryError

_TRUE = {"y", "yes", "on", "1", "true", "t"}  # Ansible's BOOLEANS_TRUE
_SSH_CONNECTIONS = {"ssh", "paramiko", "paramiko_ssh", "smart"}
_AUTO_PYTHON = {"auto", "auto_silent", "auto_legacy", "auto_legacy_silent"}  # discovery: python3 from PATH

# Variables that change how a host is reached and that rstfleet refuses, with the reason shown.
_REFUSED_VARS = {
    "ansible_password": "rstfleet logs in with keys and the SSH agent only; passwords are never taken "
                        "from inventories",
    "ansible_ssh_pass": "rstfleet logs in with keys and the SSH agent only; passwords are never taken "
                        "from inventories",
    "ansible_ssh_password": "rstfleet logs in with keys and the SSH agent only; passwords are never taken "
                            "from inventories",
    "ansible_become_password": "the sudo password is asked once with -K, never read from inventories",
    "ansible_become_pass": "the sudo password is asked once with -K, never read from inventories",
    "ansible_private_key": "give the key as a file (ansible_ssh_private_key_file)",
    "ansible_ssh_private_key": "give the key as a file (ansible_ssh_private_key_file)",
    "ansible_private_key_passphrase": "load passphrase-protected keys into ssh-agent",
    "ansible_ssh_private_key_passphrase": "load passphrase-protected keys into ssh-agent",
    "ansible_ssh_executable": "rstfleet speaks SSH itself (paramiko); no ssh binary is run",
    "ansible_ssh_pkcs11_provider": "PKCS#11 tokens are not supported; use ssh-agent",
    "ansible_become_exe": "rstfleet runs sudo from PATH",
    "ansible_become_flags": "rstfleet runs sudo with its own flags",
    "ansible_ssh_timeout": "the connect timeout is --connect-timeout",
    "ansible_timeout": "the connect timeout is --connect-timeout",
}
_HOST_KEY_VARS = ("ansible_host_key_checking", "ansible_ssh_host_key_checking")
_SSH_ARG_VARS = ("ansible_ssh_args", "ansible_ssh_common_args", "ansible_ssh_extra_args")

# ssh options that change nothing a sweep relies on (multiplexing, keepalives, logging, ...).
_HARMLESS_OPTIONS = {
    "controlmaster", "controlpersist", "controlpath", "compression", "serveraliveinterval",
    "serveralivecountmax", "tcpkeepalive", "loglevel", "batchmode", "preferredauthentications",
    "passwordauthentication", "kbdinteractiveauthentication", "challengeresponseauthentication",
    "gssapiauthentication", "gssapidelegatecredentials", "pubkeyauthentication", "connecttimeout",
    "connectionattempts", "forwardagent", "forwardx11", "forwardx11trusted", "requesttty",
    "identitiesonly", "hashknownhosts", "checkhostip", "visualhostkey", "updatehostkeys", "escapechar",
    "sendenv", "setenv", "exitonforwardfailure", "addkeystoagent",
}
_HARMLESS_FLAGS = set("CqvTtAaxXYneESOMkKgNfs")
_FLAG_OPTIONS = {"p": "port", "l": "user", "i": "identityfile", "J": "-J"}
_ARG_FLAGS = set("bceilmopBDEFIJLOPQRSwW")  # OpenSSH's getopt letters that take an argument


class Unsupported:
    """Connection settings an inventory asks for that rstfleet does not honour, by setting."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], list[str]] = {}

    def note(self, host: str, what: str, why: str) -> None:
        self.seen.setdefault((what, why), []).append(host)

    def warnings(self, source: str) -> list[str]:
        """One warning for the whole inventory: every setting, how many hosts, one example."""
        if not self.seen:
            return []
        parts = [f"{what} on {len(hosts)} host(s), e.g. {hosts[0]} ({why})"
                 for (what, why), hosts in self.seen.items()]
        return [f"{source}: not honoured: " + "; ".join(parts)]


_HONOURED = ("port", "user", "identityfile", "userknownhostsfile", "proxycommand", "proxyjump", "-J")
_NOT_HONOURED = "not honoured by rstfleet's SSH"
_PROXIES = {"proxycommand", "proxyjump", "-J"}


def host_from_vars(name: str, merged: dict, groups: tuple[str, ...], unsupported: Unsupported) -> Host:
    """Interpret the variables an SSH sweep needs; reject values it cannot honour (file:line)."""

    def text(*keys: str) -> str | None:
        """The first key set (the ``ansible_ssh_*`` spelling wins, as in Ansible)."""
        for key in keys:
            if key in merged and merged[key][0] is not None:
                value, where = merged[key]
                if isinstance(value, (dict, list, bool)):
                    raise InventoryError(f"{where}: {key} of host {name} must be a string, got {value!r}")
                return _rendered(str(value).strip(), key, where, name, merged)
        return None

    connection = text("ansible_connection") or "ssh"
    plugin = re.sub(r"^ansible\.(builtin|legacy)\.", "", connection)
    if plugin != "local" and plugin not in _SSH_CONNECTIONS:
        raise InventoryError(f"{merged['ansible_connection'][1]}: ansible_connection {connection!r} of host "
                             f"{name} is not supported (use ssh or local)")
    _note_refused(name, merged, unsupported)
    port_key = next((k for k in ("ansible_ssh_port", "ansible_port") if merged.get(k, (None,))[0] is not None), None)
    if port_key:
        _port_number(merged[port_key][0], merged[port_key][1], f"{port_key} of host {name}")
    chosen: dict[str, tuple[str, str | None, str]] = {}  # option -> (value, where, variable)
    identities: list[str] = []
    key_var = next((k for k in ("ansible_ssh_private_key_file", "ansible_private_key_file") if text(k)), None)
    user_var = next((k for k in ("ansible_ssh_user", "ansible_user") if text(k)), None)
    # Ansible's ssh command line, in its order; OpenSSH keeps the first value of each option.
    for var, option in (("ansible_ssh_args", None), (port_key, "port"), (key_var, "identityfile"),
                        (user_var, "user"), ("ansible_ssh_common_args", None), ("ansible_ssh_extra_args", None)):
        if var is None:
            continue
        try:
            pairs = [(option, text(var))] if option else _ssh_options(text(var) or "")
        except ValueError as exc:
            raise InventoryError(f"{merged[var][1]}: {var} of host {name}: {exc}") from None
        where = merged.get(var, (None, None))[1]
        for found, value in pairs:
            if found == "identityfile":
                identities.append(value)
            elif found in _HONOURED:
                _first_wins(chosen, found, (value, where, var), name)
            else:
                unsupported.note(name, f"{found} in {var}", value or _NOT_HONOURED)
    port = None
    if "port" in chosen:
        value, where, var = chosen["port"]
        port = _port_number(value, where, f"Port in {var} of host {name}")
    known = _words(chosen["userknownhostsfile"][0]) if "userknownhostsfile" in chosen else ()
    if len(known) > 1:
        unsupported.note(name, "a second UserKnownHostsFile", "only the first file is read")
    if len(identities) > 1:
        unsupported.note(name, "a second IdentityFile", "one key per host; the first is used")
    become = merged.get("ansible_become", (False, None))[0]

    def option(key: str) -> str | None:
        return chosen[key][0] if key in chosen else None

    return Host(
        name=name,
        address=text("ansible_ssh_host", "ansible_host") or name,
        port=port,
        user=option("user"),
        key_file=identities[0] if identities else None,
        become=str(become).strip().lower() in _TRUE,  # True, 1 and Ansible's truthy strings
        connection="local" if plugin == "local" else "ssh",
        known_hosts_file=known[0] if known else None,
        proxy_command=option("proxycommand"),
        proxy_jump=option("proxyjump") or option("-J"),
        python=_python(name, text("ansible_python_interpreter"), merged),
        groups=groups,
        vars={key: value for key, (value, _) in merged.items()},
        places={key: where for key, (_, where) in merged.items() if where},
    )


_VARIABLE_REFERENCE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def _rendered(value: str, key: str, where: str, name: str, merged: dict, depth: int = 0) -> str:
    """``{{ name }}`` references to the host's own variables (and inventory_hostname) filled in,
    as Ansible would at connection time; anything else Jinja can do is refused, not guessed.

        ansible_host: "{{ inventory_hostname }}.lab"  ->  web1.lab
    """
    if "{{" not in value and "{%" not in value:
        return value
    magic = {"inventory_hostname": name, "inventory_hostname_short": name.split(".")[0]}

    def fill(match: re.Match) -> str:
        variable = match.group(1)
        if variable in magic:
            return magic[variable]
        if variable not in merged or isinstance(merged[variable][0], (dict, list)) or depth > 8:
            raise InventoryError(f"{where}: {key} of host {name} uses {{{{ {variable} }}}}, which is not a "
                                 "plain variable of the host (or refers back to itself)")
        return _rendered(str(merged[variable][0]), key, where, name, merged, depth + 1)

    filled = _VARIABLE_REFERENCE.sub(fill, value)
    if "{{" in filled or "{%" in filled:
        raise InventoryError(f"{where}: {key} of host {name} is a Jinja template rstfleet cannot evaluate "
                             f"({value!r}); only {{{{ variable }}}} references are filled in")
    return filled


def _first_wins(chosen: dict, option: str, value: tuple, name: str) -> None:
    """OpenSSH's rule for the command line: the first value of an option is the one used;
    ProxyCommand and ProxyJump compete for one slot; ssh itself refuses -J after either."""
    if option in _PROXIES:
        if option == "-J" and _PROXIES & chosen.keys():
            raise InventoryError(f"{value[1]}: {value[2]} of host {name}: ssh refuses -J after a "
                                 "ProxyCommand, a ProxyJump or another -J")
        if not _PROXIES & chosen.keys():
            chosen[option] = value
        return
    chosen.setdefault(option, value)


def _port_number(value: object, where: str | None, what: str) -> int:
    text = str(value).strip()
    if isinstance(value, bool) or not re.fullmatch(r"[0-9]{1,5}", text) or not 0 < int(text) < 65536:
        raise InventoryError(f"{where or 'inventory'}: {what} must be an integer port, got {value!r}")
    return int(text)


def _python(name: str, value: str | None, merged: dict) -> str | None:
    """ansible_python_interpreter: a path or command runs the probe; 'auto*' means python3 from PATH."""
    if value is None or value.strip() in _AUTO_PYTHON:
        return None
    if not value.strip() or re.search(r"\s", value.strip()):
        raise InventoryError(f"{merged['ansible_python_interpreter'][1]}: ansible_python_interpreter of host "
                             f"{name} must be one program (a path or a name on PATH), got {value!r}")
    return value.strip()


def _note_refused(name: str, merged: dict, unsupported: Unsupported) -> None:
    for key, why in _REFUSED_VARS.items():
        if key in merged and merged[key][0] not in (None, ""):
            unsupported.note(name, key, why)
    for key in _HOST_KEY_VARS:
        if key in merged and str(merged[key][0]).strip().lower() not in _TRUE:
            unsupported.note(name, f"{key}={merged[key][0]}", "host keys are always verified; "
                                                              "--accept-new-host-keys records new ones")
    method = merged.get("ansible_become_method", ("sudo", None))[0]
    if str(method) not in ("sudo", "ansible.builtin.sudo"):
        unsupported.note(name, f"ansible_become_method={method}", "rstfleet becomes root with sudo only")
    user = merged.get("ansible_become_user", ("root", None))[0]
    if str(user) != "root":
        unsupported.note(name, f"ansible_become_user={user}", "the probe needs root; rstfleet becomes root only")


@lru_cache(maxsize=4096)
def _words(value: str) -> tuple[str, ...]:
    return tuple(shlex.split(value))


@lru_cache(maxsize=4096)
def _ssh_options(args: str) -> tuple[tuple[str, str], ...]:
    """ssh arguments -> ((option, value), ...) in order; honoured options lower-case as in
    ssh_config ('port', 'proxyjump', '-J', ...), others as (label, why), harmless ones dropped.
    ValueError for a broken quote.

        '-p 2222 -o StrictHostKeyChecking=no' -> (('port', '2222'),
            ('-o StrictHostKeyChecking=no', 'host keys are always verified; ...'))
    """
    tokens = [t for t in shlex.split(args) if t.strip()]  # Ansible's _split_ssh_args
    found: list[tuple[str, str]] = []
    i = 0
    while i < len(tokens):
        token, i = tokens[i], i + 1
        if not token.startswith("-") or token == "-":
            found.append((f"argument {token!r}", _NOT_HONOURED))
            continue
        for at, letter in enumerate(token[1:], start=1):
            if letter not in _ARG_FLAGS:
                if letter not in _HARMLESS_FLAGS:
                    found.append((f"-{letter}", _NOT_HONOURED))
                continue
            value = token[at + 1:]
            if not value and i < len(tokens):
                value, i = tokens[i], i + 1
            if letter == "o":
                key, value = re.match(r"\s*([^=\s]*)[=\s]*(.*)", value, re.S).groups()
                if not value and i < len(tokens):  # '-o Key Value' as two words: read leniently
                    value, i = tokens[i], i + 1
                found.extend(_config_option(key.lower(), key, value.strip()))
            elif letter in _FLAG_OPTIONS:
                found.append((_FLAG_OPTIONS[letter], value))
            else:
                found.append((f"-{letter}", _NOT_HONOURED))
            break
    return tuple(found)


def _config_option(key: str, written: str, value: str) -> list[tuple[str, str]]:
    """One ``-o Key=Value`` as an (option, value) pair, a (label, why) pair, or nothing."""
    if key in ("port", "user", "identityfile", "proxyjump"):
        words = _words(value)  # ssh's own argument split: quotes group, the first word counts
        return [(key, words[0] if words else "")]
    if key in ("proxycommand", "userknownhostsfile"):
        return [(key, value)]
    if key == "stricthostkeychecking":
        if value.lower() in ("yes", "ask", "true"):
            return []
        return [(f"-o StrictHostKeyChecking={value}", "host keys are always verified; "
                                                      "--accept-new-host-keys records new ones")]
    return [] if key in _HARMLESS_OPTIONS else [(f"-o {written}", _NOT_HONOURED)]
