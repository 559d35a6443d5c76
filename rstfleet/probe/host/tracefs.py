"""Per-reset attribution from the tracepoint tcp:tcp_send_reset (stdlib only, Python >= 3.6).

``with ResetTrace() as trace: ...`` then ``trace.events``: the RSTs this host sent meanwhile, as
{"ts", "saddr", "daddr", "sport", "dport", "state", "reason"}, from its OWN tracefs instance, parsed
against the event's ``format``. Tracepoints are machine-wide: only events from this network
namespace's own addresses are kept, or from a wildcard listener (saddr 0.0.0.0/::) on a port this
namespace listens on; the others count as "foreign".
"""

import errno
import itertools
import os
import re
import time

TRACEFS_DIRS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
EVENT = "tcp_send_reset"
EVENT_DIR = os.path.join("events", "tcp", EVENT)
STALE_RE = re.compile(r"^rstfleet-(\d+)-([0-9a-f]{8})[0-9a-f]*$")  # pid, then our pid namespace's tag
BUFFER_KB = 256  # per CPU: about 2,700 events of 6.18's 96-byte record
MAX_EVENTS = 2000
CONVERSION_RE = re.compile(r"%%|%[-+ #0]*\d*(?:\.\d+)?(?:hh|h|ll|l|z)?(?:p[A-Za-z0-9]*|[a-zA-Z])")
FIELD_RE = re.compile(r"field:(.*?)(\w+)\s*(\[[^\]]*\])?;\s*offset:(\d+);\s*size:(\d+);\s*signed:(\d+);")
PAIR_RE = re.compile(r"\{\s*([^,{}]+?)\s*,\s*\"([^\"]*)\"\s*\}")
SYMBOLIC_RE = re.compile(r"__print_symbolic\(\s*REC->(\w+)\s*((?:,\s*\{[^{}]*\}\s*)*)\)")


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


def _split_args(text):
    """Split the print fmt's arguments at top-level commas (brackets nest, "strings" are opaque)."""
    args, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(text):
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in "({[)}]":
            depth += 1 if ch in "({[" else -1
        elif not quoted and ch == "," and depth == 0:
            args.append(text[start:i].strip())
            start = i + 1
    return args + ([text[start:].strip()] if text[start:].strip() else [])


def parse_format(text):
    """An event ``format`` file -> {"name", "id", "fields": {name: {type, offset, size, signed}},
    "print_fmt", "conversions": [(spec, field)], "symbols": {field: {key: name}}, "line_re"}."""
    name, ident = re.search(r"^name:\s*(\S+)", text, re.M), re.search(r"^ID:\s*(\d+)", text, re.M)
    fmt = {"name": name and name.group(1), "id": ident and int(ident.group(1)), "fields": {}, "print_fmt": "",
           "conversions": [], "symbols": {}}
    match = re.search(r'^print fmt:\s*"((?:[^"\\]|\\.)*)"\s*,?(.*)', text, re.M | re.S)
    if match:
        fmt["print_fmt"] = match.group(1)
        specs = [m.group(0) for m in CONVERSION_RE.finditer(match.group(1)) if m.group(0) != "%%"]
        for spec, arg in zip(specs, _split_args(match.group(2).strip())):
            ref = re.search(r"REC->(\w+)", arg)
            fmt["conversions"].append((spec, ref.group(1) if ref else None))
            for field, pairs in SYMBOLIC_RE.findall(arg):
                fmt["symbols"][field] = dict(PAIR_RE.findall(pairs))
    for ctype, name, dims, offset, size, signed in FIELD_RE.findall(text):
        fmt["fields"][name] = {"type": ctype.strip() + dims, "offset": int(offset), "size": int(size),
                               "signed": signed == "1"}
    pieces, pos = [], 0  # the print fmt as a regex: literal parts escaped, each conversion a group
    for match in CONVERSION_RE.finditer(fmt["print_fmt"]):
        pieces += [re.escape(fmt["print_fmt"][pos:match.start()].replace("\\n", "")),
                   "%" if match.group(0) == "%%" else r"(\S*)"]
        pos = match.end()
    fmt["line_re"] = re.compile("".join(pieces) + re.escape(fmt["print_fmt"][pos:]) + r"\s*$")
    return fmt


def _endpoint(text):
    """'198.18.0.2:80' / '[::1]:80' (%pISpc) -> (address, port); a bare address -> (address, None)."""
    match = re.match(r"\[(.*)\]:(\d+)$|([^:]*):(\d+)$", text)
    addr, port = (match.group(1) or match.group(3), match.group(2) or match.group(4)) if match else (text, None)
    addr = addr[7:] if addr.startswith("::ffff:") and "." in addr else addr  # v4-mapped
    return addr or None, (int(port) if port else None)


def _symbol(fmt, field, text):
    """The kernel prints the symbolic name; a raw number (a value outside its table) is looked up."""
    if field in fmt["fields"] and re.match(r"(0x[0-9a-fA-F]+|-?\d+)$", text):
        return fmt["symbols"].get(field, {}).get(str(int(text, 0)), text)
    return (text or None) if field in fmt["fields"] else None


