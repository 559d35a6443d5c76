"""How a host is reached, kept apart from what is asked of it.

Every transport offers one call: run(argv, stdin, deadline) -> RunResult. Failures to reach or
authenticate raise TransportError carrying a result status and a reason a person can act on.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field, replace
from typing import Callable, Protocol

from ..probe.host.limits import CONNECT_TIMEOUT_S
from ..probe.host.limits import MAX_OUTPUT as DEFAULT_MAX_OUTPUT


@dataclass
class RunResult:
    exit_code: int | None     # None when the command was cut off at the deadline
    stdout: bytes
    stderr: bytes
    truncated: bool = False   # output went past max_output and was cut
    timed_out: bool = False


@dataclass
class SSHSettings:
    """Connection settings from the command line; inventory variables win over them, as in Ansible."""
    user: str | None = None
    key_file: str | None = None
    known_hosts_files: tuple[str, ...] = ()
    accept_new_host_keys: bool = False
    connect_timeout: float = CONNECT_TIMEOUT_S
    connect_timeout_given: bool = False   # else ssh_config's ConnectTimeout applies (docs/ssh.md)
    ssh_config_path: str | None = None    # None: ~/.ssh/config then /etc/ssh/ssh_config; a path: -F
    become: bool = False
    ask_become_pass: bool = False         # -K: asked once per run, before any host (cli.py)
    become_password: str | None = field(default=None, repr=False, compare=False)
    engine: str = "paramiko"              # or "asyncssh": one event loop for every connection



SSH_ENGINES = ("paramiko", "asyncssh")


def engine_problem(engine: str) -> str | None:
    """Why --ssh-engine ENGINE cannot run here (checked before any host), or None."""
    if engine not in SSH_ENGINES:
        return f"must be one of {', '.join(SSH_ENGINES)}, not {engine!r}"
    if engine == "asyncssh" and importlib.util.find_spec("asyncssh") is None:
        return "asyncssh is not installed (pip install asyncssh)"
    return None


class TransportError(Exception):
    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Transport(Protocol):
    def run(self, argv: list[str], stdin: bytes, deadline: float,
            max_output: int = DEFAULT_MAX_OUTPUT) -> RunResult:
        """Run argv with stdin until it exits or time.monotonic() passes deadline."""

    def close(self) -> None:
        """Release the connection; safe to call twice."""


def transport_factory(ssh: SSHSettings, become_password: str | None = None) -> Callable[..., Transport]:
    """One transport per host: local for ansible_connection=local, SSH otherwise (its stack, and
    paramiko or asyncssh, imported only then). The -K password joins the settings here, never a Plan."""
    from .local import LocalTransport
    from .ssh import SharedCredentials, SSHTransport
    from .ssh_config import load_client_config

    settings = replace(ssh, become_password=become_password)
    config = load_client_config(settings.ssh_config_path)
    shared = SharedCredentials()
    if settings.engine == "asyncssh":
        from .asyncssh_engine import AsyncSSHTransport, Credentials
        credentials = Credentials()

        def remote(host) -> Transport:
            return AsyncSSHTransport(host, settings, config, credentials)
    else:
        def remote(host) -> Transport:
            return SSHTransport(host, settings, config, shared)

    def transport_for(host) -> Transport:
        if host.connection == "local":
            return LocalTransport(become=settings.become or host.become)
        return remote(host)
    return transport_for
