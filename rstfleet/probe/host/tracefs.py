"""Both ends of every reset from the tracepoints tcp:tcp_send_reset and tcp:tcp_receive_reset
(stdlib only, Python >= 3.6).

``with ResetTrace() as trace: ... trace.drain() ...`` then ``trace.tally``: every reset this host
sent or received meanwhile, counted by key (tally.py), plus a sample of single events
{"ts", "saddr", "daddr", "sport", "dport", "state", "reason"} (``trace.events``: the sent ones).
One OWN tracefs instance, each line parsed against its event's ``format``; ``drain()`` empties the
ring buffer (trace_pipe) while the window runs, so a burst larger than the buffer is not lost (the
kernel's own count of what it lost is kept). In both events saddr/sport is this host's end of the
connection. Tracepoints are machine-wide: only events whose local address is this network
namespace's own are kept, or from a wildcard listener (saddr 0.0.0.0/::) on a port this namespace
listens on; the others count as "foreign". Only the sender's event has a reason.
"""

import codecs
import errno
import itertools
import os
import re
import time

from .limits import TRACE_KEYS, TRACE_SAMPLE
from .tally import ResetTally
from .traceformat import parse_event, parse_format  # noqa: F401 (check.py and tests use them here)

TRACEFS_DIRS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
EVENT = "tcp_send_reset"
EVENT_DIR = os.path.join("events", "tcp", EVENT)
RECEIVE_DIR = os.path.join("events", "tcp", "tcp_receive_reset")
DIRECTION = {"tcp_send_reset": "sent", "tcp_receive_reset": "received"}
STALE_RE = re.compile(r"^rstfleet-(\d+)-([0-9a-f]{8})[0-9a-f]*$")  # pid, then our pid namespace's tag
BUFFER_KB = 256  # per CPU: about 2,700 events of 6.18's 96-byte record (drained every TRACE_DRAIN_S)
READ_BYTES = 65536


class TraceUnavailable(Exception):
    """The tracepoint cannot be used here; ``reason`` says why (callers fall back to counters)."""
    reason = property(lambda self: self.args[0])


