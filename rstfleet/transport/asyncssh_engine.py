"""Reaching a host over SSH with asyncssh on one shared event loop (``--ssh-engine asyncssh``).

Why: paramiko runs a reader thread per connection (plus the pool's worker), and at a thousand
hosts that cost 6.9 ms of CPU and 157 KB per host (docs/benchmarks.md, "A fleet in one window").
Here every connection of the run lives on one event-loop thread; the pool's worker only waits on
a future. The contract is ssh.py's, phase by phase:

  * the handshake is connect(), made by one of the pool's handshake workers, so `--forks` bounds
    the handshakes in flight (sweep/pool.py); the connect timeout runs from connect();
  * TCP connect (ours, so "no route" and "tarpit" are told apart) within the connect timeout;
  * banner, key exchange, host key, authentication within the same timeout; a server that
    accepts TCP and never sends its banner is `timeout`, as with paramiko;
  * host keys decided by the paramiko engine's own code, host_keys.HostKeyGate: the same
    known_hosts files (read once a run, indexed), OpenSSH's verdicts (@revoked, @cert-authority,
    HostKeyAlias, hashed names, wildcards), accept-new's lines, the same refusal reasons, and the
    same host key types asked for (never a certificate type: asyncssh would check it itself);
  * one exec channel per run() with the probe on stdin, until EOF, the output cap or the deadline;
  * close() from any thread (the pool's Ctrl-C and abandon paths) aborts the connection.
A ProxyCommand runs as `exec COMMAND` in the user's shell; ProxyJump is not carried out here:
hosts behind a jump host are refused before any connection (target.preflight).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout

import asyncssh
from asyncssh.public_key import get_public_key_algs

from . import DEFAULT_MAX_OUTPUT, RunResult, SSHSettings, TransportError
from ..inventory import Host
from ..results import Status
from .host_keys import HostKeyGate, KnownHostsStore
from .proxycommand import CommandSocket
from .ssh import SSHTransport
from .ssh_config import ClientConfig
from .target import jump_refusal, resolve_target

log = logging.getLogger("rstfleet.ssh")
RESULT_GRACE_S = 5.0        # the coroutine keeps its own deadline; this only guards the thread
# Handshakes are CPU: on one loop, N at once all finish late together (5,000 at once: 2,882 missed
# the 10 s connect timeout). The pool's --forks (200) bounds them: each is one worker's connect().
HOST_KEY_TYPES = frozenset(name.decode() for name in get_public_key_algs())   # no certificate types
# One call into OpenSSL a packet (AES-GCM) rather than two (chacha20 + poly1305): 2.8 -> 2.1 ms of
# CPU a host with compression off too (asyncssh offers zlib first; OpenSSH's client never asks).
CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com",
           "aes128-ctr", "aes256-ctr")
logging.getLogger("asyncssh").setLevel(logging.WARNING)


class EventLoop:
    """The run's one event-loop thread, started on first use (a daemon: it never holds exit up)."""

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def get(cls) -> asyncio.AbstractEventLoop:
        with cls._lock:
            if cls._loop is None or not cls._loop.is_running():
                loop = asyncio.new_event_loop()
                started = threading.Event()
                loop.call_soon(started.set)
                threading.Thread(target=loop.run_forever, name="rstfleet-ssh-loop", daemon=True).start()
                started.wait()
                cls._loop = loop
            return cls._loop


class Credentials:
    """Private keys and known_hosts (host_keys.KnownHostsStore, as the paramiko engine's) read
    once per run and shared by every connection."""

    def __init__(self):
        self._lock = threading.Lock()
        self._keys: dict[str, asyncssh.SSHKey | None] = {}
        self.host_keys = KnownHostsStore()

    def private_key(self, path: str) -> asyncssh.SSHKey | None:
        with self._lock:
            if path not in self._keys:
                try:
                    self._keys[path] = asyncssh.read_private_key(path)
                except (asyncssh.KeyImportError, OSError, ValueError):
                    self._keys[path] = None      # passphrase or unreadable: the agent may have it
            return self._keys[path]


