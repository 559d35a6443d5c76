"""ProxyCommand as OpenSSH runs it, except that it can never prompt and its error is kept.

OpenSSH runs ``$SHELL -c "exec COMMAND"`` (tokens expanded by the resolver, ssh_config.py) with
the SSH stream on the command's stdin and stdout; so does this module.
Here the command also runs in a new session (no controlling terminal, so nothing it starts can
open /dev/tty to ask "Are you sure you want to continue connecting (yes/no)?"), a local ``ssh``
gets ``-o BatchMode=yes`` (it fails instead of asking), and the tail of its stderr is kept so that
"Host key verification failed." becomes the host's reason, not "no SSH banner (tarpit)".
paramiko.ProxyCommand can do none of that (it also spins on EOF), hence this small socket-like
class: send, recv, settimeout, close, as paramiko's Packetizer uses them. An engine that wants a
real socket (asyncssh) gets the command on one end of a socket pair instead (``paired=True``:
``.sock`` is the other end), with the same session, BatchMode and stderr.
"""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import threading

from paramiko.ssh_exception import ProxyCommandFailure

from . import TransportError
from ..probe.host.limits import PROXY_STDERR_BYTES
from ..results import Status

# `ssh …`, `/usr/bin/ssh …` or `exec ssh …` at the start of the command (not ssh-keyscan, sshpass).
_LOCAL_SSH = re.compile(r"^(\s*(?:exec\s+)?(?:\S*/)?ssh)(?=\s)")
_HOST_KEY_WORDS = re.compile(r"host key verification failed|remote host identification has changed", re.I)


def never_prompting(command: str) -> str:
    """``ssh -W %h:%p bastion`` -> ``ssh -o BatchMode=yes -W %h:%p bastion``: first on the line, so
    it wins over any later BatchMode (ssh keeps an option's first value)."""
    return _LOCAL_SSH.sub(r"\1 -o BatchMode=yes", command, count=1)


class CommandSocket:
    """A running ProxyCommand seen as a socket; ``failure()`` says why it ended, in its own words."""

    def __init__(self, command: str, paired: bool = False):
        self.command = command
        self.timeout: float | None = None
        self._stderr = bytearray()
        self.sock, theirs = socket.socketpair() if paired else (None, subprocess.PIPE)
        try:
            self.process = subprocess.Popen(
                [os.environ.get("SHELL") or "/bin/sh", "-c", "exec " + never_prompting(command)], stdin=theirs,
                stdout=theirs, stderr=subprocess.PIPE, bufsize=0, start_new_session=True)
        except OSError:
            if self.sock is not None:
                self.sock.close()
            raise
        finally:
            if paired:
                theirs.close()
        self._reader = threading.Thread(target=self._read_stderr, name="rstfleet-proxycommand", daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        """Drained all along (a full pipe would stall the command); only the tail is kept."""
        while chunk := os.read(self.process.stderr.fileno(), 4096):
            self._stderr += chunk
            del self._stderr[:-PROXY_STDERR_BYTES]

    def send(self, data: bytes) -> int:
        fd = self.process.stdin.fileno()
        if not select.select([], [fd], [], self.timeout)[1]:
            raise socket.timeout()
        try:
            return os.write(fd, data)
        except OSError as exc:
            raise ProxyCommandFailure(self.command, exc.strerror) from None

    def recv(self, size: int) -> bytes:
        """What the command wrote, b"" once it closed its stdout (paramiko reads that as EOF)."""
        fd = self.process.stdout.fileno()
        if not select.select([fd], [], [], self.timeout)[0]:
            raise socket.timeout()
        try:
            return os.read(fd, size)
        except OSError as exc:
            raise ProxyCommandFailure(self.command, exc.strerror) from None

    def settimeout(self, timeout: float | None) -> None:
        self.timeout = timeout

    def failure(self, wait_s: float = 1.0) -> TransportError | None:
        """Why the command ended, in its own words (waiting up to wait_s for it to end), or None
        while it runs: a live command that relays nothing is the far end's fault, not its own.

        ssh's "Host key verification failed." is a host key problem, "Permission denied" an
        authentication one; anything else leaves the host unreachable.
        """
        try:
            code = self.process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            return None
        self._reader.join(timeout=wait_s)
        lines = [line.strip() for line in bytes(self._stderr).decode("utf-8", "replace").splitlines()]
        said = "; ".join(line for line in lines if line)[-400:] or "no error message"
        status = (Status.HOST_KEY_REJECTED if _HOST_KEY_WORDS.search(said)
                  else Status.AUTH_FAILED if "permission denied" in said.lower() else Status.UNREACHABLE)
        shown = self.command if len(self.command) <= 120 else self.command[:117] + "..."
        return TransportError(status, f"ProxyCommand exited with {code}: {said} (command: {shown})")

    def close(self) -> None:
        """Stop the command and whatever it started (its own session); safe to call twice."""
        if self.process.poll() is None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(self.process.pid, sig)
                    self.process.wait(timeout=1.0)
                    break
                except ProcessLookupError:
                    break
                except subprocess.TimeoutExpired:
                    continue
        self._reader.join(timeout=1.0)
        pipes = (self.process.stdin, self.process.stdout) + (() if self._reader.is_alive() else (self.process.stderr,))
        for pipe in (p for p in pipes if p is not None):
            pipe.close()
        if self.sock is not None:
            self.sock.close()

    @property
    def closed(self) -> bool:
        return self.process.returncode is not None

    _closed = closed
