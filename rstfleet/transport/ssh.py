"""Reaching a host over SSH with paramiko: OpenSSH's config, known_hosts and key semantics.

One connection, one exec channel per host. Host keys are verified against known_hosts by default,
with OpenSSH's semantics (known_hosts.py; paramiko never reads known_hosts): an unknown key is
refused with the command that trusts it, unless the user asked for OpenSSH's `accept-new`
behaviour; a changed or revoked key is always refused.
"""

from __future__ import annotations

import logging
import os
import shlex
import socket
import threading
import time

import paramiko

from . import DEFAULT_MAX_OUTPUT, RunResult, SSHSettings, TransportError
from ..inventory import Host
from ..results import Status
from .host_keys import KnownHostsStore, refusal
from .keyblob import KeyBlobError, kind_of, parse_key
from .known_hosts import HostKeyVerdict, KnownHosts, fingerprint
from .ssh_config import ClientConfig, expand_home
from .target import SSHTarget, resolve_target

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


def known_hosts_paths(target: SSHTarget) -> tuple[str, ...]:
    """The user files (the first one takes accept-new's lines), then the global ones, as ssh
    reads them (the target holds what ssh -G prints: UserKnownHostsFile, GlobalKnownHostsFile)."""
    return tuple(target.known_hosts_files) + tuple(expand_home(p) for p in target.global_known_hosts_files)


class HostKeyRefused(Exception):
    """known_hosts refuses the presented key; the message says why and what to do."""


class VerifyHostKey(paramiko.MissingHostKeyPolicy):
    """Every presented key judged by known_hosts.py: the client holds no paramiko host keys, so
    paramiko hands each key to this policy. Unknown keys are recorded only with accept-new."""

    def __init__(self, store: KnownHostsStore, target: SSHTarget, accept_new: bool):
        self.store, self.target = store, target
        self.paths = known_hosts_paths(target)
        # ssh writes nowhere without a user file (UserKnownHostsFile none): unknown stays refused.
        self.accept_new = accept_new and bool(target.known_hosts_files)
        self.hint_file = (self.paths or ("~/.ssh/known_hosts",))[0]

    def missing_host_key(self, client, hostname, key):
        target, alias = self.target, self.target.host_key_alias
        presented = f"{key.get_name()} {fingerprint(key.asbytes())}"
        try:
            public = parse_key(key.get_name(), key.asbytes())
        except KeyBlobError as exc:
            raise HostKeyRefused(f"host key of {hostname} ({presented}) refused: {exc}") from None
        check = self.store.known_hosts(self.paths).verify(target.hostname, target.port, public, alias)
        if check.verdict is HostKeyVerdict.UNKNOWN and self.accept_new:
            check = self.store.record(self.paths, target.hostname, target.port, key.get_name(),
                                      key.asbytes(), alias)
        if check.verdict is not HostKeyVerdict.TRUSTED:
            raise HostKeyRefused(refusal(check, presented, target.hostname, target.port,
                                         self.hint_file, alias))


def _preferring(known: KnownHosts, target: SSHTarget):
    """A paramiko Transport that offers first the host key types known_hosts holds for this host
    (OpenSSH's order_hostkeyalgs), so a host with several keys presents the one known here."""
    kinds = known.known_kinds(target.hostname, target.port, target.host_key_alias)

    def make(sock, **kwargs) -> paramiko.Transport:
        transport = paramiko.Transport(sock, **kwargs)
        options = transport.get_security_options()
        first = [a for a in options.key_types if (kind_of(a) or (None, None))[:2] in kinds]
        options.key_types = first + [a for a in options.key_types if a not in first]
        return transport
    return make


