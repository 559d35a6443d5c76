"""How a host is reached, kept apart from what is asked of it.

Every transport offers one call: run(argv, stdin, deadline) -> RunResult; an SSH transport also
start(), which runs the command now and lets the caller send the rest of stdin later (the
fleet's go, probe/host/go.py): run() is start() + send(b"") + wait(). Failures to reach or
authenticate raise TransportError carrying a result status and a reason a person can act on.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field, replace
from typing import Protocol

from ..probe.host.limits import ASYNCSSH_FROM_HOSTS, CONNECT_TIMEOUT_S, PARAMIKO_MAX_SESSIONS
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
    engine: str = "paramiko"              # or "asyncssh": one event loop; "auto": chosen by the preflight
    # (Host, inputs) -> SSHTarget, as the Plan's preflight resolved them (target.checked_settings)
    targets: dict = field(default_factory=dict, repr=False, compare=False)



SSH_ENGINES = ("auto", "paramiko", "asyncssh")


def engine_problem(engine: str) -> str | None:
    """Why --ssh-engine ENGINE cannot run here (checked before any host), or None. asyncssh is an
    optional extra, not a fixed dependency (README, Dependencies)."""
    if engine not in SSH_ENGINES:
        return f"must be one of {', '.join(SSH_ENGINES)}, not {engine!r}"
    if engine == "asyncssh" and importlib.util.find_spec("asyncssh") is None:
        return ("the asyncssh engine needs the asyncssh package, which is not installed: "
                "pip install 'rstfleet[fleet]' (or: pip install asyncssh)")
    return None


def chosen_engine(requested: str, ssh_hosts: int, jumped: bool) -> str:
    """``--ssh-engine auto`` (the default): the event loop from ASYNCSSH_FROM_HOSTS SSH hosts, where
    paramiko's thread per connection was measured to cost more per host as the fleet grows
    (docs/benchmarks.md, "The engine, chosen on numbers"), when asyncssh is installed and no host
    needs a jump host (paramiko's only); paramiko otherwise. An explicit engine is kept."""
    if requested != "auto":
        return requested
    if ssh_hosts >= ASYNCSSH_FROM_HOSTS and not jumped and importlib.util.find_spec("asyncssh") is not None:
        return "asyncssh"
    return "paramiko"


class TransportError(Exception):
    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Running(Protocol):
    """A command started with its first stdin sent (Transport.start)."""

    def ended(self) -> bool:
        """True once the command has exited or its channel closed (nothing more to send)."""

    def send(self, data: bytes) -> None:
        """Write data, then EOF; a command that already ended is not an error (wait() says why)."""

    def wait(self, deadline: float) -> RunResult:
        """Its output until EOF, the output cap, or time.monotonic() passes deadline."""


class Transport(Protocol):
    def connect(self, deadline: float) -> None:
        """Connect and authenticate now, before time.monotonic() passes deadline, so the pool can
        bound handshakes (--forks) apart from the sessions it holds; raises TransportError
        (unreachable, auth-failed, host-key-rejected, timeout). Once connected, a no-op; a
        transport with no handshake (the local host) does nothing. run() connects if needed."""

    def run(self, argv: list[str], stdin: bytes, deadline: float,
            max_output: int = DEFAULT_MAX_OUTPUT) -> RunResult:
        """Run argv with stdin until it exits or time.monotonic() passes deadline."""

    def close(self) -> None:
        """Release the connection; safe to call twice."""


def can_start(transport) -> bool:
    """Whether ``transport`` offers start() (SSH does; the local host has run() only)."""
    return callable(getattr(transport, "start", None))


class Transports:
    """``transports(host)``: one transport per host — local for ansible_connection=local, SSH
    otherwise — and what a sweep's hosts share (parsed known_hosts, loaded keys, the connections
    to jump hosts), released by ``close()`` when the sweep, or triage's two phases, are done."""

    def __init__(self, ssh: SSHSettings, become_password: str | None = None):
        from .jump import JumpPool                  # the SSH stack, and paramiko, only when used
        from .ssh import SharedCredentials
        from .ssh_config import load_client_config

        self.settings = replace(ssh, become_password=become_password)
        self.config = load_client_config(self.settings.ssh_config_path)
        self.shared = SharedCredentials()
        self.jumps = JumpPool()
        self.credentials = None
        if self.settings.engine == "asyncssh":     # one event loop; jump hosts refused by the preflight
            from .asyncssh_engine import Credentials
            self.credentials = Credentials()

    def __call__(self, host) -> Transport:
        from .local import LocalTransport
        from .ssh import SSHTransport

        if host.connection == "local":
            return LocalTransport(become=self.settings.become or host.become)
        if self.credentials is not None:
            from .asyncssh_engine import AsyncSSHTransport
            return AsyncSSHTransport(host, self.settings, self.config, self.credentials)
        return SSHTransport(host, self.settings, self.config, self.shared, self.jumps)

    def session_cost(self, host) -> tuple[int, int]:
        """(descriptors, threads) one held session to ``host`` costs here (sweep/sessions.py):
        a local host's three pipes and no thread; over SSH one socket — a ProxyCommand's three
        pipes instead — and paramiko's reader thread, none on the asyncssh engine's loop."""
        if host.connection == "local":
            return 3, 0
        from .target import resolve_target
        descriptors = 3 if resolve_target(host, self.settings, self.config).proxy_command else 1
        return descriptors, 0 if self.credentials is not None else 1

    def session_ceiling(self) -> tuple[int, str] | None:
        """Sessions this engine holds at once well, and why (sweep/sessions.py): paramiko's two
        threads a session starve the handshakes past PARAMIKO_MAX_SESSIONS (simulated fleet: 1,000
        held all ok, 2,000 held 640 ok, 5,000 none); the event loop has no such bound."""
        if self.credentials is not None:
            return None
        return PARAMIKO_MAX_SESSIONS, (f"the paramiko engine holds at most {PARAMIKO_MAX_SESSIONS:,} sessions "
                                       f"at once (pip install 'rstfleet[fleet]' for one window)")

    def close(self) -> None:
        self.jumps.close()

    def __enter__(self) -> "Transports":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def transport_factory(ssh: SSHSettings, become_password: str | None = None) -> Transports:
    """The -K password joins the settings here, never a Plan. Use it as a context manager: the
    jump connections end with the run."""
    return Transports(ssh, become_password)
