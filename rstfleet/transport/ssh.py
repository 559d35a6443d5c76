"""Reaching a host over SSH with paramiko: OpenSSH's config, known_hosts and key semantics.

One connection, one exec channel per host. Host keys are verified against known_hosts by default,
with OpenSSH's semantics (known_hosts.py; paramiko never reads known_hosts): an unknown key is
refused with the command that trusts it, unless the user asked for OpenSSH's `accept-new`
behaviour; a changed or revoked key is always refused. The stream under SSH is a TCP connection,
a ProxyCommand (proxycommand.py) or a channel of a jump host (jump.py); every jump host is itself
reached by ssh_over(), so its key and login follow exactly these rules.
"""

from __future__ import annotations

import logging
import shlex
import socket
import threading
import time

import paramiko

from . import DEFAULT_MAX_OUTPUT, RunResult, SSHSettings, TransportError
from ..inventory import Host
from ..results import Status
from .host_keys import HostKeyGate, KnownHostsStore
from .jump import JumpPool, ReasonedTransport, expand_chain
from .proxycommand import CommandSocket
from .ssh_config import ClientConfig, ConfigError
from .target import SSHTarget, hop_host, resolve_target

READ_CHUNK = 65536
IDLE_TICK_S = 2.0
log = logging.getLogger("rstfleet.ssh")


class SharedCredentials:
    """known_hosts files parsed once per sweep and private keys loaded once, shared by every
    connection: parsing known_hosts per connection cost 4-11 ms of CPU each and serialised 200
    threads on paramiko's logging lock (bench/profile_sweep.py)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.host_keys = KnownHostsStore()
        self._keys: dict[str, paramiko.PKey | None] = {}

    def private_key(self, path: str) -> paramiko.PKey | None:
        """The loaded key, or None when it needs a passphrase or paramiko's own search."""
        with self._lock:
            if path not in self._keys:
                try:
                    self._keys[path] = paramiko.PKey.from_path(path)
                except (paramiko.SSHException, OSError, ValueError, TypeError):
                    self._keys[path] = None
            return self._keys[path]


class HostKeyRefused(Exception):
    """known_hosts refuses the presented key; the message says why and what to do."""


class VerifyHostKey(paramiko.MissingHostKeyPolicy):
    """paramiko's side of host_keys.HostKeyGate (the asyncssh engine calls the same gate): the
    client holds no paramiko host keys, so paramiko hands every presented key to this policy.
    ``via`` is the jump host that reaches this one (the command that trusts a key runs there)."""

    def __init__(self, store: KnownHostsStore, target: SSHTarget, accept_new: bool, via: str | None = None):
        self.gate = HostKeyGate(store, target, accept_new, via)

    def missing_host_key(self, client, hostname, key):
        reason = self.gate.refusal(key.get_name(), key.asbytes())
        if reason is not None:
            raise HostKeyRefused(reason)


def _preferring(gate: HostKeyGate):
    """A Transport (ReasonedTransport: it keeps a jump host's words when it refuses a channel)
    that asks for the host key types the gate chooses (known ones first, as the asyncssh engine)."""

    def make(sock, **kwargs) -> paramiko.Transport:
        transport = ReasonedTransport(sock, **kwargs)
        options = transport.get_security_options()
        options.key_types = gate.algorithms(options.key_types)
        return transport
    return make


