"""A bounded capture of TCP resets: the alert guide's tcpdump, streamed into memory, always stopped.

The guide runs ``tcpdump -i any 'tcp[tcpflags] & (tcp-rst) == (tcp-rst)' -s 65535 -w output.pcap``
and stops it by hand after 60 s to 5 min. Here the same filter on the same interface writes pcap to
stdout (``-w -``) into a pipe this probe reads, so nothing touches the host's disk: there is no
file, hence no free-space check and no temporary directory; memory is bounded instead.

Bounds:
  * time: the reader's own clock, started when tcpdump has written its pcap header (it is then
    capturing); 0 < duration <= 300 s unless ``force`` (the guide's 5 min);
  * packets: tcpdump's ``-c``;
  * bytes: the reader stops tcpdump once the pcap passes ``max_bytes`` and cuts it at the last
    complete record within the bound (``truncated`` says something was dropped);
  * snaplen 256 bytes: Linux cooked v2 header (20) + the largest IPv4 header (60) + the largest TCP
    header (60) is 140, IPv6 (40) leaves 136 bytes of extension headers; a reset's payload (rare
    diagnostic text) is not needed. 65535 would only spend the byte bound on payloads.

tcpdump is stopped whatever happens, by layers that do not trust each other:
  1. normal end or any exception in the probe: SIGINT, then SIGKILL after a grace (``finally``);
  2. the probe dying, even by SIGKILL: ``prctl(PR_SET_PDEATHSIG)`` set in the child before exec.
     The kernel clears the death signal when a process changes credentials, and Debian's tcpdump
     drops to user ``tcpdump`` after opening the device (measured: with the signal set on tcpdump
     itself it survived its parent's SIGKILL). So the signal is set on GNU ``timeout`` instead
     (SIGTERM, which ``timeout`` forwards to tcpdump and escalates to SIGKILL after 2 s), or, with
     no GNU ``timeout``, tcpdump runs with ``-Z root`` so its own SIGKILL death signal holds;
  3. an independent hard bound: ``timeout --foreground -s INT -k 2 DURATION+5 tcpdump ...``, which
     fires even if the probe hangs or is stopped;
  4. an orphaned tcpdump gets SIGPIPE on its next packet, since only the probe reads the pipe.
tcpdump stays in the probe's process group (``--foreground`` keeps ``timeout`` from making its
own), so whoever kills the probe's group (the local transport does ``killpg``) kills it too.
The death signal follows the *thread* that started the child: call ``capture`` from a thread that
lives until it returns (it blocks until tcpdump is gone, so any caller does).
"""

import base64
import math
import os
import select
import signal
import subprocess
import time

from .facts import find_tool
from .limits import CAPTURE_BYTES, CAPTURE_PACKETS, CAPTURE_S, MAX_CAPTURE_BYTES, MAX_CAPTURE_S

FILTER = "tcp[tcpflags] & (tcp-rst) == (tcp-rst)"
INTERFACE = "any"
SNAPLEN = 256
DEFAULT_DURATION_S = CAPTURE_S
MAX_DURATION_S = MAX_CAPTURE_S
DEFAULT_MAX_PACKETS = CAPTURE_PACKETS
DEFAULT_MAX_BYTES = CAPTURE_BYTES
MAX_BYTES_LIMIT = MAX_CAPTURE_BYTES
HARD_BOUND_MARGIN_S = 5               # timeout(1) ends tcpdump this long after the duration
KILL_AFTER_S = 2                      # timeout(1) escalates to SIGKILL after this
STOP_GRACE_S = 3.0                    # our own SIGINT -> SIGKILL grace (> KILL_AFTER_S)
START_TIMEOUT_S = 10.0                # tcpdump must write its pcap header within this
STDERR_KEEP = 2048                    # bytes of tcpdump's stderr kept (the last ones)
OWNER_ENV = "RSTPROBE_CAPTURE_OWNER"  # set in tcpdump's environment: the pid that started it
_PR_SET_PDEATHSIG = 1
_PCAP_HEADER = 24
_ORDER = {b"\xd4\xc3\xb2\xa1": "little", b"\x4d\x3c\xb2\xa1": "little",
          b"\xa1\xb2\xc3\xd4": "big", b"\xa1\xb2\x3c\x4d": "big"}
_gnu_timeout_cache = {}


class CaptureUnavailable(Exception):
    """The capture cannot run here; ``reason`` says what to do about it."""

    def __init__(self, reason):
        Exception.__init__(self, reason)
        self.reason = reason


