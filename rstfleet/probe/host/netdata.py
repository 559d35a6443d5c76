"""Netdata's view of the alert on this host: its agent's alarm and OutRsts history, asked on
loopback only (with no agent, exact.py measures the rule's baseline minute itself).

The rule (health.d/tcp_resets.conf; `10s_ipv4_tcp_resets_sent` on `ipv4.tcphandshake` up to
Netdata 1.42, `10s_ip_tcp_resets_sent` on `ip.tcphandshake` since):

    lookup: average -10s unaligned absolute of OutRsts              ($this)
    1m_…:   average -1m at -10s unaligned absolute of OutRsts       (the baseline)
    warn:   $netdata.uptime.uptime > 60 AND $this > max($1m_…, 5) * ($status >= $WARNING ? 1 : 10)

The agent is asked with plain HTTP/1.0 on a socket (stdlib only, no proxy, no redirect followed),
bounded in time (NETDATA_TIMEOUT_S for the whole conversation) and bytes (NETDATA_MAX_BYTES a
reply), and only at a loopback address. Before connecting, bind() tells whether anything holds
the port: a refused connect would make this host send a reset, the very thing being measured.

    ask_agent("auto", 300) -> {"available": True, "url": "http://127.0.0.1:19999", "version": "1.37.1",
        "alarms": {"10s_ipv4_tcp_resets_sent": {"status": "WARNING", "value": 80.0,
                   "last_status_change": 1795962104, "chart": "ipv4.tcphandshake"}, ...},
        "chart": "ipv4.tcphandshake", "history": [[1795962100, 80.0], ...], ...}
"""

import errno
import json
import math
import re
import time

# The C module itself: importing `socket` costs every host ~2.5 ms of CPU (its enums), and
# `--netdata auto` runs on every host of a sweep.
import _socket as socket

from .limits import MAX_HISTORY_POINTS, NETDATA_MAX_BYTES, NETDATA_PORT, NETDATA_TIMEOUT_S

GENERATIONS = (("ip", "ip.tcphandshake"), ("ipv4", "ipv4.tcphandshake"))   # newest first
ALARMS = tuple("%s_%s_tcp_resets_%s" % (period, gen, side) for gen, _ in GENERATIONS
               for period in ("10s", "1m") for side in ("sent", "received"))
STATUSES = ("REMOVED", "UNDEFINED", "UNINITIALIZED", "CLEAR", "RAISED", "WARNING", "CRITICAL")
AUTO = ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1"))
HEADER_ALLOWANCE = 16 * 1024
URL_PATTERN = (r"^http://(?:\[(?P<v6>[0-9a-fA-F:.]+)\]|(?P<host>[A-Za-z0-9.]+))(?::(?P<port>\d{1,5}))?"
               r"(?P<prefix>(?:/[A-Za-z0-9._~-]+)*)/?$")     # compiled on first use: auto never needs it


class AgentError(Exception):
    """Why the agent could not be asked or did not answer usefully (a sentence for the report)."""


def parse_agent_url(text):
    """'http://127.0.0.1:19999' -> (family, address, port, path prefix); ValueError unless the
    address is loopback (127.0.0.0/8, ::1 or 'localhost', which is taken as 127.0.0.1 without
    asking any resolver)."""
    match = re.match(URL_PATTERN, text or "")
    if not match:
        raise ValueError("not an http://ADDRESS[:PORT] URL: %r" % (text,))
    if any(part.strip(".") == "" for part in match.group("prefix").split("/")[1:]):
        raise ValueError("a path of dots is not a prefix: %r" % match.group("prefix"))
    port = int(match.group("port") or NETDATA_PORT)
    if not 0 < port < 65536:
        raise ValueError("port %d is out of range" % port)
    if match.group("v6") is not None:
        try:
            address = socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, match.group("v6")))
        except (OSError, ValueError):
            raise ValueError("not an IPv6 address: %r" % match.group("v6"))
        if address != "::1":
            raise ValueError("%s is not loopback; the agent is only ever asked on loopback" % address)
        return socket.AF_INET6, address, port, match.group("prefix")
    host = match.group("host")
    if host.lower() == "localhost":
        host = "127.0.0.1"
    octets = host.split(".")
    if len(octets) != 4 or not all(o.isdigit() and int(o) < 256 for o in octets) or octets[0] != "127":
        raise ValueError("%s is not a loopback address (127.0.0.0/8, [::1], localhost); the agent is "
                         "only ever asked on loopback" % host)
    return socket.AF_INET, ".".join(str(int(o)) for o in octets), port, match.group("prefix")


