"""The known_hosts files of a run: read once, warned once, written by accept-new, and the one
decision on a host's key that both SSH engines take (HostKeyGate).

Which files, as OpenSSH (``ssh -G`` prints them as userknownhostsfile / globalknownhostsfile;
target.py resolves them): the user files, ``~/.ssh/known_hosts`` and ``~/.ssh/known_hosts2`` of
the passwd home, or those named with ``--known-hosts`` / ``UserKnownHostsFile``, which replace
them; then the global files ``/etc/ssh/ssh_known_hosts`` and ``…2``, read in every case (replaced
only by ``GlobalKnownHostsFile``). A missing file reads as empty; new keys go to the first user file.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shlex
import threading

from typing import Collection

from .keyblob import KeyBlobError, kind_of, parse_key
from .ssh_config import expand_home
from .ssh_config_file import parse_hop
from .known_hosts import (SALT_BYTES, HostKeyCheck, KnownHosts, KnownHostsLine, HostKeyVerdict, entry_text,
                          fingerprint, host_port, lookup_name, parse_line, parse_text)
from .target import SSHTarget

log = logging.getLogger("rstfleet.ssh")
# What either engine asks a host for: OpenSSH 9.2's default HostKeyAlgorithms without the
# certificate types (no engine here verifies a host certificate: a CA-trusted host is refused
# saying so) and the security-key ones (no sshd has such a host key); known types go first.
HOST_KEY_ALGORITHMS = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
                       "rsa-sha2-512", "rsa-sha2-256")
_warned: set[str] = set()
_warned_lock = threading.Lock()


def warn_once(message: str) -> None:
    """A known_hosts problem is logged once per run, however many hosts meet it."""
    with _warned_lock:
        if message in _warned:
            return
        _warned.add(message)
    log.warning("known_hosts: %s", message)


def read_file(path: str) -> tuple[list[KnownHostsLine], list[str]]:
    """A file's usable lines and its problems; a missing file is empty, an unreadable one a problem."""
    try:
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8", "surrogateescape")
    except FileNotFoundError:
        return [], []
    except OSError as exc:
        return [], [f"{path}: cannot read ({exc.strerror or exc}); file skipped"]
    lines, problems = parse_text(text, path)
    return lines, [f"{problem}; line skipped" for problem in problems]


class KnownHostsStore:
    """Each file read and parsed once per run and shared by every connection (thread-safe):
    parsing per connection cost 4-11 ms of CPU each (bench/profile_sweep.py). Keys recorded with
    --accept-new-host-keys are written to the file and seen by later lookups of this run."""

    def __init__(self):
        self._lock = threading.RLock()
        self._files: dict[str, list[KnownHostsLine]] = {}
        self._views: dict[tuple[str, ...], KnownHosts] = {}

    def known_hosts(self, paths: tuple[str, ...]) -> KnownHosts:
        with self._lock:
            if paths not in self._views:
                for path in paths:
                    if path not in self._files:
                        self._files[path], problems = read_file(path)
                        for problem in problems:
                            warn_once(problem)
                self._views[paths] = KnownHosts([line for path in paths for line in self._files[path]])
            return self._views[paths]

    def record(self, paths: tuple[str, ...], hostname: str, port: int, key_type: str, blob: bytes,
               alias: str | None = None, hashed: bool = False) -> HostKeyCheck:
        """OpenSSH's accept-new into the first file: under the lock, check again (another
        connection may have just recorded the host), then append the line as ssh writes it."""
        key = parse_key(key_type, blob)
        name = lookup_name(alias) if alias else host_port(lookup_name(hostname), port)
        path = paths[0]
        with self._lock:
            again = self.known_hosts(paths).verify(hostname, port, key, alias)
            if again.verdict is not HostKeyVerdict.UNKNOWN:
                return again
            text = entry_text(name, key_type, blob, os.urandom(SALT_BYTES) if hashed else None)
            try:
                number = _append_line(path, text)
            except OSError as exc:      # ssh too connects anyway, saying it could not add the key
                warn_once(f"{path}: cannot record new host keys ({exc.strerror or exc}); "
                          f"they are trusted for this run only")
                number = 0
            line = parse_line(text, path, number)
            self._files.setdefault(path, []).append(line)
            for view_paths, view in self._views.items():
                if path in view_paths:
                    view.add(line)
            return HostKeyCheck(HostKeyVerdict.TRUSTED, name, line)


def known_hosts_paths(target: SSHTarget) -> tuple[str, ...]:
    """The user files (the first one takes accept-new's lines), then the global ones, as ssh
    reads them (the target holds what ssh -G prints: UserKnownHostsFile, GlobalKnownHostsFile)."""
    return tuple(target.known_hosts_files) + tuple(expand_home(p) for p in target.global_known_hosts_files)