def check_bounds(duration_s, max_packets, max_bytes, force=False):
    """Validate the bounds; raise ValueError saying which one is wrong and why."""
    duration_s = float(duration_s)
    if not duration_s > 0 or math.isinf(duration_s):
        raise ValueError("capture duration must be > 0 seconds (the guide observes 60 s to 5 min)")
    if duration_s > MAX_DURATION_S and not force:
        raise ValueError("capture duration %.0f s exceeds %.0f s (the guide's 5 min); pass force "
                         "to capture longer" % (duration_s, MAX_DURATION_S))
    if int(max_packets) != max_packets or max_packets < 1:
        raise ValueError("max_packets must be a positive integer")
    if int(max_bytes) != max_bytes or not _PCAP_HEADER + 16 <= max_bytes <= MAX_BYTES_LIMIT:
        raise ValueError("max_bytes must be between %d and %d" % (_PCAP_HEADER + 16, MAX_BYTES_LIMIT))
    return duration_s


def gnu_timeout():
    """Path of GNU coreutils timeout(1) (needed for --foreground and -k), else None."""
    if "path" not in _gnu_timeout_cache:
        path = find_tool("timeout")
        if path:
            try:
                out = subprocess.run([path, "--version"], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, timeout=5).stdout
                path = path if b"GNU coreutils" in out else None
            except (OSError, subprocess.SubprocessError):
                path = None
        _gnu_timeout_cache["path"] = path
    return _gnu_timeout_cache["path"]