def open_socket(target: SSHTarget, timeout: float) -> socket.socket | CommandSocket:
    """The stream SSH runs over: our own TCP connect (so "no route" and "no answer" are told apart
    cleanly), or the ProxyCommand's pipes."""
    if target.proxy_command:
        log.debug("running ProxyCommand %s", target.proxy_command)
        try:
            return CommandSocket(target.proxy_command)
        except OSError as exc:     # no shell to run it in ($SHELL names a missing program)
            raise TransportError(Status.UNREACHABLE, f"cannot run the ProxyCommand: {exc}") from None
    try:
        sock = socket.create_connection((target.hostname, target.port), timeout=timeout)
    except OSError as exc:
        raise _failure(exc, None, target, timeout) from None
    # Nagle + delayed ACK cost ~40 ms per authentication round trip.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def ssh_over(sock, target: SSHTarget, settings: SSHSettings, shared: SharedCredentials,
             timeout: float, name: str, via: str | None = None) -> paramiko.SSHClient:
    """SSH to target over an open stream — a TCP socket, a jump host's channel or a ProxyCommand —
    host key checked, then authentication: one code path for every host and every jump host."""
    client = paramiko.SSHClient()
    policy = VerifyHostKey(shared.host_keys, target, settings.accept_new_host_keys, via)
    client.set_missing_host_key_policy(policy)
    log.debug("%s: connecting to %s@%s:%d (known_hosts %s, keys %s%s)", name, target.user,
              target.hostname, target.port, ",".join(target.known_hosts_files),
              ",".join(target.key_files) or "default/agent",
              f", via {via}" if via else f", via {target.proxy_command}" if target.proxy_command else "")
    try:
        pkey = shared.private_key(target.key_files[0]) if len(target.key_files) == 1 else None
        # The handshake gets one second more than the banner so the banner's error wins the race.
        client.connect(
            target.hostname, port=target.port, username=target.user, pkey=pkey,
            key_filename=None if pkey else (target.key_files or None),
            look_for_keys=False,     # OpenSSH's default keys are in key_files (passwd home)
            allow_agent=not target.identities_only,
            timeout=timeout + 1, banner_timeout=timeout, auth_timeout=timeout,
            channel_timeout=timeout, sock=sock, transport_factory=_preferring(policy.gate))
        log.debug("%s: host key verified, authenticated as %s", name, target.user)
        # paramiko's reader thread wakes every 0.1 s to check for shutdown; across a 10 s
        # window and hundreds of hosts that is most of our idle CPU. close() does not wait
        # for it (it closes the socket), so a slower tick costs nothing.
        client.get_transport().sock.settimeout(IDLE_TICK_S)
        return client
    except (HostKeyRefused, paramiko.SSHException, OSError, EOFError) as exc:
        failure = _failure(exc, sock, target, timeout)   # before close() stops a ProxyCommand
        client.close()
        sock.close()
        raise failure from None


def _failure(exc: BaseException, sock, target: SSHTarget, timeout: float) -> TransportError:
    """Why SSH to target failed, as a status and a reason a person can act on. A ProxyCommand
    that ended says why in its own words (unless the host's key or login was the verdict)."""
    where, address = f"{target.user}@{target.hostname}:{target.port}", f"{target.hostname}:{target.port}"
    verdicts = (HostKeyRefused, paramiko.AuthenticationException)
    if isinstance(sock, CommandSocket) and not isinstance(exc, verdicts) and (ended := sock.failure()):
        return ended
    if isinstance(exc, HostKeyRefused):
        return TransportError(Status.HOST_KEY_REJECTED, str(exc))
    if isinstance(exc, paramiko.AuthenticationException):
        return TransportError(Status.AUTH_FAILED, f"{where} refused authentication ({exc}); check -u, "
                                                  f"--private-key or the host's authorized_keys")
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return TransportError(Status.UNREACHABLE, f"no answer from {address} within {timeout:.0f} s "
                                                  f"(host down or filtered)")
    # paramiko: EOFError when its banner cannot be sent, "Error reading SSH protocol banner" with
    # an EOFError behind it when the peer closed first. Either way the peer hung up at once.
    if isinstance(exc, EOFError) or isinstance(exc.__context__, EOFError) and "banner" in str(exc).lower():
        return TransportError(Status.UNREACHABLE, f"{address} closed the connection before SSH began "
                                                  f"(sshd's MaxStartups, a TCP wrapper or firewall, "
                                                  f"or not an SSH server)")
    if isinstance(exc, paramiko.SSHException):
        if "banner" in str(exc).lower() or "no existing session" in str(exc).lower():
            return TransportError(Status.TIMEOUT, f"{address} accepted TCP but sent no SSH banner within "
                                                  f"{timeout:.0f} s (tarpit or overloaded sshd)")
        return TransportError(Status.UNREACHABLE, f"SSH negotiation with {where} failed: {exc}")
    reason = exc.strerror or str(exc)
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        reason = "; ".join(sorted({e.strerror or str(e) for e in exc.errors.values()}))
    return TransportError(Status.UNREACHABLE, f"cannot connect to {address}: {reason}")


