"""Reaching a host over SSH with paramiko: OpenSSH's config, known_hosts and key semantics.

One connection, one exec channel per host. Host keys are verified against known_hosts by default;
an unknown key is refused with the command that trusts it, unless the user asked for OpenSSH's
`accept-new` behaviour; a changed key is always refused. The stream under SSH is a TCP connection,
a ProxyCommand (proxycommand.py) or a channel of a jump host (jump.py); every jump host is itself
reached by ssh_over(), so its key and login follow exactly these rules.
"""

from __future__ import annotations

import fcntl
import logging
import os
import pwd
import shlex
import socket
import threading
import time
from dataclasses import dataclass

import paramiko

from . import DEFAULT_MAX_OUTPUT, RunResult, SSHSettings, TransportError
from .jump import JumpPool, ReasonedTransport, expand_chain, parse_hop, split_chain
from .proxycommand import CommandSocket, expand_tokens
from ..inventory import Host
from ..results import Status

READ_CHUNK = 65536
IDLE_TICK_S = 2.0
log = logging.getLogger("rstfleet.ssh")


def user_home() -> str:
    """Home from the passwd entry, as OpenSSH does (paramiko would use $HOME)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:
        return os.path.expanduser("~")


def expand_home(path: str) -> str:
    return user_home() + path[1:] if path.startswith("~") else path


@dataclass
class SSHTarget:
    """Where and as whom to connect, after inventory, command line and ~/.ssh/config are merged."""
    hostname: str
    port: int
    user: str
    key_files: list[str]
    known_hosts_files: list[str]
    proxy_command: str | None = None
    proxy_jump: tuple[str, ...] = ()   # raw hops, "[user@]host[:port]", first hop first


def load_ssh_config(path: str | None) -> paramiko.SSHConfig | None:
    if not path:
        return None
    path = expand_home(path)
    return paramiko.SSHConfig.from_path(path) if os.path.exists(path) else None


def resolve_target(host: Host, settings: SSHSettings, config: paramiko.SSHConfig | None) -> SSHTarget:
    options = config.lookup(host.address) if config else {}
    hostname = options.get("hostname", host.address)
    port = host.port or int(options.get("port", 22))
    user = host.user or settings.user or options.get("user") or pwd.getpwuid(os.getuid()).pw_name
    keys = [k for k in (host.key_file, settings.key_file) if k] + list(options.get("identityfile", []))
    known = [k for k in (host.known_hosts_file,) if k] + list(settings.known_hosts_files)
    if not known:
        known = options.get("userknownhostsfile", "~/.ssh/known_hosts").split()
    if host.proxy_jump is not None or host.proxy_command is not None:
        # The inventory's ssh arguments come before ssh_config, and ssh keeps the first of the two.
        jump, proxy = split_chain(host.proxy_jump), expand_tokens(host.proxy_command, hostname, port, user, host.address)
    else:
        jump = split_chain(options.get("proxyjump"))
        proxy = None if jump else options.get("proxycommand")
    if proxy and proxy.strip().lower() == "none":
        proxy = None
    return SSHTarget(hostname, port, user, [expand_home(k) for k in keys],
                     [expand_home(k) for k in known], proxy, jump)


class SharedCredentials:
    """known_hosts files parsed once per sweep and private keys loaded once, shared by every
    connection: parsing known_hosts per connection cost 4-11 ms of CPU each and serialised 200
    threads on paramiko's logging lock (bench/profile_sweep.py)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._host_keys: dict[tuple[str, ...], paramiko.HostKeys] = {}
        self._keys: dict[str, paramiko.PKey | None] = {}

    def host_keys(self, files: list[str]) -> paramiko.HostKeys:
        key = tuple(files)
        with self._lock:
            if key not in self._host_keys:
                keys = paramiko.HostKeys()
                for path in files:
                    if os.path.exists(path):
                        keys.load(path)
                self._host_keys[key] = keys
            return self._host_keys[key]

    def private_key(self, path: str) -> paramiko.PKey | None:
        """The loaded key, or None when it needs a passphrase or paramiko's own search."""
        with self._lock:
            if path not in self._keys:
                try:
                    self._keys[path] = paramiko.PKey.from_path(path)
                except (paramiko.SSHException, OSError, ValueError, TypeError):
                    self._keys[path] = None
            return self._keys[path]


class UnknownHostKey(Exception):
    def __init__(self, hostname: str, key: paramiko.PKey):
        super().__init__(hostname)
        self.hostname = hostname
        self.key = key


class RefuseUnknown(paramiko.MissingHostKeyPolicy):
    def missing_host_key(self, client, hostname, key):
        raise UnknownHostKey(hostname, key)


