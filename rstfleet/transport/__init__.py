"""How a host is reached, kept apart from what is asked of it.

Every transport offers one call: run(argv, stdin, deadline) -> RunResult. Failures to reach or
authenticate raise TransportError carrying a result status and a reason a person can act on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

from ..probe.host.limits import MAX_OUTPUT as DEFAULT_MAX_OUTPUT


@dataclass
class RunResult:
    exit_code: int | None     # None when the command was cut off at the deadline
    stdout: bytes
    stderr: bytes
    truncated: bool = False   # output went past max_output and was cut
    timed_out: bool = False


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


def transport_factory(ssh, become_password: str | None = None) -> Callable[..., Transport]:
    """One transport per host: local for ansible_connection=local, SSH otherwise.

    ``ssh`` is a Plan's SSHOptions; the SSH stack is imported only when a host needs it."""
    from .local import LocalTransport
    from .ssh import SharedCredentials, SSHSettings, SSHTransport, load_ssh_config

    settings = SSHSettings(user=ssh.user, key_file=ssh.private_key, known_hosts_files=ssh.known_hosts,
                           accept_new_host_keys=ssh.accept_new_host_keys,
                           connect_timeout=ssh.connect_timeout_s, ssh_config_path=ssh.ssh_config,
                           become=ssh.become, become_password=become_password)
    config = load_ssh_config(ssh.ssh_config)
    shared = SharedCredentials()

    def transport_for(host) -> Transport:
        if host.connection == "local":
            return LocalTransport(become=settings.become or host.become)
        return SSHTransport(host, settings, config, shared)
    return transport_for