def parse_event(fmt, body, ts=None):
    """One event's text (after "tcp_send_reset: ") -> event dict; None if it does not fit the format."""
    match = fmt["line_re"].match(body)
    if not match:
        return None
    values = {field: (spec, text) for (spec, field), text in zip(fmt["conversions"], match.groups())}
    get = lambda name: values.get(name, ("", ""))  # noqa: E731
    event = {"ts": ts, "saddr": None, "daddr": None, "sport": None, "dport": None,
             "state": _symbol(fmt, "state", get("state")[1]), "reason": _symbol(fmt, "reason", get("reason")[1])}
    family = get("family")[1]
    for side, key in (("s", "saddr"), ("d", "daddr")):
        spec, text = get(key)
        if spec.startswith("%pIS"):  # a sockaddr: address and port together (Linux >= 5.x tcp_probe style)
            event[key], event[side + "port"] = _endpoint(text)
            continue
        v6 = _endpoint(get(key + "_v6")[1])[0]  # older layout: v4 array, v6 array, sport/dport
        use_v6 = family == "AF_INET6" if family else (v6 not in (None, "::") and ":" in v6)
        event[key] = v6 if use_v6 else (text or None)
        port = get(side + "port")[1]
        event[side + "port"] = int(port) if port.isdigit() else None
    return event


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
    """Records tcp:tcp_send_reset in a private tracefs instance. ``addresses``: this host's (default: read);
    ``ports``: known wildcard listeners' ports, besides those listening at stop() (read if needed)."""

    def __init__(self, buffer_kb=BUFFER_KB, max_events=MAX_EVENTS, addresses=None, ports=()):
        self.buffer_kb, self.max_events, self.fixed, self.ports = buffer_kb, max_events, addresses, set(ports)
        self.instance, self.format, self.addresses, self.events = None, None, set(), []
        self.stats = dict(tracefs=None, mounted=False, instance=None, clock=None, seen=0, kept=0, foreign=0,
                          wildcard=0, dropped=0, lost_in_kernel=0, unparsed=0, stale_removed=[], errors=[])

    def start(self):
        if os.geteuid() != 0:
            raise TraceUnavailable("not root: the tracepoint needs root (rerun with -b)")
        root = find_tracefs()
        self.stats["mounted"] = root is None
        root = root or mount_private()
        self.stats["tracefs"], self.stats["stale_removed"] = root, cleanup_stale(root)
        self.format = parse_format(_read(os.path.join(root, EVENT_DIR, "format")))
        if not self.format["conversions"]:
            raise TraceUnavailable("this kernel has no tcp:tcp_send_reset tracepoint (needs Linux >= 4.16)")
        self.addresses, self.events = set(self.fixed or local_addresses()), []
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
        if not (sized and _write(os.path.join(instance, EVENT_DIR, "enable"), "1")):
            self.stop()
            raise TraceUnavailable("cannot set up tracefs instance %s (buffer %r KB)" % (instance, self.buffer_kb))
        return self

    def stop(self):
        """Disable and remove the instance (always; idempotent) and return the kept events."""
        instance, self.instance = self.instance, None
        if instance is None:
            return self.events
        try:
            for path in (os.path.join(instance, EVENT_DIR, "enable"), os.path.join(instance, "tracing_on")):
                if not _write(path, "0"):
                    self.stats["errors"].append("could not write 0 to " + path)
            self._collect(instance)
        except (OSError, ValueError) as exc:
            self.stats["errors"].append("reading the trace: %s" % exc)
        finally:  # whatever happened: the instance goes
            self.stats["errors"].extend(error for error in [_rmdir(instance)] if error)
        return self.events

    def _collect(self, instance):
        stats, marker, ports, looked = self.stats, ": %s: " % EVENT, set(self.ports), False
        addresses = self.addresses | set(self.fixed or local_addresses())
        offset = time.time() - time.monotonic() if stats["clock"] == "mono" else 0.0
        with open(os.path.join(instance, "trace"), errors="replace") as handle:
            for line in handle:
                where = line.find(marker)
                if where < 0 or line.startswith("#"):
                    continue
                stats["seen"] += 1
                stamp = re.search(r"(\d+\.\d+)$", line[:where])
                ts = round(float(stamp.group(1)) + offset, 6) if stamp else None
                event = parse_event(self.format, line[where + len(marker):].rstrip("\n"), ts)
                wild = event is not None and event["saddr"] in ("0.0.0.0", "::")  # a wildcard listener's RST
                if wild and event["sport"] not in ports and not looked:  # hinted ports, else look once
                    ports, looked = ports | listening_ports(), True
                if event is None:
                    stats["unparsed"] += 1
                elif event["saddr"] not in addresses and not (wild and event["sport"] in ports):
                    stats["foreign"] += 1
                elif len(self.events) >= self.max_events:
                    stats["dropped"] += 1
                else:
                    stats["wildcard"] += wild
                    self.events.append(event)
        stats["kept"] = len(self.events)
        per_cpu = os.path.join(instance, "per_cpu")
        for cpu in (os.listdir(per_cpu) if os.path.isdir(per_cpu) else []):  # ring buffer full: lost events
            text = _read(os.path.join(per_cpu, cpu, "stats"))
            stats["lost_in_kernel"] += sum(map(int, re.findall(r"^(?:overrun|dropped events): (\d+)", text, re.M)))

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):  # exceptions propagate
        self.stop()