class _HostKeyCheck(asyncssh.SSHClient):
    """Hands the server's host key to the transport's HostKeyGate (the paramiko engine's own
    check) and keeps the refusal's reason. Every key comes here: known_hosts=([], [], []) gives
    asyncssh nothing to trust or revoke by itself."""

    def __init__(self, transport: "AsyncSSHTransport"):
        self.transport = transport
        self.conn = None
        self.refused: str | None = None

    def connection_made(self, conn):
        self.conn = conn

    def validate_host_public_key(self, host, addr, port, key) -> bool:
        self.refused = self.transport.host_key_gate.refusal(key.algorithm.decode("ascii", "replace"),
                                                            key.public_data)
        return self.refused is None


class _Collector(asyncssh.SSHClientSession):
    """stdout and stderr up to the cap, the exit status or signal, and the end of the channel."""

    def __init__(self, max_output: int):
        self.max_output = max_output
        self.stdout, self.stderr = bytearray(), bytearray()
        self.exit_code: int | None = None
        self.truncated = False
        self.done = asyncio.get_running_loop().create_future()
        self.channel = None

    def connection_made(self, chan):
        self.channel = chan

    def data_received(self, data, datatype):
        if datatype == asyncssh.EXTENDED_DATA_STDERR:
            if len(self.stderr) <= self.max_output:
                self.stderr += data
            return
        self.stdout += data
        if len(self.stdout) > self.max_output:
            self.truncated = True
            self.channel.close()
            self._finish()

    def exit_status_received(self, status):
        self.exit_code = status

    def exit_signal_received(self, signal, core_dumped, msg, lang):
        self.exit_code = -1            # as paramiko reports a probe killed by a signal

    def connection_lost(self, exc):
        self._finish()

    def _finish(self):
        if not self.done.done():
            self.done.set_result(None)