class AcceptNew(paramiko.MissingHostKeyPolicy):
    """OpenSSH's StrictHostKeyChecking=accept-new: record a first-seen key, under a file lock."""

    def __init__(self, known_hosts_file: str):
        self.known_hosts_file = known_hosts_file

    def missing_host_key(self, client, hostname, key):
        os.makedirs(os.path.dirname(self.known_hosts_file) or ".", mode=0o700, exist_ok=True)
        line = f"{hostname} {key.get_name()} {key.get_base64()}\n"
        with open(self.known_hosts_file, "a", encoding="ascii") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.write(line)
            fcntl.flock(handle, fcntl.LOCK_UN)
        client.get_host_keys().add(hostname, key.get_name(), key)


def _trust_command(target: SSHTarget) -> str:
    port = f"-p {target.port} " if target.port != 22 else ""
    # Behind a jump host only the last hop can reach the host: the scan runs there.
    via = f"ssh {shlex.quote(target.proxy_jump[-1])} " if target.proxy_jump else ""
    return (f"{via}ssh-keyscan {port}{shlex.quote(target.hostname)} >> {target.known_hosts_files[0]} "
            f"(after checking the fingerprint), or rerun with --accept-new-host-keys")


def open_socket(target: SSHTarget, timeout: float) -> socket.socket | CommandSocket:
    """The stream SSH runs over: our own TCP connect (so "no route" and "no answer" are told apart
    cleanly), or the ProxyCommand's pipes."""
    if target.proxy_command:
        log.debug("running ProxyCommand %s", target.proxy_command)
        return CommandSocket(target.proxy_command)
    try:
        sock = socket.create_connection((target.hostname, target.port), timeout=timeout)
    except (socket.timeout, TimeoutError):
        raise TransportError(Status.UNREACHABLE, f"no answer from {target.hostname}:{target.port} "
                                                 f"within {timeout:.0f} s (host down or filtered)") from None
    except OSError as exc:
        raise TransportError(Status.UNREACHABLE, f"cannot connect to {target.hostname}:{target.port}: "
                                                 f"{exc.strerror or exc}") from None
    # Nagle + delayed ACK cost ~40 ms per authentication round trip.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def ssh_over(sock, target: SSHTarget, settings: SSHSettings, shared: SharedCredentials,
             timeout: float, name: str) -> paramiko.SSHClient:
    """SSH to target over an open stream — a TCP socket, a jump host's channel or a ProxyCommand —
    host key checked, then authentication: one code path for every host and every jump host."""
    client = paramiko.SSHClient()
    # Looked up read-only (the "system" keys); first-seen keys accepted with
    # --accept-new-host-keys go to this client's own set and the file, never to the shared one.
    client._system_host_keys = shared.host_keys(target.known_hosts_files)
    client.set_missing_host_key_policy(
        AcceptNew(target.known_hosts_files[0]) if settings.accept_new_host_keys
        else RefuseUnknown())
    log.debug("%s: connecting to %s@%s:%d (known_hosts %s, keys %s%s)", name, target.user,
              target.hostname, target.port, ",".join(target.known_hosts_files),
              ",".join(target.key_files) or "default/agent",
              f", via {','.join(target.proxy_jump)}" if target.proxy_jump else "")
    try:
        pkey = shared.private_key(target.key_files[0]) if len(target.key_files) == 1 else None
        # The handshake gets one second more than the banner so the banner's error wins the race.
        client.connect(
            target.hostname, port=target.port, username=target.user, pkey=pkey,
            key_filename=None if pkey else (target.key_files or None),
            look_for_keys=not target.key_files,
            timeout=timeout + 1, banner_timeout=timeout, auth_timeout=timeout,
            channel_timeout=timeout, sock=sock, transport_factory=ReasonedTransport)
        log.debug("%s: host key verified, authenticated as %s", name, target.user)
        # paramiko's reader thread wakes every 0.1 s to check for shutdown; across a 10 s
        # window and hundreds of hosts that is most of our idle CPU. close() does not wait
        # for it (it closes the socket), so a slower tick costs nothing.
        client.get_transport().sock.settimeout(IDLE_TICK_S)
        return client
    except (UnknownHostKey, paramiko.SSHException, OSError) as exc:
        client.close()
        sock.close()
        raise _failure(exc, sock, target, timeout) from None