class SSHTransport:
    """One host over SSH. Construct, run() once or more, close().

    Hosts behind a ProxyJump share the jump connections of ``jumps`` (one pool a sweep); without
    one, this transport keeps its own and closes it with itself.
    """

    def __init__(self, host: Host, settings: SSHSettings, config: ClientConfig | None = None,
                 shared: SharedCredentials | None = None, jumps: JumpPool | None = None):
        self.host = host
        self.settings = settings
        self.config = config
        self.target = resolve_target(host, settings, config)
        self.shared = shared or SharedCredentials()
        self.jumps = jumps or JumpPool()
        self._own_jumps = jumps is None
        self.client: paramiko.SSHClient | None = None

    def _connect(self, deadline: float) -> paramiko.SSHClient:
        target = self.target
        timeout = max(0.1, min(target.connect_timeout or self.settings.connect_timeout,
                               deadline - time.monotonic()))
        if not target.proxy_jump:
            return ssh_over(open_socket(target, timeout), target, self.settings, self.shared,
                            timeout, self.host.name)
        chain = expand_chain(target.proxy_jump, lambda hop: self._hop(hop).proxy_jump)
        sock = self.jumps.channel(chain, lambda: self._jump_client(chain), target.hostname,
                                  target.port, deadline, timeout)
        return ssh_over(sock, target, self.settings, self.shared, timeout, self.host.name, chain[-1])

    def _hop(self, hop: str) -> SSHTarget:
        """A jump host's settings: the hop's own user and port, then ssh_config for its name and
        the command line's, as `ssh -l USER -p PORT HOST` would resolve them (target.py)."""
        try:
            return resolve_target(hop_host(hop), self.settings, self.config)
        except (ValueError, ConfigError) as exc:
            raise TransportError(Status.UNREACHABLE, f"jump host {hop}: {exc}") from None

    def _jump_client(self, chain: tuple[str, ...]) -> paramiko.SSHClient:
        """A new SSH connection to the chain's last hop, through the hops before it. It serves the
        whole sweep, so it gets a connect timeout of its own, not one host's leftover budget."""
        target = self._hop(chain[-1])
        timeout = target.connect_timeout or self.settings.connect_timeout
        where = f"jump host {chain[-1]} ({target.hostname}:{target.port})"
        try:
            if len(chain) == 1:
                return ssh_over(open_socket(target, timeout), target, self.settings, self.shared,
                                timeout, where)
            sock = self.jumps.channel(chain[:-1], lambda: self._jump_client(chain[:-1]), target.hostname,
                                      target.port, time.monotonic() + timeout, timeout)
            return ssh_over(sock, target, self.settings, self.shared, timeout, where, chain[-2])
        except TransportError as exc:
            if exc.reason.startswith("jump host "):
                raise
            raise TransportError(exc.status, f"{where}: {exc.reason}") from None

    def _command(self, argv: list[str], stdin: bytes) -> tuple[str, bytes]:
        if not (self.settings.become or self.host.become):
            return shlex.join(argv), stdin
        if self.settings.become_password is None:
            return shlex.join(["sudo", "-n", "--"] + argv), stdin
        # The password travels on the channel's stdin, never on a command line: sudo -S reads one
        # line from stdin and leaves the rest (the probe) to python3.
        password = self.settings.become_password.encode("utf-8") + b"\n"
        return shlex.join(["sudo", "-S", "-p", "", "--"] + argv), password + stdin

    def connect(self, deadline: float) -> None:
        """The handshake (TCP, host key, authentication) now, if not made yet (Transport.connect)."""
        if self.client is None:
            self.client = self._connect(deadline)

    def run(self, argv, stdin, deadline, max_output=DEFAULT_MAX_OUTPUT) -> RunResult:
        running = self.start(argv, stdin, deadline, max_output)
        running.send(b"")
        return running.wait(deadline)

    def start(self, argv, stdin, deadline, max_output=DEFAULT_MAX_OUTPUT) -> "_Started":
        """Open a channel, exec argv and send stdin, without EOF (Running); ``deadline`` bounds this."""
        self.connect(deadline)
        command, payload = self._command(argv, stdin)
        log.debug("%s: exec %s (%d bytes on stdin)", self.host.name, command, len(payload))
        try:
            channel = self.client.get_transport().open_session(
                timeout=max(0.1, deadline - time.monotonic()))
            channel.settimeout(max(0.1, deadline - time.monotonic()))
            channel.exec_command(command)
        except (socket.timeout, TimeoutError):
            raise TransportError(Status.TIMEOUT, "the host did not accept the command before the deadline") from None
        except (paramiko.SSHException, OSError) as exc:
            raise TransportError(Status.UNREACHABLE, f"SSH session failed: {exc}") from None
        try:
            channel.sendall(payload)
        except (socket.timeout, TimeoutError):
            raise TransportError(Status.TIMEOUT, "the host did not read the probe before the deadline") from None
        except (paramiko.SSHException, OSError) as exc:
            # A command that ends before reading all of stdin (no python3 there: exit 127) closes
            # the channel under sendall; its exit status and stderr, already received, say why.
            if not channel.closed:
                raise TransportError(Status.UNREACHABLE, f"SSH session failed: {exc}") from None
        return _Started(channel, max_output)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self._own_jumps:
            self.jumps.close()


