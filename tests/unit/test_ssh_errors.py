"""How reaching a host over SSH fails: each paramiko/socket error becomes (status, reason).

The mapping lives in ssh.py (open_socket, ssh_over, _failure): rstfleet opens its own TCP connection. No network is
used: ``socket.create_connection`` is replaced, either by one that raises the real OS error, or by
one that hands back one end of a socketpair with a real paramiko server (real host keys, real
handshake, real authentication refusal) on the other end, in a thread of this process.
"""

import socket
import threading
import time
from contextlib import contextmanager

import paramiko

import pytest

from rstfleet.inventory import Host
from rstfleet.results import Status
from rstfleet.transport import TransportError
from rstfleet.transport import ssh
from rstfleet.transport.host_keys import KnownHostsStore
from rstfleet.transport.ssh import SharedCredentials, SSHSettings, SSHTarget, SSHTransport, VerifyHostKey

HOST = Host("web1", "web1.example")
SERVER_KEY = paramiko.ECDSAKey.generate()
OTHER_KEY = paramiko.ECDSAKey.generate()


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)      # never offer this machine's agent
    key = tmp_path / "id_ecdsa"
    paramiko.ECDSAKey.generate().write_private_key_file(str(key))
    return SSHSettings(user="probe", key_file=str(key), known_hosts_files=(str(tmp_path / "known_hosts"),),
                       connect_timeout=0.5, ssh_config_path=None)


def trust(settings, key, name="web1.example"):
    with open(settings.known_hosts_files[0], "a") as handle:
        handle.write(f"{name} {key.get_name()} {key.get_base64()}\n")


def failure(settings) -> TransportError:
    transport = SSHTransport(HOST, settings)
    try:
        with pytest.raises(TransportError) as caught:
            transport.run(["true"], b"", time.monotonic() + 5)
    finally:
        transport.close()
    return caught.value


def refuse_connect(monkeypatch, error):
    def create_connection(address, timeout=None):
        raise error
    monkeypatch.setattr(ssh.socket, "create_connection", create_connection)


@pytest.mark.parametrize("error, words", [
    (socket.timeout("timed out"), "no answer from web1.example:22"),
    (ConnectionRefusedError(111, "Connection refused"), "cannot connect to web1.example:22: Connection refused"),
    (OSError(113, "No route to host"), "No route to host"),
    (socket.gaierror(-2, "Name or service not known"), "Name or service not known"),
])
def test_a_tcp_connect_that_fails_makes_the_host_unreachable_with_the_os_reason(
        settings, monkeypatch, error, words):
    refuse_connect(monkeypatch, error)
    failed = failure(settings)
    assert failed.status == Status.UNREACHABLE
    assert words in failed.reason


def test_every_address_refusing_is_one_reason_without_repeats(settings, monkeypatch):
    refused = ConnectionRefusedError(111, "Connection refused")
    refuse_connect(monkeypatch, paramiko.ssh_exception.NoValidConnectionsError(
        {("192.0.2.1", 22): refused, ("2001:db8::1", 22, 0, 0): refused}))
    failed = failure(settings)
    assert failed.status == Status.UNREACHABLE
    assert failed.reason == "cannot connect to web1.example:22: Connection refused"


class _Unix:
    """A socketpair end that accepts the TCP_NODELAY _connect sets (AF_UNIX has no Nagle)."""

    def __init__(self, sock):
        self._sock = sock

    def setsockopt(self, *args):
        """Nothing to set on a socketpair."""

    def __getattr__(self, name):
        return getattr(self._sock, name)


class _Refusing(paramiko.ServerInterface):
    def get_allowed_auths(self, username):
        return "publickey"

    def check_auth_publickey(self, username, key):
        return paramiko.AUTH_FAILED


@contextmanager
def server(monkeypatch, behaviour="ssh", key=SERVER_KEY):
    """A real SSH server (or a mute/closing peer) reached through create_connection."""
    client_end, server_end = socket.socketpair()
    monkeypatch.setattr(ssh.socket, "create_connection", lambda address, timeout=None: _Unix(client_end))
    transports = []
    if behaviour == "fin":                    # sshd closing at once: FIN, our banner still sent
        server_end.shutdown(socket.SHUT_WR)
    elif behaviour == "reset":                # gone before we write: our banner write fails
        server_end.close()

    def serve():
        if behaviour != "ssh":
            return
        t = paramiko.Transport(server_end)
        transports.append(t)
        t.add_server_key(key)
        try:
            t.start_server(server=_Refusing())
        except (paramiko.SSHException, EOFError, OSError):
            pass
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join(5)
        for t in transports:
            t.close()
        server_end.close()