def _supports_immediate_mode(tcpdump):
    try:
        usage = subprocess.run([tcpdump, "-h"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return b"--immediate-mode" in usage


def build_command(tcpdump, duration_s, max_packets, timeout_path=None, immediate_mode=True):
    """The argv: tcpdump under timeout(1) when available, else tcpdump alone with -Z root."""
    argv = [tcpdump, "-i", INTERFACE, "-n", "-U", "-s", str(SNAPLEN), "-c", str(int(max_packets))]
    if immediate_mode:
        argv.append("--immediate-mode")
    if not timeout_path:
        argv += ["-Z", "root"]      # a privilege drop would clear the death signal (docstring)
    argv += ["-w", "-", FILTER]
    if timeout_path:
        bound = int(math.ceil(duration_s)) + HARD_BOUND_MARGIN_S
        argv = [timeout_path, "--foreground", "-s", "INT", "-k", str(KILL_AFTER_S), str(bound)] + argv
    return argv


def _death_signal_setter(signum):
    """A preexec_fn that makes the child get ``signum`` when this thread dies; None without ctypes."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (ImportError, OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec():
        prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the prctl: die now
            os.kill(os.getpid(), signal.SIGKILL)
    return preexec


def pcap_records(data, limit):
    """(end, count): end of the last complete pcap record within ``limit`` bytes, records before it.

    Returns (None, None) when ``data`` does not start with a classic pcap header.
    """
    order = _ORDER.get(bytes(data[:4]))
    if order is None or len(data) < _PCAP_HEADER:
        return None, None
    off, count, end = _PCAP_HEADER, 0, min(len(data), limit)
    while off + 16 <= end:
        caplen = int.from_bytes(bytes(data[off + 8:off + 12]), order)
        if off + 16 + caplen > end:
            break
        off += 16 + caplen
        count += 1
    return off, count


def _children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as handle:
            return [int(p) for p in handle.read().split()]
    except (OSError, ValueError):
        return []


def _stop(proc, grace=STOP_GRACE_S, ending=False):
    """SIGINT, then SIGKILL (the child and, under timeout, its children) after ``grace``.

    ``ending``: its output reached EOF, so give it ``grace`` to exit by itself first.
    """
    if ending:
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGINT)
        except OSError:
            pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            for pid in _children(proc.pid) + [proc.pid]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def capture(duration_s=DEFAULT_DURATION_S, max_packets=DEFAULT_MAX_PACKETS,
            max_bytes=DEFAULT_MAX_BYTES, tcpdump_path=None, force=False, on_ready=None,
            should_stop=None):
    """Capture the guide's resets for ``duration_s``; return the pcap (base64) and how it ended.

    ``on_ready()``, if given, is called once tcpdump is capturing (its pcap header arrived).
    ``should_stop()``, if given, is asked every half second at most: True ends the capture early
    with what it holds (``stopped_by: "stop_request"``), as when the orchestrator's user presses
    Ctrl-C and wants the packets so far.
    Raises ValueError for bad bounds and CaptureUnavailable when tcpdump cannot run here.
    """
    duration_s = check_bounds(duration_s, max_packets, max_bytes, force)
    tcpdump = tcpdump_path or find_tool("tcpdump")
    if not tcpdump or not os.access(tcpdump, os.X_OK):
        raise CaptureUnavailable("tcpdump not found%s: install tcpdump (apt-get install tcpdump)"
                                 % (" at " + tcpdump if tcpdump else ""))
    if os.geteuid() != 0:
        raise CaptureUnavailable("capturing needs root: run with -b / as root")
    timeout_path = gnu_timeout()
    argv = build_command(tcpdump, duration_s, max_packets, timeout_path,
                         _supports_immediate_mode(tcpdump))
    death_signal = signal.SIGTERM if timeout_path else signal.SIGKILL
    preexec = _death_signal_setter(death_signal)
    env = dict(os.environ, LC_ALL="C")
    env[OWNER_ENV] = str(os.getpid())
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, preexec_fn=preexec, env=env, close_fds=True)
    except OSError as exc:
        raise CaptureUnavailable("tcpdump failed to start (%s): check %s" % (exc, tcpdump))
    pcap, err = bytearray(), bytearray()
    stopped_by, started, out_fd, open_fds = None, None, None, []
    try:
        out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
        open_fds = [out_fd, err_fd]
        deadline = time.monotonic() + START_TIMEOUT_S
        stop_at = None                       # set once we have asked tcpdump to stop
        while out_fd in open_fds:
            now = time.monotonic()
            if stop_at is None and now >= deadline:
                if started is None:
                    raise CaptureUnavailable("tcpdump did not start within %.0f s: %s"
                                             % (START_TIMEOUT_S, _tail(err) or "no message"))
                stopped_by = "duration"
            if stopped_by is None and should_stop is not None and should_stop():
                stopped_by = "stop_request"
            if stop_at is None and stopped_by is not None:
                stop_at = now + STOP_GRACE_S
                proc.send_signal(signal.SIGINT)   # keep reading: tcpdump flushes, then EOF
            if stop_at is not None and now >= stop_at:
                break
            wait = (stop_at if stop_at is not None else deadline) - now
            ready = select.select(open_fds, [], [], max(0.0, min(wait, 0.5)))[0]
            for fd in ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    open_fds.remove(fd)
                elif fd == err_fd:
                    err += chunk
                    del err[:-STDERR_KEEP]
                elif len(pcap) <= max_bytes + 65536:   # past that, read and drop
                    pcap += chunk
            if started is None and len(pcap) >= _PCAP_HEADER:
                started = time.monotonic()
                deadline = started + duration_s
                if on_ready is not None:
                    on_ready()
            if stopped_by is None and len(pcap) > max_bytes:
                stopped_by = "bytes"
    finally:
        _stop(proc, ending=out_fd is not None and out_fd not in open_fds)
    ended = time.monotonic()
    if started is None and stopped_by == "stop_request":
        raise CaptureUnavailable("stopped on the orchestrator's request before tcpdump was capturing")
    if started is None:
        raise CaptureUnavailable("tcpdump failed to start (exit %s): %s"
                                 % (proc.returncode, _tail(err) or "no message"))
    end, count = pcap_records(pcap, max_bytes)
    if end is None:
        end, count = min(len(pcap), max_bytes), _captured_count(err)
    if stopped_by is None:   # tcpdump ended on its own: -c reached, the hard bound, or not
        full = proc.returncode == 0 and count is not None and count >= max_packets
        stopped_by = "packets" if full else "duration" if proc.returncode == 124 else "error"
    return {
        "pcap_b64": base64.b64encode(bytes(pcap[:end])).decode("ascii"),
        "packets_hint": count,
        "bytes": end,
        "truncated": end < len(pcap),
        "duration_s": round(ended - started, 3),
        "stopped_by": stopped_by,
        "returncode": proc.returncode,
        "tcpdump": tcpdump,
        "command": argv,
        "safeguards": (["pdeathsig"] if preexec else []) + (["timeout"] if timeout_path else []),
        "stderr": _tail(err),
    }


def _tail(err, lines=10):
    text = bytes(err).decode("utf-8", "replace")
    return "\n".join(text.strip().splitlines()[-lines:])


def _captured_count(err):
    for line in _tail(err).splitlines():
        words = line.split()
        if words[1:3] == ["packets", "captured"] and words[0].isdigit():
            return int(words[0])
    return None
