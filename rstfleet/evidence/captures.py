"""All disk I/O of captures: the run folder, the pcap files, reading them back.

Captures are written to the run folder (0700), one file per host (0600: they hold other
people's traffic), under a name made safe from the inventory name, then replaced in the probe
document by their path so saved reports stay small.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import os
import re
import stat
from pathlib import Path

from ..results import HostResult


def safe_file_name(host: str) -> str:
    """A file name no inventory name can turn into a path: '../../etc/x' -> '.._.._etc_x-1a2b3c'."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", host).lstrip(".") or "host"
    if cleaned != host:
        cleaned += "-" + hashlib.sha256(host.encode()).hexdigest()[:6]
    return cleaned[:100]


def make_run_dir(base: str | os.PathLike, stamp: str) -> Path:
    root = Path(base)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    run_dir = root / stamp
    run_dir.mkdir(mode=0o700, exist_ok=True)
    os.chmod(run_dir, 0o700)
    return run_dir


def save_capture(result: HostResult, run_dir: Path | None) -> bytes | None:
    """Decode the host's pcap, store it (0600) and replace it in the document by its path. The
    bytes stay on the result even if the file cannot be written (a note says so)."""
    capture = (result.probe or {}).get("capture") or {}
    encoded = capture.pop("pcap_b64", None)
    if not encoded:
        return None
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        capture["error"] = "capture was not valid base64"
        return None
    result.pcap = data
    if run_dir is not None:
        path = run_dir / (safe_file_name(result.host) + ".pcap")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        except OSError as exc:
            result.capture_note = (f"capture not saved as {path} ({exc.strerror or exc}): its evidence "
                                   f"is in this report, the pcap itself is not kept")
            return data
        capture["path"] = str(path)
    return data


MAX_STORED_PCAP = 64 * 1024 * 1024


class CaptureFileError(ValueError):
    """A capture file that is not one to read: what is wrong, in words (the caller adds the path).
    ``unavailable``: it could not be opened at all (missing, unreadable, a symbolic link)."""

    def __init__(self, problem: str, unavailable: bool = False):
        super().__init__(problem)
        self.unavailable = unavailable


def read_capture_file(path: str, limit: int) -> bytes:
    """The bytes of a capture file: a regular file of at most ``limit`` bytes, opened without
    following a symbolic link (O_NOFOLLOW) or blocking on a FIFO (O_NONBLOCK), never a device."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise CaptureFileError("is a symbolic link (not followed: name the file itself)",
                                   unavailable=True) from None
        raise CaptureFileError(exc.strerror or str(exc), unavailable=True) from None
    except ValueError as exc:                      # a NUL in the path
        raise CaptureFileError(str(exc), unavailable=True) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise CaptureFileError("is not a regular file")
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(limit + 1) if info.st_size <= limit else b""
        if info.st_size > limit or len(data) > limit:      # checked again: the file may grow
            raise CaptureFileError(f"is over {limit} bytes")
        return data


def read_stored_pcap(capture: dict) -> tuple[bytes | None, str]:
    """(the capture the controller saved, or None and why not). The path is ours: host-sent
    paths are dropped on validation; a regular file of bounded size, never a device or a fd."""
    path = capture.get("path")
    if not isinstance(path, str) or not path:
        return None, ""
    try:
        return read_capture_file(path, MAX_STORED_PCAP), ""
    except CaptureFileError as exc:
        if not exc.unavailable:
            return None, f"capture {path} is not a regular file of at most {MAX_STORED_PCAP} bytes; ignored"
        return None, (f"capture {path} is unavailable ({exc}): its ports, peers and scan "
                      f"evidence are missing from this report; keep the run folder with the JSON")


def attach_stored_captures(results: list[HostResult]) -> None:
    """Give saved results (``rstfleet report``) their capture bytes back, or a note saying why not."""
    for result in results:
        capture = (result.probe or {}).get("capture")
        if isinstance(capture, dict) and result.pcap is None:
            result.pcap, result.capture_note = read_stored_pcap(capture)


def store_captures(results: list[HostResult], base: str | os.PathLike, stamp: str) -> Path | None:
    """Save every host's capture under base/stamp (made only when some host captured). Never
    raises for the disk: the sweep already ran, so a capture that cannot be kept becomes a note."""
    if not any((r.probe or {}).get("capture", {}).get("pcap_b64") for r in results):
        return None
    try:
        run_dir = make_run_dir(base, stamp)
    except OSError as exc:      # checked before the run (preflight_inputs.py); a full disk is not
        run_dir, problem = None, f"capture not saved: the run folder {base}/{stamp} could not be made ({exc.strerror or exc})"
        for result in results:
            if save_capture(result, None) is not None:
                result.capture_note = problem + ": its evidence is in this report, the pcap itself is not kept"
    else:
        for result in results:
            save_capture(result, run_dir)
    return run_dir
