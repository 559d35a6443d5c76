"""One record per host, whatever happened: the probe's document when it ran, a status and reason always.

Statuses (as in the JSON report):
    ok                 the probe ran and its document validated
    unreachable        no TCP connection to sshd (refused, no route, name does not resolve, timed out)
    auth_failed        sshd refused every credential offered
    host_key_rejected  the host key is unknown or differs from known_hosts
    timeout            the host did not answer within its deadline (tarpit, hung probe)
    no_python          the host has no python3 to run the probe
    become_failed      sudo refused or needs a password (-K) for -b
    probe_error        the probe ran but failed, or its output was not a valid probe document
    cancelled          the run was interrupted before this host finished
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum

from .probe.document import ProbeDocument
from .probe.schema import ShapeError, check_document, check_readiness

class Status(str, Enum):
    """A host's outcome; string-valued, so the JSON report says "ok", "timeout", ..."""

    OK = "ok"
    UNREACHABLE = "unreachable"
    AUTH_FAILED = "auth_failed"
    HOST_KEY_REJECTED = "host_key_rejected"
    TIMEOUT = "timeout"
    NO_PYTHON = "no_python"
    BECOME_FAILED = "become_failed"
    PROBE_ERROR = "probe_error"
    CANCELLED = "cancelled"

    __str__ = str.__str__          # f"{status}" is "ok", not "Status.OK"
    __format__ = str.__format__


STATUSES = tuple(status.value for status in Status)

SUPPORTED_PROBE_SCHEMA = 1
PROBE_KIND, CHECK_KIND = "rstfleet-probe", "rstfleet-check"   # a sweep's document, `rstfleet check`'s
_SHAPES = {PROBE_KIND: check_document, CHECK_KIND: check_readiness}
MAX_JSON_DEPTH = 32


class ProbeOutputError(ValueError):
    """The probe's stdout is not a probe document we can trust."""


@dataclass
class HostResult:
    host: str
    address: str
    status: Status
    reason: str = ""
    probe: dict | None = None
    elapsed_s: float = 0.0
    groups: tuple[str, ...] = field(default_factory=tuple)
    # The capture's bytes, when the controller has them (evidence/captures.py loads or saves them:
    # analysis reads no files); capture_note says why a capture named in the document is missing.
    pcap: bytes | None = field(default=None, repr=False, compare=False)
    capture_note: str = field(default="", compare=False)

    @property
    def checked(self) -> bool:
        return self.status == Status.OK

    @property
    def document(self) -> ProbeDocument | None:
        """The probe document as typed records (built from the validated JSON on first use)."""
        if self.probe is None:
            return None
        cached = self.__dict__.get("_document")
        if cached is None or cached[0] is not self.probe:
            cached = (self.probe, ProbeDocument.from_checked(self.probe))
            self.__dict__["_document"] = cached
        return cached[1]


def _depth(value, limit: int, level: int = 0) -> int:
    if level > limit:
        raise ProbeOutputError(f"probe output nests deeper than {limit} levels")
    if isinstance(value, dict):
        return max([_depth(v, limit, level + 1) for v in value.values()] or [level])
    if isinstance(value, list):
        return max([_depth(v, limit, level + 1) for v in value] or [level])
    return level


MAX_JSON_CONTAINERS = 50_000   # a real document has a few thousand at most (trace flows)
MAX_JSON_ITEMS = 500_000


def parse_probe_output(stdout: bytes, trusted_paths: bool = False, kind: str = PROBE_KIND) -> dict:
    """Validate the probe's stdout and return its document; ProbeOutputError says what is wrong.

    A host may be broken or hostile, so: strict UTF-8, bounded nesting, the schema version checked,
    and every number the ranking uses must be finite. ``kind`` is the document the caller asked
    for (a check document is never taken for a sweep's, nor the reverse).
    """
    try:
        text = stdout.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProbeOutputError(f"probe output is not UTF-8 (byte {exc.start})") from None
    text = text.strip()
    if not text:
        raise ProbeOutputError("probe printed nothing")
    if "\x00" in text:
        raise ProbeOutputError("probe output contains NUL bytes")
    # Cheap counts before json.loads: 16 MiB of "[[]]," would otherwise cost ~600 MiB to parse.
    if text.count("[") + text.count("{") > MAX_JSON_CONTAINERS or text.count(",") > MAX_JSON_ITEMS:
        raise ProbeOutputError("probe output has far more JSON items than a probe document; "
                               "refused before parsing")
    try:
        document = json.loads(text)
    except RecursionError:
        raise ProbeOutputError("probe output nests too deeply") from None
    except ValueError as exc:
        raise ProbeOutputError(f"probe output is not JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("kind") != kind:
        wanted = "check" if kind == CHECK_KIND else "probe"
        raise ProbeOutputError(f"probe output is not an rstfleet {wanted} document")
    _depth(document, MAX_JSON_DEPTH)
    if document.get("schema") != SUPPORTED_PROBE_SCHEMA:
        raise ProbeOutputError(
            f"probe schema {document.get('schema')!r:.20} is not the supported "
            f"{SUPPORTED_PROBE_SCHEMA}: run the same rstfleet version everywhere")
    try:
        return _SHAPES[kind](document, trusted_paths)
    except ShapeError as exc:
        raise ProbeOutputError(str(exc)) from None
