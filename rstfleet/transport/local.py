"""The local host, without SSH: like Ansible's implicit localhost (ansible_connection=local)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

from . import DEFAULT_MAX_OUTPUT, RunResult, TransportError
from ..results import Status


class LocalTransport:
    """Runs the command as a child process; `python3` resolves to this interpreter when the PATH has none."""

    def __init__(self, become: bool = False):
        self.become = become
        self._process: subprocess.Popen | None = None

    def _resolve(self, argv: list[str]) -> list[str]:
        argv = list(argv)
        if argv and argv[0] == "python3" and shutil.which("python3") is None:
            argv[0] = sys.executable
        if self.become and os.geteuid() != 0:
            argv = ["sudo", "-n", "--"] + argv
        return argv

    def connect(self, deadline: float) -> None:
        """No handshake: the local host is reached at once (Transport.connect)."""

    def run(self, argv, stdin, deadline, max_output=DEFAULT_MAX_OUTPUT) -> RunResult:
        try:
            self._process = subprocess.Popen(
                self._resolve(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, start_new_session=True)
        except FileNotFoundError as exc:
            raise TransportError(Status.NO_PYTHON, f"cannot start {exc.filename}: not installed") from None
        try:
            out, err = self._process.communicate(stdin, timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self._kill()
            out, err = self._process.communicate()
            return RunResult(None, out[:max_output], err[:max_output], len(out) > max_output, True)
        return RunResult(self._process.returncode, out[:max_output], err[:max_output],
                         len(out) > max_output or len(err) > max_output)

    def _kill(self) -> None:
        if self._process and self._process.poll() is None:
            try:
                os.killpg(self._process.pid, 9)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        self._kill()
