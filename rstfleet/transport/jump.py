"""ProxyJump through SSH channels of the jump hosts, as OpenSSH's -J does, with no local ssh.

The hops come from the resolver (target.py: ``SSHTarget.proxy_jump``; each hop's own settings
resolved for its name, as ``ssh -l USER -p PORT HOST`` would); a chain ``a,b`` is reached hop by
hop: ``a`` over TCP, ``b`` over a ``direct-tcpip`` channel of ``a``, the target over a channel of
``b``. Each hop is an ordinary SSH connection, so its host key
and authentication follow the rules of any host (ssh.py builds it; this module only shares it).

A sweep shares its jump connections (``JumpPool``): 500 hosts behind one bastion are 500 channels
on ⌈500 / JUMP_CHANNELS⌉ bastion sessions, opened one at a time — sshd's MaxStartups limits
connections still authenticating, and its MaxSessions does not count direct-tcpip channels.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import paramiko
from paramiko.common import MSG_CHANNEL_CLOSE

from . import TransportError
from ..probe.host.limits import JUMP_CHANNELS, MAX_JUMP_HOPS
from ..results import Status

log = logging.getLogger("rstfleet.ssh")
CLOSE_WAIT_S = 2.0   # longest a jump host's close waits for a send in flight (one idle tick)


def expand_chain(hops: tuple[str, ...], own_jump: Callable[[str], tuple[str, ...]]) -> tuple[str, ...]:
    """OpenSSH reaches the first hop with that hop's own ssh_config, so a ProxyJump there goes
    first: hops ("inner-bastion",) whose config says `ProxyJump edge` are the chain ("edge",
    "inner-bastion"). A loop — OpenSSH 9.2 forks ssh after ssh on one — is refused with a reason.
    """
    chain = hops
    while extra := own_jump(chain[0]):
        chain = extra + chain
        if len(set(chain)) < len(chain) or len(chain) > MAX_JUMP_HOPS:
            raise TransportError(Status.UNREACHABLE, f"ProxyJump {' -> '.join(chain)} loops or has more "
                                 f"than {MAX_JUMP_HOPS} hops (in ssh_config, keep jump hosts out of a "
                                 f"wildcard ProxyJump: `Host * !bastion`)")
    return chain


class ChannelStream:
    """A jump host's channel as the stream under the next hop's SSH connection, with its sends and
    its close never overlapping.

    paramiko's Channel checks "closed" and then sends outside its lock, so the next hop's reader
    thread (answering the end of a session) could put a data packet on the wire after the
    channel's close; sshd then drops the whole bastion connection ("data packet referred to
    nonexistent channel"), and with it every host behind it (seen with 100 hosts, one run in
    three). Here a send completes before any close starts, ours or the jump host's.
    """

    def __init__(self, channel: paramiko.Channel):
        self.channel = channel
        self.lock = channel.stream_lock = threading.Lock()   # also taken by ReasonedTransport

    def send(self, data: bytes) -> int:
        with self.lock:
            if self.channel.closed:
                raise OSError(errno.EPIPE, "the jump host's channel is closed")
            return self.channel.send(data)

    def recv(self, size: int) -> bytes:
        return self.channel.recv(size)

    def settimeout(self, timeout: float | None) -> None:
        self.channel.settimeout(timeout)

    def close(self) -> None:
        with self.lock:
            self.channel.close()

    @property
    def closed(self) -> bool:
        return self.channel.closed

    _closed = closed


def _close_after_sends(channel: paramiko.Channel, message) -> None:
    """The jump host closed a channel: answer with our close only once no send is half done
    (waiting at most CLOSE_WAIT_S, so a send stuck on flow control cannot stall the connection)."""
    lock = getattr(channel, "stream_lock", None)
    held = lock is not None and lock.acquire(timeout=CLOSE_WAIT_S)
    try:
        paramiko.Channel._handle_close(channel, message)
    finally:
        if held:
            lock.release()


class ReasonedTransport(paramiko.Transport):
    """paramiko's Transport, keeping the server's own words when it refuses a channel, and closing
    a jump channel only between sends (ChannelStream).

    paramiko reports a refused direct-tcpip channel as "Connect failed" and logs sshd's reason
    ("Connection refused", "No route to host"); that reason is what names the fault, so it is
    kept here per channel id (the failure message carries nothing else to match it by).
    """

    _channel_handler_table = {**paramiko.Transport._channel_handler_table,
                              MSG_CHANNEL_CLOSE: _close_after_sends}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.refusals: dict[int, str] = {}
        self._opener = threading.local()

    def _next_channel(self):
        chanid = super()._next_channel()   # called under self.lock by the opening thread
        self._opener.chanid = chanid
        return chanid

    def _parse_channel_open_failure(self, m):
        chanid, _, reason_text = m.get_int(), m.get_int(), m.get_text()   # id, code, text
        self.refusals[chanid] = reason_text
        m.rewind()
        super()._parse_channel_open_failure(m)

    def refusal(self) -> str | None:
        """sshd's reason for the channel this thread last tried to open, if it refused it."""
        return self.refusals.pop(getattr(self._opener, "chanid", -1), None)