class AsyncSSHTransport:
    """One host over SSH on the shared event loop. Construct, run() once or more, close()."""

    def __init__(self, host: Host, settings: SSHSettings, config: ClientConfig | None = None,
                 credentials: Credentials | None = None):
        self.host, self.settings = host, settings
        self.target = resolve_target(host, settings, config)
        if self.target.proxy_jump:     # refused by the preflight; never connect around a jump host
            raise TransportError(Status.UNREACHABLE, jump_refusal([host.name]))
        self.credentials = credentials or Credentials()
        self.conn: asyncssh.SSHClientConnection | None = None
        self.proxy: CommandSocket | None = None      # a ProxyCommand on a socket pair, while it runs
        self.loop = EventLoop.get()
        self.host_key_gate = HostKeyGate(self.credentials.host_keys, self.target, settings.accept_new_host_keys)

    def _host_key_algs(self) -> list[str]:
        """The gate's host key types (known ones first), as the paramiko engine asks for them."""
        return self.host_key_gate.algorithms(HOST_KEY_TYPES)

    # --- connect ------------------------------------------------------------------------------

    async def _tcp(self, timeout: float) -> socket.socket | None:
        """Our own TCP connect (none through a ProxyCommand): every address in turn, like
        socket.create_connection, within the connect timeout."""
        target, loop = self.target, asyncio.get_running_loop()
        end = time.monotonic() + timeout
        try:
            addresses = await asyncio.wait_for(loop.getaddrinfo(
                target.hostname, target.port, type=socket.SOCK_STREAM), timeout)
            error: OSError | None = None
            for family, kind, proto, _, address in addresses:
                sock = socket.socket(family, kind, proto)
                sock.setblocking(False)
                try:
                    await asyncio.wait_for(loop.sock_connect(sock, address), max(0.1, end - time.monotonic()))
                    return sock
                except BaseException as exc:
                    sock.close()
                    if not isinstance(exc, OSError) or isinstance(exc, TimeoutError):
                        raise
                    error = exc
            raise error or OSError(f"{target.hostname} has no address")
        except (asyncio.TimeoutError, TimeoutError):
            raise TransportError(Status.UNREACHABLE, f"no answer from {target.hostname}:{target.port} "
                                 f"within {timeout:.0f} s (host down or filtered)") from None
        except OSError as exc:
            raise TransportError(Status.UNREACHABLE, f"cannot connect to {target.hostname}:{target.port}: "
                                 f"{exc.strerror or exc}") from None

    async def _connect(self, deadline: float) -> None:
        if self.conn is None:
            self.conn = await self._handshake(deadline)

    async def _handshake(self, deadline: float) -> asyncssh.SSHClientConnection:
        target = self.target
        timeout = max(0.1, min(target.connect_timeout or self.settings.connect_timeout,
                               deadline - time.monotonic()))
        where = f"{target.user}@{target.hostname}:{target.port}"
        if target.proxy_command:       # ssh.py's ProxyCommand: own session, BatchMode, its stderr kept
            self.proxy = CommandSocket(target.proxy_command, paired=True)
        sock = self.proxy.sock if self.proxy else await self._tcp(timeout)
        check = _HostKeyCheck(self)
        loaded = [self.credentials.private_key(path) for path in target.key_files]
        keys = [key for key in loaded if key is not None]
        try:
            return await asyncio.wait_for(asyncssh.connect(
                target.hostname, target.port, sock=sock, username=target.user,
                known_hosts=([], [], []), server_host_key_algs=self._host_key_algs(),
                client_keys=keys, agent_path=None if target.identities_only else (),
                client_factory=lambda: check, connect_timeout=None, login_timeout=None,
                keepalive_interval=0, config=[], preferred_auth="publickey",
                compression_algs=None, encryption_algs=CIPHERS), timeout)
        except asyncssh.HostKeyNotVerifiable:
            raise self._host_key_error(check) from None
        except asyncssh.PermissionDenied as exc:
            raise TransportError(Status.AUTH_FAILED, f"{where} refused authentication ({exc.reason}); "
                                 f"check -u, --private-key or the host's authorized_keys") from None
        except (asyncio.TimeoutError, TimeoutError, asyncssh.Error, OSError) as exc:
            failure = self._negotiation_error(exc, check, where, timeout)
            if self.proxy is not None:               # the command says why, in its own words
                failure = await asyncio.get_running_loop().run_in_executor(
                    None, self.proxy.failure, 0.2) or failure
            raise failure from None
        finally:
            if check.conn is None:
                self._drop_proxy()
                if sock is not None:
                    sock.close()      # asyncssh never took it over

    def _drop_proxy(self) -> None:
        """Stop a ProxyCommand (its own session; waits up to 2 s) off the loop's thread."""
        proxy, self.proxy = self.proxy, None
        if proxy is not None:
            self.loop.run_in_executor(None, proxy.close)

    def _negotiation_error(self, exc: BaseException, check: _HostKeyCheck, where: str,
                           timeout: float) -> TransportError:
        """paramiko's wording for the same failures (ssh.py _failure): banner, negotiation, other."""
        target = self.target
        if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
            if check.conn is None or not check.conn.get_extra_info("server_version"):
                return TransportError(Status.TIMEOUT, f"{target.hostname}:{target.port} accepted TCP but sent "
                                      f"no SSH banner within {timeout:.0f} s (tarpit or overloaded sshd)")
            return TransportError(Status.TIMEOUT, f"SSH negotiation with {where} did not finish within "
                                  f"{timeout:.0f} s")
        return TransportError(Status.UNREACHABLE, f"SSH negotiation with {where} failed: "
                              f"{getattr(exc, 'reason', None) or exc}")

    def _host_key_error(self, check: _HostKeyCheck) -> TransportError:
        """The gate's reason; without one the server sent what was not asked for (a certificate)."""
        return TransportError(Status.HOST_KEY_REJECTED, check.refused or (
            f"host key of {self.target.hostname} refused: it presented a host certificate, which "
            f"rstfleet does not verify (no certificate type was asked for)"))

    # --- run ----------------------------------------------------------------------------------

    async def _start(self, command: str, payload: bytes, deadline: float, max_output: int):
        await self._connect(deadline)
        try:
            chan, session = await asyncio.wait_for(self.conn.create_session(
                lambda: _Collector(max_output), command, encoding=None),
                max(0.1, deadline - time.monotonic()))
            chan.write(payload)
        except (asyncio.TimeoutError, TimeoutError):
            raise TransportError(Status.TIMEOUT, "the host did not accept the command before the deadline") from None
        except (asyncssh.Error, OSError) as exc:
            raise TransportError(Status.UNREACHABLE, f"SSH session failed: {exc}") from None
        return chan, session

    def run(self, argv, stdin, deadline, max_output=DEFAULT_MAX_OUTPUT) -> RunResult:
        """start + EOF + wait in one trip to the loop: at 10,000 hosts three trips a host (each a
        thread handoff among 10,000) spread the exec burst at the common start from 6 to 10.5 s."""
        command, payload = SSHTransport._command(self, argv, stdin)   # the same quoting and sudo
        log.debug("%s: exec %s (%d bytes on stdin, asyncssh)", self.host.name, command, len(payload))

        async def whole() -> RunResult:
            chan, session = await self._start(command, payload, deadline, max_output)
            chan.write_eof()
            return await _Started(self, chan, session, max_output)._wait(deadline)
        return self._on_loop(whole(), deadline)

    def start(self, argv, stdin, deadline, max_output=DEFAULT_MAX_OUTPUT) -> "_Started":
        """Open a channel, exec argv and send stdin, without EOF (transport.Running)."""
        command, payload = SSHTransport._command(self, argv, stdin)   # the same quoting and sudo
        log.debug("%s: exec %s (%d bytes on stdin, asyncssh)", self.host.name, command, len(payload))
        chan, session = self._on_loop(self._start(command, payload, deadline, max_output), deadline)
        return _Started(self, chan, session, max_output)

    def connect(self, deadline: float) -> None:
        """The handshake now, if not made yet (Transport.connect); the calling thread waits for it."""
        self._on_loop(self._connect(deadline), deadline)

    def _on_loop(self, coroutine, deadline: float):
        """Run ``coroutine`` on the shared loop; this thread waits until the deadline (+ grace)."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(max(0.0, deadline - time.monotonic()) + RESULT_GRACE_S)
        except FutureTimeout:
            future.cancel()
            raise TransportError(Status.TIMEOUT, "the host did not answer before the deadline") from None

    def close(self) -> None:
        conn, self.conn = self.conn, None

        def stop() -> None:         # on the loop: the connection first, then its ProxyCommand
            if conn is not None:
                conn.abort()
            self._drop_proxy()

        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(stop)
        elif self.proxy is not None:
            self.proxy.close()


class _Started:
    """A command running on its channel (transport.Running); sends and waits go through the loop."""

    def __init__(self, transport: AsyncSSHTransport, chan, session: _Collector, max_output: int):
        self.transport, self.chan, self.session, self.max_output = transport, chan, session, max_output

    def ended(self) -> bool:
        return self.session.done.done() or self.session.exit_code is not None

    def send(self, data: bytes) -> None:
        def write() -> None:
            try:
                self.chan.write(data)
                self.chan.write_eof()
            except (asyncssh.Error, OSError, BrokenPipeError):
                log.debug("sending to a command that ended failed", exc_info=True)
        if not self.transport.loop.is_closed():
            self.transport.loop.call_soon_threadsafe(write)

    async def _wait(self, deadline: float) -> RunResult:
        session, timed_out = self.session, False
        try:
            await asyncio.wait_for(asyncio.shield(session.done), max(0.0, deadline - time.monotonic()))
        except (asyncio.TimeoutError, TimeoutError):
            timed_out = True
        self.chan.close()
        # No exit status and no timeout: the connection died first (None, as with paramiko).
        return RunResult(session.exit_code, bytes(session.stdout[:self.max_output]),
                         bytes(session.stderr[:self.max_output]), session.truncated, timed_out)

    def wait(self, deadline: float) -> RunResult:
        return self.transport._on_loop(self._wait(deadline), deadline)