def _failure(exc: Exception, sock, target: SSHTarget, timeout: float) -> TransportError:
    """Why SSH to target failed, as a status and a reason a person can act on."""
    where = f"{target.user}@{target.hostname}:{target.port}"
    verdicts = (UnknownHostKey, paramiko.BadHostKeyException, paramiko.AuthenticationException)
    if isinstance(sock, CommandSocket) and not isinstance(exc, verdicts) and (ended := sock.failure()):
        return ended
    if isinstance(exc, UnknownHostKey):
        return TransportError(Status.HOST_KEY_REJECTED,
                              f"host key of {exc.hostname} ({exc.key.get_name()} {exc.key.fingerprint}) "
                              f"is not in known_hosts; to trust it: {_trust_command(target)}")
    if isinstance(exc, paramiko.BadHostKeyException):
        return TransportError(Status.HOST_KEY_REJECTED,
                              f"host key of {target.hostname} CHANGED: it presented {exc.key.get_name()} "
                              f"{exc.key.fingerprint}, known_hosts expects {exc.expected_key.fingerprint}; "
                              f"possible impersonation — verify the host, then update the known_hosts entry")
    if isinstance(exc, paramiko.AuthenticationException):
        return TransportError(Status.AUTH_FAILED, f"{where} refused authentication ({exc}); check -u, "
                                                  f"--private-key or the host's authorized_keys")
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return TransportError(Status.UNREACHABLE, f"no answer from {target.hostname}:{target.port} "
                                                  f"within {timeout:.0f} s (host down or filtered)")
    if isinstance(exc, paramiko.SSHException):
        if "banner" in str(exc).lower() or "no existing session" in str(exc).lower():
            return TransportError(Status.TIMEOUT, f"{target.hostname}:{target.port} accepted TCP but sent "
                                                  f"no SSH banner within {timeout:.0f} s (tarpit or "
                                                  f"overloaded sshd)")
        return TransportError(Status.UNREACHABLE, f"SSH negotiation with {where} failed: {exc}")
    return TransportError(Status.UNREACHABLE, f"cannot connect to {target.hostname}:{target.port}: "
                                              f"{exc.strerror or exc}")


class SSHTransport:
    """One host over SSH. Construct, run() once or more, close().

    Hosts behind a ProxyJump share the jump connections of ``jumps`` (one pool a sweep); without
    one, this transport keeps its own and closes it with itself.
    """

    def __init__(self, host: Host, settings: SSHSettings, config: paramiko.SSHConfig | None = None,
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
        timeout = max(0.1, min(self.settings.connect_timeout, deadline - time.monotonic()))
        if target.proxy_jump:
            chain = expand_chain(target.proxy_jump, lambda hop: self._hop(hop).proxy_jump)
            sock = self.jumps.channel(chain, lambda: self._jump_client(chain), target.hostname,
                                      target.port, deadline, timeout)
        else:
            sock = open_socket(target, timeout)
        return ssh_over(sock, target, self.settings, self.shared, timeout, self.host.name)

    def _hop(self, hop: str) -> SSHTarget:
        """A jump host's settings: the hop's own user and port, then ssh_config for its name and
        the command line's, as `ssh -l USER -p PORT HOST` would resolve them."""
        try:
            parsed = parse_hop(hop)
        except ValueError as exc:
            raise TransportError(Status.UNREACHABLE, str(exc)) from None
        return resolve_target(Host(name=parsed.host, address=parsed.host, port=parsed.port,
                                   user=parsed.user), self.settings, self.config)

    def _jump_client(self, chain: tuple[str, ...]) -> paramiko.SSHClient:
        """A new SSH connection to the chain's last hop, through the hops before it. It serves the
        whole sweep, so it gets a connect timeout of its own, not one host's leftover budget."""
        target = self._hop(chain[-1])
        timeout = self.settings.connect_timeout
        where = f"jump host {chain[-1]} ({target.hostname}:{target.port})"
        try:
            if len(chain) > 1:
                sock = self.jumps.channel(chain[:-1], lambda: self._jump_client(chain[:-1]), target.hostname,
                                          target.port, time.monotonic() + timeout, timeout)
            else:
                sock = open_socket(target, timeout)
            return ssh_over(sock, target, self.settings, self.shared, timeout, where)
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

    def run(self, argv, stdin, deadline, max_output=DEFAULT_MAX_OUTPUT) -> RunResult:
        if self.client is None:
            self.client = self._connect(deadline)
        command, payload = self._command(argv, stdin)
        log.debug("%s: exec %s (%d bytes on stdin)", self.host.name, command, len(payload))
        try:
            channel = self.client.get_transport().open_session(
                timeout=max(0.1, deadline - time.monotonic()))
            channel.settimeout(max(0.1, deadline - time.monotonic()))
            channel.exec_command(command)
            channel.sendall(payload)
            channel.shutdown_write()
        except (socket.timeout, TimeoutError):
            raise TransportError(Status.TIMEOUT, "the host did not accept the command before the deadline") from None
        except (paramiko.SSHException, OSError) as exc:
            raise TransportError(Status.UNREACHABLE, f"SSH session failed: {exc}") from None
        return _collect(channel, deadline, max_output)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self._own_jumps:
            self.jumps.close()


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