def _read(path):
    try:
        with open(path, errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


def local_addresses(fib_trie="/proc/net/fib_trie", if_inet6="/proc/net/if_inet6"):
    """This network namespace's own addresses: IPv4 "/32 host LOCAL" entries, IPv6 from if_inet6."""
    from _socket import AF_INET6, inet_ntop  # the C module: importing "socket" costs the probe ~2 ms
    found, last = set(), None
    for line in _read(fib_trie).splitlines():
        text = line.strip()
        if text.startswith("|--"):
            last = text[3:].strip()
        elif last and text.startswith("/32 host LOCAL"):
            found.add(last)
    for line in _read(if_inet6).splitlines():
        word = (line.split() or [""])[0]
        if re.match(r"[0-9a-fA-F]{32}$", word):
            found.add(inet_ntop(AF_INET6, bytes.fromhex(word)))
    return found


def listening_ports(paths=("/proc/net/tcp", "/proc/net/tcp6")):
    """Ports listening in this network namespace (rows st 0A come first; ~8 ms here all the same)."""
    ports = set()
    for path in paths:
        try:
            with open(path) as handle:
                next(handle, None)  # the header
                rows = itertools.takewhile(lambda row: row[3:4] == ["0A"], (line.split() for line in handle))
                ports.update(int(row[1].rsplit(":", 1)[1], 16) for row in rows)
        except (OSError, ValueError, IndexError):
            pass
    return ports


def _alive(pid):  # the process exists and is not a zombie
    return (_read("/proc/%d/stat" % pid) or ")").rsplit(")", 1)[1].split()[:1] not in ([], ["Z"], ["X"])


def _write(path, value):
    try:
        with open(path, "w") as handle:
            handle.write(value)
        return True
    except OSError:  # tracefs reports a refused value when the file is closed
        return False


def _pidns_tag():
    """8 hex digits naming this pid namespace: instances are kernel-wide, pids are not (containers)."""
    return "%08x" % (os.stat("/proc/self/ns/pid").st_ino & 0xFFFFFFFF)


def cleanup_stale(root):
    """Remove ``instances/rstfleet-<pid>-<tag>*`` of this pid namespace whose pid is dead (a killed
    probe); another namespace's pids cannot be judged from here. Returns the names removed."""
    removed, base, tag = [], os.path.join(root, "instances"), _pidns_tag()
    for name in (os.listdir(base) if os.path.isdir(base) else []):
        match = STALE_RE.match(name)
        if match and match.group(2) == tag and int(match.group(1)) != os.getpid() \
                and not _alive(int(match.group(1))) and _rmdir(os.path.join(base, name), tries=5) is None:
            removed.append(name)
    return removed


def _rmdir(path, tries=50):
    """Remove an instance directory (EBUSY while the kernel still holds it: retry); None or the error."""
    for attempt in range(tries):
        try:
            return os.rmdir(path)
        except OSError as exc:
            if exc.errno != errno.EBUSY or attempt == tries - 1:
                return "rmdir %s: %s" % (path, exc.strerror)
            time.sleep(0.01)


def find_tracefs(dirs=TRACEFS_DIRS):  # the first mounted tracefs (it has "instances"), or None
    return next((path for path in dirs if os.path.isdir(os.path.join(path, "instances"))), None)


def mount_private():
    """Mount tracefs (Linux >= 4.1) in a new mount namespace of this process only; returns its path."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
    if libc.unshare(0x00020000) != 0:  # CLONE_NEWNS (EINVAL if this process has threads)
        raise TraceUnavailable("unshare(CLONE_NEWNS) failed: %s" % os.strerror(ctypes.get_errno()))
    if libc.mount(b"none", b"/", None, 0x4000 | 0x40000, None) != 0:  # MS_REC | MS_PRIVATE
        raise TraceUnavailable("making / private failed: %s" % os.strerror(ctypes.get_errno()))
    if libc.mount(b"nodev", TRACEFS_DIRS[0].encode(), b"tracefs", 0, None) == 0 and find_tracefs(TRACEFS_DIRS[:1]):
        return TRACEFS_DIRS[0]
    raise TraceUnavailable("could not mount tracefs: %s" % os.strerror(ctypes.get_errno() or errno.ENODEV))


class ResetTrace(object):
    """Records both reset tracepoints in a private tracefs instance. ``addresses``: this host's
    (default: read); ``ports``: known wildcard listeners' ports, besides those listening when the
    first wildcard event is read (read then); ``max_events``: the sample of each direction."""

    def __init__(self, buffer_kb=BUFFER_KB, max_events=TRACE_SAMPLE, addresses=None, ports=(), max_keys=TRACE_KEYS):
        self.buffer_kb, self.fixed, self.ports, self.looked = buffer_kb, addresses, set(ports), False
        self.tally = ResetTally(max_keys, max_events)
        self.instance, self.formats, self.addresses, self.pipe, self.partial = None, {}, set(), None, ""
        self.decoder, self.offset = codecs.getincrementaldecoder("utf-8")("replace"), 0.0
        self.received = {"available": False, "reason": "the trace did not start"}
        self.stats = dict(tracefs=None, mounted=False, instance=None, clock=None, seen=0, kept=0, foreign=0,
                          wildcard=0, lost_in_kernel=0, unparsed=0, reads=0, stale_removed=[], errors=[])

    events = property(lambda self: self.tally.samples["sent"])     # the sent sample, as event dicts

    def start(self):
        if os.geteuid() != 0:
            raise TraceUnavailable("not root: the tracepoint needs root (rerun with -b)")
        root = find_tracefs()
        self.stats["mounted"] = root is None
        root = root or mount_private()
        self.stats["tracefs"], self.stats["stale_removed"] = root, cleanup_stale(root)
        sent, received = (parse_format(_read(os.path.join(root, d, "format"))) for d in (EVENT_DIR, RECEIVE_DIR))
        if not sent["conversions"]:
            raise TraceUnavailable("this kernel has no tcp:tcp_send_reset tracepoint (needs Linux >= 4.16)")
        self.formats, self.addresses = {"tcp_send_reset": sent}, set(self.fixed or local_addresses())
        name = "rstfleet-%d-%s%s" % (os.getpid(), _pidns_tag(), os.urandom(3).hex())
        instance = os.path.join(root, "instances", name)
        try:
            os.mkdir(instance)
        except OSError as exc:
            raise TraceUnavailable("cannot create a tracefs instance: %s" % exc.strerror)
        self.instance = self.stats["instance"] = instance
        sized = _write(os.path.join(instance, "buffer_size_kb"), str(self.buffer_kb))
        for option in ("nooverwrite", "noraw", "nohex", "nobin", "nofields"):  # some kernels lack some
            _write(os.path.join(instance, "trace_options"), option)
        # CLOCK_MONOTONIC (as time.monotonic()), else the default "local" clock
        self.stats["clock"] = "mono" if _write(os.path.join(instance, "trace_clock"), "mono") else "local"
        self.offset = time.time() - time.monotonic() if self.stats["clock"] == "mono" else 0.0
        if not (sized and _write(os.path.join(instance, EVENT_DIR, "enable"), "1")):
            self.stop()
            raise TraceUnavailable("cannot set up tracefs instance %s (buffer %r KB)" % (instance, self.buffer_kb))
        self.received = {"available": False, "reason": "this kernel has no tcp:tcp_receive_reset tracepoint"}
        if received["conversions"] and _write(os.path.join(instance, RECEIVE_DIR, "enable"), "1"):
            self.formats["tcp_receive_reset"], self.received = received, {"available": True}
        elif received["conversions"]:
            self.received["reason"] = "could not enable tcp:tcp_receive_reset"
        try:
            self.pipe = os.open(os.path.join(instance, "trace_pipe"), os.O_RDONLY | os.O_NONBLOCK)
        except OSError as exc:
            self.stop()
            raise TraceUnavailable("cannot read the trace of %s: %s" % (instance, exc.strerror))
        return self

    def drain(self, max_reads=64):
        """Read (and so free) what the ring buffer holds now, without blocking; the probe calls
        this every TRACE_DRAIN_S while it waits, sooner while it returns True (a full read: busy).
        Bounded: at most max_reads * 64 KB a call."""
        for reads in range(max_reads):
            try:
                chunk = os.read(self.pipe, READ_BYTES) if self.pipe is not None else b""
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    return reads > 0
                raise
            if not chunk:
                return False
            self.stats["reads"] += 1
            self.feed(self.decoder.decode(chunk))
        return True

    def feed(self, text):
        """Trace text, in chunks that may cut a line anywhere."""
        lines = (self.partial + text).split("\n")
        self.partial = lines.pop()
        for line in lines:
            self._line(line)

    def _line(self, line):
        # the whole ": tcp_send_reset: " marker: a task name (15 characters at most) cannot hold it
        where, name = next(((line.find(": %s: " % name), name) for name in self.formats
                            if ": %s: " % name in line), (-1, None))
        if name is None or line.startswith("#"):
            return
        end = where + len(name) + 2
        stats = self.stats
        stats["seen"] += 1
        stamp = re.search(r"(\d+\.\d+)$", line[:where])
        ts = round(float(stamp.group(1)) + self.offset, 6) if stamp else None
        event = parse_event(self.formats[name], line[end + 2:].rstrip("\r"), ts)
        wild = event is not None and event["saddr"] in ("0.0.0.0", "::")  # a wildcard listener's RST
        if wild and event["sport"] not in self.ports and not self.looked:  # hinted ports, else look once
            self.ports, self.looked = self.ports | listening_ports(), True
        if event is None:
            stats["unparsed"] += 1
        elif event["saddr"] not in self.addresses and not (wild and event["sport"] in self.ports):
            stats["foreign"] += 1
        else:
            stats["wildcard"] += wild
            stats["kept"] += 1
            self.tally.add(DIRECTION[name], event)

    def stop(self):
        """Disable and remove the instance (always; idempotent); return the sample of sent events."""
        instance, self.instance = self.instance, None
        if instance is None:
            return self.events
        try:
            for path in (os.path.join(instance, EVENT_DIR, "enable"), os.path.join(instance, RECEIVE_DIR, "enable"),
                         os.path.join(instance, "tracing_on")):
                if not _write(path, "0") and os.path.exists(path):
                    self.stats["errors"].append("could not write 0 to " + path)
            self.addresses |= set(self.fixed or local_addresses())
            self.drain(max_reads=100000)
            self.feed("\n")
            self.stats["lost_in_kernel"] = lost_events(instance)
        except (OSError, ValueError) as exc:
            self.stats["errors"].append("reading the trace: %s" % exc)
        finally:  # whatever happened: the instance goes
            if self.pipe is not None:
                os.close(self.pipe)
                self.pipe = None
            self.stats["errors"].extend(error for error in [_rmdir(instance)] if error)
        return self.events

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):  # exceptions propagate
        self.stop()


def lost_events(instance):
    """Events the kernel could not keep (ring buffer full between two drains), from per_cpu stats."""
    lost, per_cpu = 0, os.path.join(instance, "per_cpu")
    for cpu in (os.listdir(per_cpu) if os.path.isdir(per_cpu) else []):
        text = _read(os.path.join(per_cpu, cpu, "stats"))
        lost += sum(map(int, re.findall(r"^(?:overrun|dropped events): (\d+)", text, re.M)))
    return lost


def shares_its_kernel(proc="/proc"):
    """True in a network namespace other than the kernel's first one: a lab host or a container,
    whose tracepoint is machine-wide and whose tracefs set-up serialises with every sibling's
    (measured on the lab: 100 probes at once, +6 s). The first one is PID 1's, or kthreadd's (PID
    2: some hardened init processes refuse even root a look at their namespaces); unreadable
    counts as shared."""
    try:
        mine = os.stat(proc + "/self/ns/net")
    except OSError:
        return True
    for pid in ("1", "2"):
        try:
            first = os.stat("%s/%s/ns/net" % (proc, pid))
        except OSError:
            continue
        return (mine.st_dev, mine.st_ino) != (first.st_dev, first.st_ino)
    return True