def test_an_unknown_host_key_is_refused_with_its_fingerprint_and_how_to_trust_it(settings, monkeypatch):
    with server(monkeypatch):
        failed = failure(settings)
    assert failed.status == Status.HOST_KEY_REJECTED
    assert SERVER_KEY.fingerprint in failed.reason and "not in known_hosts" in failed.reason
    assert f"ssh-keyscan web1.example >> {settings.known_hosts_files[0]}" in failed.reason
    assert "--accept-new-host-keys" in failed.reason


def test_a_changed_host_key_is_refused_naming_both_keys(settings, monkeypatch):
    trust(settings, OTHER_KEY)
    with server(monkeypatch):
        failed = failure(settings)
    assert failed.status == Status.HOST_KEY_REJECTED
    assert "CHANGED" in failed.reason
    assert SERVER_KEY.fingerprint in failed.reason and OTHER_KEY.fingerprint in failed.reason


def test_a_known_host_that_refuses_every_key_is_auth_failed_naming_user_and_host(settings, monkeypatch):
    trust(settings, SERVER_KEY)
    with server(monkeypatch):
        failed = failure(settings)
    assert failed.status == Status.AUTH_FAILED
    assert "probe@web1.example:22 refused authentication" in failed.reason
    assert "--private-key" in failed.reason


def test_accept_new_records_a_first_seen_key_but_still_refuses_a_changed_one(settings, monkeypatch):
    settings.accept_new_host_keys = True
    with server(monkeypatch):
        first = failure(settings)
    assert first.status == Status.AUTH_FAILED          # the key was accepted, auth came next
    recorded = paramiko.HostKeys(settings.known_hosts_files[0])
    assert recorded.lookup("web1.example")[SERVER_KEY.get_name()] == SERVER_KEY
    with server(monkeypatch, key=OTHER_KEY):
        second = failure(settings)
    assert second.status == Status.HOST_KEY_REJECTED and "CHANGED" in second.reason


def test_a_peer_that_accepts_tcp_but_sends_no_banner_is_a_timeout(settings, monkeypatch):
    trust(settings, SERVER_KEY)
    settings.connect_timeout = 0.3
    started = time.monotonic()
    with server(monkeypatch, "mute"):
        failed = failure(settings)
    assert failed.status == Status.TIMEOUT
    assert "no SSH banner" in failed.reason
    assert time.monotonic() - started < 3


def test_a_peer_that_closes_before_its_banner_is_not_called_a_timeout(settings, monkeypatch):
    started = time.monotonic()
    with server(monkeypatch, "fin"):
        failed = failure(settings)
    assert time.monotonic() - started < settings.connect_timeout   # it did not wait for anything
    assert failed.status == Status.UNREACHABLE
    assert "closed the connection before SSH began" in failed.reason and "tarpit" not in failed.reason


def test_a_peer_that_resets_before_our_banner_is_a_transport_error(settings, monkeypatch):
    with server(monkeypatch, "reset"):
        failed = failure(settings)
    assert failed.status == Status.UNREACHABLE
    assert failed.reason.startswith("web1.example:22 closed the connection before SSH began")


def test_accept_new_appends_a_known_hosts_line_in_a_private_new_folder(tmp_path):
    path = tmp_path / "new" / "known_hosts"
    store = KnownHostsStore()

    def accept(name, key):
        target = SSHTarget(name, 22, "u", [], [str(path)])
        VerifyHostKey(store, target, accept_new=True).missing_host_key(None, name, key)
    accept("web1.example", SERVER_KEY)
    accept("web2.example", OTHER_KEY)
    assert (path.parent.stat().st_mode & 0o777) == 0o700
    assert paramiko.HostKeys(str(path)).lookup("web2.example")[OTHER_KEY.get_name()] == OTHER_KEY
    accept("web1.example", SERVER_KEY)             # seen by the run's store: not written twice
    assert len(path.read_text().splitlines()) == 2


def test_a_key_needing_a_passphrase_or_missing_is_left_to_paramikos_own_search(tmp_path):
    locked = tmp_path / "locked"
    SERVER_KEY.write_private_key_file(str(locked), password="secret")
    shared = SharedCredentials()
    assert shared.private_key(str(locked)) is None
    assert shared.private_key(str(tmp_path / "absent")) is None