class _Started:
    """A command running on its channel (transport.Running)."""

    SEND_S = 5.0        # a go line fits the channel's window: this only bounds a wedged peer

    def __init__(self, channel: paramiko.Channel, max_output: int):
        self.channel, self.max_output = channel, max_output

    def ended(self) -> bool:
        return self.channel.exit_status_ready() or self.channel.closed or self.channel.eof_received

    def send(self, data: bytes) -> None:
        try:
            self.channel.settimeout(self.SEND_S)
            self.channel.sendall(data)
            self.channel.shutdown_write()
        except (socket.timeout, TimeoutError, paramiko.SSHException, OSError):
            log.debug("sending to a command that ended or stalled failed", exc_info=True)

    def wait(self, deadline: float) -> RunResult:
        return _collect(self.channel, deadline, self.max_output)


def _connection_lost(channel: paramiko.Channel, grace_s: float = 0.5) -> bool:
    """Tell "killed by a signal" (exit-signal: paramiko leaves exit_status at -1, the connection
    lives) from "the connection died" (also -1, but the transport goes inactive)."""
    transport = channel.get_transport()
    end = time.monotonic() + grace_s
    while transport.is_active() and time.monotonic() < end:
        time.sleep(0.05)
    return not transport.is_active()


def _collect(channel: paramiko.Channel, deadline: float, max_output: int) -> RunResult:
    """Read stdout (and stderr alongside) until EOF, the output cap, or the deadline."""
    stdout, stderr = bytearray(), bytearray()
    truncated = timed_out = False
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            channel.settimeout(remaining)
            chunk = channel.recv(READ_CHUNK)
            while channel.recv_stderr_ready() and len(stderr) <= max_output:
                stderr += channel.recv_stderr(READ_CHUNK)
            if not chunk:
                break
            stdout += chunk
            if len(stdout) > max_output:
                truncated = True
                break
        if not truncated and not timed_out:
            channel.settimeout(max(0.1, min(2.0, deadline - time.monotonic())))
            while len(stderr) <= max_output:
                chunk = channel.recv_stderr(READ_CHUNK)
                if not chunk:
                    break
                stderr += chunk
            if channel.status_event.wait(max(0.0, deadline - time.monotonic())):
                status = channel.exit_status
                if status == -1 and _connection_lost(channel):
                    status = None   # no exit status because the host or its sshd went away
                return RunResult(status, bytes(stdout), bytes(stderr[:max_output]))
            timed_out = True
    except (socket.timeout, TimeoutError):
        timed_out = True
    except (paramiko.SSHException, OSError):
        pass
    finally:
        channel.close()
    exit_code = channel.exit_status if channel.exit_status_ready() else None
    return RunResult(exit_code, bytes(stdout[:max_output]), bytes(stderr[:max_output]),
                     truncated, timed_out)