class HostKeyGate:
    """One host's key, decided by the same code whichever engine connects (ssh.py's paramiko
    policy, asyncssh_engine.py's client callback): the host key types to ask for, then the
    presented key against the run's known_hosts (OpenSSH's verdicts, known_hosts.py), accept-new
    recording, and the refusal with what to do. ``via`` is the jump host that reaches this one."""

    def __init__(self, store: KnownHostsStore, target: SSHTarget, accept_new_host_keys: bool,
                 via: str | None = None):
        self.store, self.via = store, via
        self.hostname, self.port, self.alias = target.hostname, target.port, target.host_key_alias
        self.paths = known_hosts_paths(target)
        self.known = store.known_hosts(self.paths)       # read here, before any handshake waits on it
        # --accept-new-host-keys or StrictHostKeyChecking accept-new; ssh writes nowhere without a
        # user file (UserKnownHostsFile none): unknown stays refused.
        self.accept_new = ((accept_new_host_keys or target.strict_host_key_checking == "accept-new")
                           and bool(target.known_hosts_files))
        self.hint_file = (self.paths or ("~/.ssh/known_hosts",))[0]

    def algorithms(self, supported: Collection[str]) -> list[str]:
        """HOST_KEY_ALGORITHMS the engine supports, those of the key types known_hosts holds for
        this host first (OpenSSH's order_hostkeyalgs): a host with several keys presents the
        known one rather than a "changed" other type."""
        kinds = self.known.known_kinds(self.hostname, self.port, self.alias)
        offered = [name for name in HOST_KEY_ALGORITHMS if name in supported]
        first = [name for name in offered if kind_of(name)[:2] in kinds]
        return first + [name for name in offered if name not in first]

    def refusal(self, key_type: str, blob: bytes) -> str | None:
        """None when the presented key is trusted (or recorded by accept-new); else why the host
        is refused and what to do."""
        presented = f"{key_type} {fingerprint(blob)}"
        try:
            key = parse_key(key_type, blob)
        except KeyBlobError as exc:
            return f"host key of {self.hostname} ({presented}) refused: {exc}"
        check = self.known.verify(self.hostname, self.port, key, self.alias)
        if check.verdict is HostKeyVerdict.UNKNOWN and self.accept_new:
            check = self.store.record(self.paths, self.hostname, self.port, key_type, blob, self.alias)
        if check.verdict is HostKeyVerdict.TRUSTED:
            return None
        return refusal(check, presented, self.hostname, self.port, self.hint_file, self.alias, self.via)


def _append_line(path: str, text: str) -> int:
    """Append under an exclusive lock (other runs, ssh itself) and return the line's number; a
    last line without its newline gets one first, so the two lines are not glued together."""
    folder = os.path.dirname(path) or "."
    if not os.path.lexists(folder):
        os.makedirs(folder, mode=0o700)
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            handle.seek(0)
            before = handle.read()
            prefix = b"\n" if before and not before.endswith(b"\n") else b""
            handle.write(prefix + text.encode("utf-8", "surrogateescape") + b"\n")
            return before.count(b"\n") + len(prefix) + 1
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _keyscan(hostname: str, port: int, record_file: str, alias: str | None, via: str | None) -> str:
    port_option = f"-p {port} " if port != 22 else ""
    scan = f"ssh-keyscan {port_option}{shlex.quote(hostname)}"
    if via:     # behind a jump host only the last hop reaches the host: the scan runs there
        user, jump, jump_port = parse_hop(via)
        login = shlex.quote(f"{user}@{jump}" if user else jump)
        # The remote shell parses the command again: it travels as one quoted word.
        scan = f"ssh {f'-p {jump_port} ' if jump_port else ''}{login} {shlex.quote(scan)}"
    command = f"{scan} >> {shlex.quote(record_file)}"
    return command + (f" and put the HostKeyAlias {alias} in place of the host name" if alias else "")


def refusal(check: HostKeyCheck, presented: str, hostname: str, port: int, record_file: str,
            alias: str | None = None, via: str | None = None) -> str:
    """The reason a host is refused, with what to do; ``presented`` is 'TYPE SHA256:…', ``via``
    the ProxyJump hop that reaches the host, if any."""
    line = check.line
    keyscan = _keyscan(hostname, port, record_file, alias, via)
    if check.verdict is HostKeyVerdict.CHANGED:
        return (f"host key of {check.name} CHANGED: it presented {presented}, known_hosts expects "
                f"{line.key_type} {line.fingerprint} ({line.where}); possible impersonation — verify "
                f"the host, then update the known_hosts entry")
    if check.verdict is HostKeyVerdict.REVOKED:
        return (f"host key of {check.name} ({presented}) is REVOKED by {line.where} (@revoked), "
                f"refused even if another line trusts it; a revoked key may be stolen — verify the "
                f"host and give it a new key")
    if check.verdict is HostKeyVerdict.CA_ONLY:
        return (f"host key of {check.name} ({presented}) could only be trusted through the "
                f"@cert-authority line {line.where}, and rstfleet cannot verify host "
                f"certificates; add the host's own key to known_hosts: {keyscan} (after checking "
                f"the fingerprint)")
    return (f"host key of {check.name} ({presented}) is not in known_hosts; to trust it: {keyscan} "
            f"(after checking the fingerprint), or rerun with --accept-new-host-keys")
