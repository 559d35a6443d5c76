"""How a host is reached, kept apart from what is asked of it.

Every transport offers one call: run(argv, stdin, deadline) -> RunResult. Failures to reach or
authenticate raise TransportError carrying a result status and a reason a person can act on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

DEFAULT_MAX_OUTPUT = 16 * 1024 * 1024


@dataclass
class RunResult:
    exit_code: int | None     # None when the command was cut off at the deadline
    stdout: bytes
    stderr: bytes
    truncated: bool = False   # output went past max_output and was cut
    timed_out: bool = False


class TransportError(Exception):
    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Transport(Protocol):
    def run(self, argv: list[str], stdin: bytes, deadline: float,
            max_output: int = DEFAULT_MAX_OUTPUT) -> RunResult:
        """Run argv with stdin until it exits or time.monotonic() passes deadline."""

    def close(self) -> None:
        """Release the connection; safe to call twice."""
