"""Where, as whom and through what rstfleet connects to one host: the inventory, the command line
and ssh_config merged into an SSHTarget, and the whole fleet's checked before the first connection.

Precedence, as Ansible (whose variables become ssh options) and ssh (first value wins) give it:
inventory host variables (ansible_port, ansible_user, ansible_ssh_private_key_file, and
UserKnownHostsFile / ProxyCommand / ProxyJump in ansible_ssh_*_args), then the command line (-u,
--private-key, --known-hosts, --connect-timeout, --accept-new-host-keys), then ssh_config, then
OpenSSH's defaults.  Kept apart from ssh.py so the preflight needs no paramiko.

The Plan's preflight (checked_settings) resolves every host once and keeps the targets in the
SSHSettings it returns; the transports made from those settings connect with exactly what was
checked instead of resolving 10,000 hosts a second time (docs/benchmarks.md).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable

from . import SSHSettings, chosen_engine
from ..probe.host.limits import ASYNCSSH_FROM_HOSTS, PARAMIKO_MAX_SESSIONS
from ..inventory import Host
from ..textsafe import printable
from .ssh_config import (ClientConfig, ConfigError, ResolvedHost, expand_home, load_client_config,
                         unhonoured_warning)
from .ssh_config_file import parse_hop


@dataclass
class SSHTarget:
    """One host's connection plan (docs/ssh.md says where each field comes from)."""
    hostname: str
    port: int
    user: str
    key_files: list[str]
    known_hosts_files: list[str]
    proxy_command: str | None = None       # a shell command, tokens expanded; run as `exec COMMAND`
    proxy_jump: tuple[str, ...] = ()       # the hops as written, first hop first (jump.py)
    host_key_alias: str | None = None      # the name to look up in known_hosts instead of hostname
    strict_host_key_checking: str = "ask"  # as ssh -G prints it: true | false | ask | accept-new
    identities_only: bool = False
    connect_timeout: float | None = None   # seconds, None: the run's --connect-timeout
    global_known_hosts_files: list[str] = field(default_factory=list)


def resolve_target(host: Host, settings: SSHSettings, config: ClientConfig | None) -> SSHTarget:
    """ssh_config resolved for the inventory address (what Ansible passes to ssh), then the
    inventory and the command line laid over it.  The target the preflight resolved for this
    host and these settings, when they carry one (config then is the same file, read earlier)."""
    checked = settings.targets.get((host, _inputs(settings)))
    if checked is not None:
        return checked
    config = config or ClientConfig((), "none")
    return _target(host, settings, config.resolve(host.address))


def _inputs(settings: SSHSettings) -> tuple:
    """What of the settings a target depends on: settings changed after the preflight (another
    user, key or ssh_config) find no target of its and are resolved afresh."""
    return (settings.user, settings.key_file, settings.known_hosts_files, settings.connect_timeout,
            settings.connect_timeout_given, settings.ssh_config_path)


def _target(host: Host, settings: SSHSettings, resolved: ResolvedHost,
            exists: Callable[[str], bool] = os.path.exists) -> SSHTarget:
    port = host.port or resolved.port
    user = host.user or settings.user or resolved.user
    # OpenSSH skips configured identities that are not there; --private-key and the inventory's
    # key are checked with the other local inputs.
    keys = [k for k in (host.key_file, settings.key_file) if k]
    keys += [k for k in resolved.identity_paths() if exists(k)]
    known = [k for k in (host.known_hosts_file,) if k] + list(settings.known_hosts_files)
    timeout = resolved.connect_timeout if not settings.connect_timeout_given else None
    target = SSHTarget(
        resolved.hostname, port, user, [expand(k) for k in keys],
        [expand(k) for k in known] or list(resolved.user_known_hosts_files),
        host_key_alias=resolved.host_key_alias,
        strict_host_key_checking=resolved.strict_host_key_checking,
        identities_only=resolved.identities_only,
        connect_timeout=float(timeout) if timeout else settings.connect_timeout,
        global_known_hosts_files=list(resolved.global_known_hosts_files))
    command, target.proxy_jump = _proxy(host, resolved)
    if command:
        target.proxy_command = resolved.expanded_proxy_command(command, target.hostname, port, user)
    return target