class SSHTransport:
    """One host over SSH. Construct, run() once or more, close()."""

    def __init__(self, host: Host, settings: SSHSettings, config: ClientConfig | None = None,
                 shared: SharedCredentials | None = None):
        self.host = host
        self.settings = settings
        self.target = resolve_target(host, settings, config)
        self.shared = shared or SharedCredentials()
        self.client: paramiko.SSHClient | None = None

    def _connect(self, deadline: float) -> paramiko.SSHClient:
        target = self.target
        timeout = max(0.1, min(target.connect_timeout or self.settings.connect_timeout,
                               deadline - time.monotonic()))
        client = paramiko.SSHClient()
        accept_new = self.settings.accept_new_host_keys or target.strict_host_key_checking == "accept-new"
        policy = VerifyHostKey(self.shared.host_keys, target, accept_new)
        client.set_missing_host_key_policy(policy)
        known = self.shared.host_keys.known_hosts(policy.paths)
        where = f"{target.user}@{target.hostname}:{target.port}"
        log.debug("%s: connecting to %s (known_hosts %s, keys %s%s)", self.host.name, where,
                  ",".join(target.known_hosts_files), ",".join(target.key_files) or "default/agent",
                  f", via {target.proxy_command}" if target.proxy_command else "")
        try:
            # The TCP connect is ours, so "no route" and "tarpit" are told apart cleanly; the
            # handshake gets one second more than the banner so the banner's error wins the race.
            # As ssh runs a ProxyCommand: `exec COMMAND` in the user's shell.
            shell = [os.environ.get("SHELL") or "/bin/sh", "-c", f"exec {target.proxy_command}"]
            sock = (paramiko.ProxyCommand(shlex.join(shell)) if target.proxy_command
                    else socket.create_connection((target.hostname, target.port), timeout=timeout))
            if not target.proxy_command:
                # Nagle + delayed ACK cost ~40 ms per authentication round trip.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pkey = self.shared.private_key(target.key_files[0]) if len(target.key_files) == 1 else None
            client.connect(
                target.hostname, port=target.port, username=target.user, pkey=pkey,
                key_filename=None if pkey else (target.key_files or None),
                look_for_keys=False,     # OpenSSH's default keys are in key_files (passwd home)
                allow_agent=not target.identities_only,
                timeout=timeout + 1, banner_timeout=timeout, auth_timeout=timeout,
                channel_timeout=timeout, sock=sock, transport_factory=_preferring(known, target))
            log.debug("%s: host key verified, authenticated as %s", self.host.name, target.user)
            # paramiko's reader thread wakes every 0.1 s to check for shutdown; across a 10 s
            # window and hundreds of hosts that is most of our idle CPU. close() does not wait
            # for it (it closes the socket), so a slower tick costs nothing.
            client.get_transport().sock.settimeout(IDLE_TICK_S)
        except HostKeyRefused as exc:
            client.close()
            raise TransportError(Status.HOST_KEY_REJECTED, str(exc)) from None
        except paramiko.AuthenticationException as exc:
            client.close()
            raise TransportError(Status.AUTH_FAILED, f"{where} refused authentication ({exc}); check -u, "
                                              f"--private-key or the host's authorized_keys") from None
        except (socket.timeout, TimeoutError):
            client.close()
            raise TransportError(Status.UNREACHABLE, f"no answer from {target.hostname}:{target.port} "
                                              f"within {timeout:.0f} s (host down or filtered)") from None
        except paramiko.SSHException as exc:
            client.close()
            if "banner" in str(exc).lower() or "no existing session" in str(exc).lower():
                raise TransportError(Status.TIMEOUT, f"{target.hostname}:{target.port} accepted TCP but sent "
                                              f"no SSH banner within {timeout:.0f} s (tarpit or "
                                              f"overloaded sshd)") from None
            raise TransportError(Status.UNREACHABLE, f"SSH negotiation with {where} failed: {exc}") from None
        except OSError as exc:
            client.close()
            reason = exc.strerror or str(exc)
            if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
                reason = "; ".join(sorted({e.strerror or str(e) for e in exc.errors.values()}))
            raise TransportError(Status.UNREACHABLE, f"cannot connect to {target.hostname}:{target.port}: "
                                              f"{reason}") from None
        return client

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