def url_text(family, address, port, prefix=""):
    return "http://%s:%d%s" % ("[%s]" % address if family == socket.AF_INET6 else address, port, prefix)


def port_held(family, address, port):
    """False when nothing listens on address:port (our bind() succeeds), else True; sends no packet.
    SO_REUSEADDR: the agent's last answers leave TIME_WAIT sockets on its port for a minute after
    it stopped, and those must not read as an agent."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        return False
    except OSError as exc:
        if exc.errno == errno.EADDRNOTAVAIL:     # e.g. IPv6 switched off: nothing can listen there
            return False
        return True
    finally:
        sock.close()


def _dechunk(body):
    out, rest = [], body
    while rest:
        size_line, sep, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if not sep or size == 0:
            break
        out.append(rest[:size])
        rest = rest[size + 2:]
    return b"".join(out)


def _left(deadline, path):
    left = deadline - time.monotonic()
    if left <= 0:
        raise AgentError("no complete answer to %s within %g s" % (path.split("?")[0], NETDATA_TIMEOUT_S))
    return left


def http_get(family, address, port, path, deadline, max_bytes=NETDATA_MAX_BYTES):
    """(status code, {header: value}, body) of one HTTP/1.0 GET; AgentError on anything else."""
    request = ("GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: rstfleet-probe\r\nAccept: application/json\r\n"
               "Connection: close\r\n\r\n" % (path, url_text(family, address, port)[7:])).encode("ascii")
    chunks, size = [], 0
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(_left(deadline, path))
        sock.connect((address, port))
        sock.sendall(request)
        while True:
            sock.settimeout(_left(deadline, path))
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
            size += len(data)
            if size > max_bytes + HEADER_ALLOWANCE:
                raise AgentError("answer to %s is over %d bytes" % (path.split("?")[0], max_bytes))
    except socket.timeout:       # TimeoutError since 3.10, its own class before
        raise AgentError("no complete answer to %s within %g s" % (path.split("?")[0], NETDATA_TIMEOUT_S))
    except OSError as exc:
        raise AgentError("%s: %s" % (url_text(family, address, port), exc.strerror or exc))
    finally:
        sock.close()
    head, sep, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split()
    if not sep or len(status) < 2 or not status[0].startswith("HTTP/") or not status[1].isdigit():
        raise AgentError("not an HTTP answer: %r" % lines[0][:60])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _dechunk(body)
    if headers.get("content-encoding", "identity").lower() != "identity":
        raise AgentError("answer is %s-encoded" % headers["content-encoding"][:20])
    return int(status[1]), headers, body


def _finite(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return value


def _json(code, body, what):
    if 300 <= code < 400:
        raise AgentError("%s answered %d (a redirect; never followed)" % (what, code))
    if code != 200:
        raise AgentError("%s answered HTTP %d" % (what, code))
    try:
        return json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        raise AgentError("%s did not answer JSON" % what)


def pick_alarms(answer):
    """Our alarms (both generations, sent and received) from /api/v1/alarms_values?all or
    /api/v1/alarms?all: {name: {status, value, last_status_change, chart}}."""
    alarms = answer.get("alarms") if isinstance(answer, dict) else None
    if not isinstance(alarms, dict):
        raise AgentError("alarms answer has no 'alarms' object")
    picked = {}
    for key, alarm in alarms.items():
        if not isinstance(alarm, dict) or not isinstance(key, str):
            continue
        chart, _, name = key.rpartition(".")
        name = alarm.get("name") if isinstance(alarm.get("name"), str) else name
        if name not in ALARMS:
            continue
        status = alarm.get("status")
        changed = alarm.get("last_status_change")
        picked[name] = {"status": status if status in STATUSES else "UNKNOWN",
                        "value": _finite(alarm.get("value")),
                        "last_status_change": changed if _finite(changed) is not None else None,
                        "chart": str(alarm.get("chart") or chart)[:100]}
    return picked


def parse_history(answer, lookback_s):
    """/api/v1/data's {"labels": ["time", ..., "OutRsts", ...], "data": [[t, ...], ...]} ->
    [[t, OutRsts per second], ...] oldest first, at most MAX_HISTORY_POINTS (gaps dropped)."""
    labels = answer.get("labels") if isinstance(answer, dict) else None
    rows = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(labels, list) or "OutRsts" not in labels or not isinstance(rows, list):
        raise AgentError("history answer has no OutRsts column")
    column = labels.index("OutRsts")
    points = []
    for row in rows:
        if isinstance(row, list) and len(row) > column:
            t, value = _finite(row[0]), _finite(row[column])
            if t is not None and value is not None:
                points.append([t, abs(value)])
    points.sort(key=lambda point: point[0])
    return points[-MAX_HISTORY_POINTS:]


def _ask(family, address, port, prefix, lookback_s, deadline):
    def get(path):
        return http_get(family, address, port, prefix + path, deadline)

    code, headers, body = get("/api/v1/alarms_values?all")
    if code == 404:     # an agent without the compact endpoint: the full one (bounded all the same)
        code, headers, body = get("/api/v1/alarms?all")
    alarms = pick_alarms(_json(code, body, "/api/v1/alarms_values"))
    version = re.search(r"v?(\d+\.\d+[0-9A-Za-z.+-]*)", headers.get("server", ""))
    document = {"available": True, "url": url_text(family, address, port, prefix),
                "version": version.group(1)[:40] if version else None, "alarms": alarms,
                "lookback_s": lookback_s, "history": [], "notes": []}
    raised = [n for n, a in alarms.items() if a["status"] in ("WARNING", "CRITICAL")
              and a["last_status_change"] is None]
    if raised:          # since when: only raised alarms are listed by the (small) active endpoint
        try:
            since = pick_alarms(_json(*get("/api/v1/alarms")[::2], what="/api/v1/alarms"))
            for name in raised:
                alarms[name]["last_status_change"] = (since.get(name) or {}).get("last_status_change")
        except AgentError as exc:
            document["notes"].append("since when unknown: %s" % exc)
    charts = [a["chart"] for n, a in sorted(alarms.items()) if n.startswith("10s_") and n.endswith("_sent")]
    for chart in charts + [c for _, c in GENERATIONS if c not in charts]:
        code, _, body = get("/api/v1/data?chart=%s&after=-%d&points=%d&group=average&format=json"
                            "&options=seconds" % (chart, lookback_s, lookback_s))
        if code in (400, 404):
            continue
        document["chart"] = chart
        document["history"] = parse_history(_json(code, body, "/api/v1/data"), lookback_s)
        break
    else:
        document["notes"].append("no tcphandshake chart yet: the agent has seen no reset since it started")
    return document


def ask_agent(spec, lookback_s, timeout_s=NETDATA_TIMEOUT_S):
    """The agent's alarms and OutRsts history; {"available": False, "reason": ...} when there is
    none on loopback or it did not answer. spec: "auto" (127.0.0.1 then [::1], port 19999) or a
    loopback URL. Never raises."""
    started = time.monotonic()
    deadline = started + timeout_s
    if spec == "auto":
        candidates = [(family, address, NETDATA_PORT, "") for family, address in AUTO]
    else:
        try:
            candidates = [parse_agent_url(spec)]
        except ValueError as exc:
            return {"available": False, "reason": "--netdata: %s" % exc, "cost_s": 0.0}
    tried = []
    for family, address, port, prefix in candidates:
        where = url_text(family, address, port, prefix)
        if not port_held(family, address, port):
            tried.append("nothing listens on %s" % where)
            continue
        try:
            document = _ask(family, address, port, prefix, int(lookback_s), deadline)
            document["cost_s"] = time.monotonic() - started
            return document
        except AgentError as exc:
            tried.append(str(exc))
        except Exception as exc:      # a strange agent must never sink the counters
            tried.append("%s: %r" % (where, exc))
    return {"available": False, "reason": "; ".join(tried)[:1000], "cost_s": time.monotonic() - started}