def hop_host(hop: str) -> Host:
    """A ProxyJump hop as the Host `ssh -l USER -p PORT HOST` would reach: the hop's own user and
    port, the rest from ssh_config for HOST's name and the command line (resolve_target)."""
    user, name, port = parse_hop(hop)
    return Host(name=name, address=name, port=port, user=user)


def expand(path: str) -> str:
    try:
        return expand_home(path)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _proxy(host: Host, resolved: ResolvedHost) -> tuple[str | None, tuple[str, ...]]:
    """The inventory's ProxyCommand or ProxyJump wins over ssh_config's (its ProxyCommand first
    when it gives both); `none` in the inventory means a direct connection."""
    if host.proxy_command is not None or host.proxy_jump is not None:
        if host.proxy_command is not None:
            return (None if host.proxy_command.lower() == "none" else host.proxy_command), ()
        if host.proxy_jump.lower() == "none":
            return None, ()
        hops = tuple(host.proxy_jump.split(","))
        for hop in hops:
            try:
                parse_hop(hop)
            except ValueError as exc:
                raise ConfigError(f"host {host.name}: ProxyJump: {exc}") from None
        return None, hops
    return resolved.proxy_command, resolved.proxy_jump


def preflight(settings: SSHSettings, hosts: Iterable[Host]) -> tuple[str, ...]:
    """checked_settings' warnings alone."""
    return checked_settings(settings, hosts)[1]


def checked_settings(settings: SSHSettings, hosts: Iterable[Host]) -> tuple[SSHSettings, tuple[str, ...]]:
    """Every SSH host's target, and its jump hosts', resolved before any connection: a bad
    ssh_config line, an explicit --ssh-config that is not there, a bad ProxyJump raise ConfigError
    (exit 2); what rstfleet will not follow comes back as one warning for the run.  The settings
    come back carrying the targets, for the transports to connect with (resolve_target)."""
    config = load_client_config(settings.ssh_config_path)
    inputs, resolved, targets = _inputs(settings), [], {}
    exists = functools.lru_cache(maxsize=None)(os.path.exists)   # one stat a key file a fleet

    def resolve(host: Host) -> SSHTarget:
        resolved.append(config.resolve(host.address))
        targets[(host, inputs)] = target = _target(host, settings, resolved[-1], exists)
        return target

    jumped, ssh_hosts = [], 0
    for host in hosts:
        ssh_hosts += host.connection != "local"
        if host.connection != "local" and (host, inputs) not in targets:
            chain = resolve(host).proxy_jump
            jumped += [host.name] if chain else []
            for hop in chain:
                jump = hop_host(hop)
                if (jump, inputs) not in targets:    # each jump host once: hundreds share one bastion
                    resolve(jump)
    if jumped and settings.engine == "asyncssh":
        raise ConfigError(jump_refusal(jumped))
    engine = chosen_engine(settings.engine, ssh_hosts, bool(jumped))
    warnings = (unhonoured_warning(resolved), engine_warning(settings.engine, engine, ssh_hosts, jumped))
    return replace(settings, targets=targets, engine=engine), tuple(w for w in warnings if w)


def engine_warning(requested: str, engine: str, ssh_hosts: int, jumped: list[str]) -> str:
    """Why --ssh-engine auto stayed with paramiko (``engine``) for a fleet the event loop should serve."""
    if requested != "auto" or ssh_hosts < ASYNCSSH_FROM_HOSTS or engine != "paramiko":
        return ""
    why = (f"{printable(jumped[0], 80)} and others are behind a jump host (paramiko's only)" if jumped
           else "asyncssh is not installed (pip install 'rstfleet[fleet]')")
    return (f"{ssh_hosts:,} SSH hosts on the paramiko engine because {why}: it holds at most "
            f"{PARAMIKO_MAX_SESSIONS:,} sessions at once, so more hosts are swept in window groups")


def jump_refusal(jumped: list[str]) -> str:
    """The asyncssh engine has no ProxyJump (jump.py runs paramiko channels): refused before any
    host rather than connecting straight to hosts that only a jump host should reach."""
    named = ", ".join(printable(name, 80) for name in jumped[:5])
    more = f" and {len(jumped) - 5} more" if len(jumped) > 5 else ""
    return (f"--ssh-engine: asyncssh does not go through jump hosts (ProxyJump), and {named}{more} "
            f"{'is' if len(jumped) == 1 else 'are'} reached through one; sweep "
            f"{'it' if len(jumped) == 1 else 'them'} with --ssh-engine paramiko or auto (the default)")