def open_direct_tcpip(transport: paramiko.Transport, host: str, port: int, timeout: float,
                      via: str) -> ChannelStream:
    """A channel of ``transport`` connected by the jump host to host:port (what ``ssh -W`` does)."""
    try:
        return ChannelStream(transport.open_channel("direct-tcpip", dest_addr=(host, port),
                                                    src_addr=("127.0.0.1", 0), timeout=timeout))
    except (paramiko.SSHException, OSError, EOFError) as exc:
        # Checked first: with concurrent refusals paramiko may hand this thread's exception to
        # another opener and a bare "Unable to open channel." to this one.
        said = transport.refusal() if isinstance(transport, ReasonedTransport) else None
        if said or isinstance(exc, paramiko.ChannelException):
            detail = f"connect failed ({said})" if said else str(exc.args[-1]).lower()
            raise TransportError(Status.UNREACHABLE, f"via {via}: cannot reach {host}:{port}: {detail}") from None
        if "timeout" in str(exc).lower():
            raise TransportError(Status.UNREACHABLE, f"via {via}: no answer from {host}:{port} within "
                                                     f"{timeout:.0f} s (host down or filtered)") from None
        raise TransportError(Status.UNREACHABLE, f"via {via}: connection to the jump host lost "
                                                 f"({exc or type(exc).__name__})") from None


@dataclass
class _Connection:
    """One SSH connection to a chain's last hop and the channels it carries."""
    client: paramiko.SSHClient
    channels: list[ChannelStream] = field(default_factory=list)
    pending: int = 0    # channels being opened

    def alive(self) -> bool:
        transport = self.client.get_transport()
        return transport is not None and transport.is_active()

    def load(self) -> int:
        self.channels = [c for c in self.channels if not c.closed]
        return len(self.channels) + self.pending


@dataclass
class _Chain:
    connections: list[_Connection] = field(default_factory=list)
    opening: threading.Lock = field(default_factory=threading.Lock)
    error: TransportError | None = None   # the jump host failed once: every host behind it says so


class JumpPool:
    """The jump connections of one sweep, keyed by hop chain; thread-safe; close() at the end.

    A jump host that fails (unknown key, refused login, unreachable) fails once: the hosts behind
    it get that reason at once instead of each waiting for its own connect timeout.
    """

    def __init__(self, channels_per_connection: int = JUMP_CHANNELS):
        self.channels_per_connection = channels_per_connection
        self._lock = threading.Lock()
        self._chains: dict[tuple[str, ...], _Chain] = {}
        self._closed = False

    def channel(self, chain: tuple[str, ...], connect: Callable[[], paramiko.SSHClient],
                host: str, port: int, deadline: float, timeout: float) -> ChannelStream:
        """A direct-tcpip channel from the chain's last hop to host:port, opened within timeout;
        ``connect()`` opens a new connection to that hop when none is open or all are full (waiting
        for another thread's ``connect()`` ends at deadline)."""
        connection = self._reserve(chain, connect, deadline)
        channel = None
        try:
            timeout = max(0.1, min(timeout, deadline - time.monotonic()))
            channel = open_direct_tcpip(connection.client.get_transport(), host, port, timeout, chain[-1])
        finally:
            with self._lock:
                connection.pending -= 1
                if channel is not None:
                    connection.channels.append(channel)
        return channel

    def _free(self, entry: _Chain) -> _Connection | None:
        """A live connection with room for one more channel, reserved (caller holds self._lock)."""
        if self._closed:
            raise TransportError(Status.CANCELLED, "the sweep ended before this host's jump connection")
        if entry.error is not None:
            raise entry.error
        for dead in [c for c in entry.connections if not c.alive()]:
            dead.client.close()   # already down: returns at once
            entry.connections.remove(dead)
        for connection in entry.connections:
            if connection.load() < self.channels_per_connection:
                connection.pending += 1
                return connection
        return None

    def _reserve(self, chain: tuple[str, ...], connect: Callable[[], paramiko.SSHClient],
                 deadline: float) -> _Connection:
        with self._lock:
            entry = self._chains.setdefault(chain, _Chain())
            if (connection := self._free(entry)) is not None:
                return connection
        # One opener per chain at a time: the others wait for it, then share what it opened.
        if not entry.opening.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise TransportError(Status.TIMEOUT, f"jump host {chain[-1]}: no connection to it "
                                                 f"before this host's deadline")
        try:
            with self._lock:
                if (connection := self._free(entry)) is not None:
                    return connection
            log.debug("opening jump connection %s", " -> ".join(chain))
            try:
                client = connect()
            except TransportError as exc:
                with self._lock:
                    entry.error = exc
                raise
            with self._lock:
                if self._closed:
                    client.close()
                    raise TransportError(Status.CANCELLED, "the sweep ended before this host's jump connection")
                connection = _Connection(client, pending=1)
                entry.connections.append(connection)
                return connection
        finally:
            entry.opening.release()

    def connections(self, chain: tuple[str, ...]) -> int:
        """How many connections to the chain's last hop are open (tests, logs)."""
        with self._lock:
            entry = self._chains.get(chain)
            return sum(c.alive() for c in entry.connections) if entry else 0

    def close(self) -> None:
        """Close every jump connection, the deepest hops first; safe to call twice."""
        with self._lock:
            self._closed = True
            chains = sorted(self._chains.items(), key=lambda item: -len(item[0]))
            self._chains = {}
        for _, entry in chains:
            for connection in entry.connections:
                try:
                    connection.client.close()
                except (paramiko.SSHException, OSError, EOFError):
                    log.debug("closing a jump connection failed", exc_info=True)
