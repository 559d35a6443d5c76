"""What a simulated host is and what it answers: a scenario's hosts, their counters, the probe's
document and the shell probe's /proc text (pure: no sockets, no clock of its own).

A scenario says how many hosts and what they do; every figure is drawn from a seeded generator,
so one scenario file always makes the same fleet:

    hosts: 10000
    seed: 7
    first_address: 127.1.0.1      # optional; each host the next address, all on one port
    port: 2222
    quiet:   {rate: [0.0, 3.0], baseline: [0.1, 2.0]}   # OutRsts/s in the window, lifetime
    spiking: {share: 0.01, rate: [60, 600], baseline: [0.1, 2.0]}
    broken:  {auth_refused: 3, unknown_key: 3, slow_banner: 2}

A host's counters are a line in time: ``OutRsts(t) = baseline × uptime₀ + rate × (t − epoch)``,
so what a probe reads moves by the modelled rate over the real window it waited. Quiet rates stay
under the warn threshold and spiking rates over 10 × max(baseline, spike floor), so the verdicts
and the ranking a sweep prints are known in advance (tests/e2e/test_simfleet_e2e.py checks them).
"""

from __future__ import annotations

import ipaddress
import json
import random
import shlex
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import yaml

from rstfleet.probe.host import PROBE_VERSION, SCHEMA
from rstfleet.probe.host.counters import TCP_KEYS, counter_deltas
from rstfleet.probe.host.facts import SYSCTLS
from rstfleet.probe.host.go import NoGo, parse_go
from rstfleet.probe.host.limits import start_wait_s
from rstfleet.probe.shell import FORMAT as SHELL_FORMAT

KINDS = ("ok", "auth_refused", "unknown_key", "slow_banner")
MAX_HOSTS = 16000                # fds: a listener and a session each, over two workers
FIRST_ADDRESS = "127.1.0.1"      # hosts take consecutive loopback addresses from here
SIM_PORT = 2222                  # every host listens on its own address, this port
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
KERNEL = "6.1.0-simfleet"
# /proc/net/snmp's Tcp line, in the kernel's order; the values not modelled stay put.
SNMP_TCP = ("RtoAlgorithm", "RtoMin", "RtoMax", "MaxConn", "ActiveOpens", "PassiveOpens",
            "AttemptFails", "EstabResets", "CurrEstab", "InSegs", "OutSegs", "RetransSegs",
            "InErrs", "OutRsts", "InCsumErrors")
TCPEXT = ("SyncookiesSent", "EmbryonicRsts", "ListenOverflows", "ListenDrops", "TCPAbortOnData",
          "TCPAbortOnClose", "TCPAbortOnMemory", "TCPAbortOnTimeout", "TCPAbortOnLinger")
# Per second, beside OutRsts: a host that resets also sees segments come and go.
TRAFFIC = {"InSegs": 40.0, "OutSegs": 38.0, "ActiveOpens": 0.5, "PassiveOpens": 2.0}
SYSCTL_VALUES = {"net.ipv4.tcp_syn_retries": 6, "net.ipv4.tcp_abort_on_overflow": 0,
                 "net.core.somaxconn": 4096, "net.ipv4.tcp_max_syn_backlog": 1024,
                 "net.ipv4.tcp_max_tw_buckets": 262144, "net.ipv4.tcp_syncookies": 1}


class ScenarioError(ValueError):
    """A scenario file that does not say a fleet (file: problem)."""


@dataclass(frozen=True)
class SimHost:
    index: int
    name: str            # "sim00001"
    address: str         # 127.1.0.1
    port: int
    kind: str            # one of KINDS
    rate: float          # OutRsts/s while probed
    baseline: float      # OutRsts/s over the host's lifetime before the fleet started
    uptime_s: float      # the host's uptime when the fleet started

    @property
    def spiking(self) -> bool:
        return self.rate > 10 * max(self.baseline, 5.0)


@dataclass(frozen=True)
class Request:
    """What the client asked for, read from its exec command."""
    kind: str            # python (the probe on stdin) | shell | sample (bench/peers.py) | unknown
    window_s: float = 0.0
    options: tuple[str, ...] = ()
    start_at: float = 0.0      # the probe's --start-at (epoch s; 0: at once)
    start_in: float = 0.0      # its --start-in, or the shell probe's delay
    script_bytes: int = 0      # the script's length when more follows it on stdin (probe.GO_READER)
    go: bool = False           # started before the start: it comes as a go line (probe/host/go.py)

    def went(self, line: bytes) -> "Request | None":
        """This request once its go line came: the start it names; None for EOF or not a go."""
        try:
            start_at, start_in = parse_go(line)
        except NoGo:
            return None
        if self.kind == "shell":
            return replace(self, go=False, start_in=start_in)
        return replace(self, go=False, start_at=start_at, start_in=start_in)

    def wait_s(self, now: float) -> float:
        """Seconds before the window, as the real probes wait: the Python probe for the fleet's
        common start (probe/host/limits.start_wait_s), the shell probe its delay."""
        if self.kind == "shell":
            return self.start_in
        return start_wait_s(self.start_at, self.start_in, now)


def _range(section: dict, key: str, default: tuple[float, float], where: str) -> tuple[float, float]:
    low, high = section.get(key, default)
    if not (isinstance(low, (int, float)) and isinstance(high, (int, float)) and 0 <= low <= high):
        raise ScenarioError(f"{where}.{key}: wanted [low, high] with 0 <= low <= high")
    return float(low), float(high)


def _count(section: dict, total: int, where: str) -> int:
    if "count" in section:
        return int(section["count"])
    share = section.get("share", 0)
    if not 0 <= share <= 1:
        raise ScenarioError(f"{where}.share: wanted a fraction 0..1, got {share!r}")
    return round(total * share)


def plan_hosts(scenario: dict, where: str = "scenario") -> list[SimHost]:
    """The scenario's hosts, in inventory order, the broken and spiking ones at seeded places."""
    total = int(scenario.get("hosts", 0))
    if not 1 <= total <= MAX_HOSTS:
        raise ScenarioError(f"{where}: hosts: wanted 1..{MAX_HOSTS}, got {total}")
    start = ipaddress.ip_address(scenario.get("first_address", FIRST_ADDRESS))
    port = int(scenario.get("port", SIM_PORT))
    if start not in LOOPBACK or start + total - 1 not in LOOPBACK or not 1024 <= port <= 65535:
        raise ScenarioError(f"{where}: first_address/port: the hosts must fit in 127.0.0.0/8 on a port "
                            f"from 1024 (got {start}+{total}, port {port})")
    rng = random.Random(scenario.get("seed", 1))
    quiet, spiking = scenario.get("quiet", {}), scenario.get("spiking", {})
    broken = scenario.get("broken", {})
    unknown = set(broken) - set(KINDS[1:])
    if unknown:
        raise ScenarioError(f"{where}: broken: unknown kind(s) {sorted(unknown)}; known: {KINDS[1:]}")
    kinds = [kind for kind in KINDS[1:] for _ in range(int(broken.get(kind, 0)))]
    spikers = _count(spiking, total, f"{where}.spiking")
    if len(kinds) + spikers > total:
        raise ScenarioError(f"{where}: {len(kinds)} broken + {spikers} spiking hosts exceed hosts: {total}")
    quiet_rate = _range(quiet, "rate", (0.0, 3.0), f"{where}.quiet")
    spike_rate = _range(spiking, "rate", (60.0, 600.0), f"{where}.spiking")
    if quiet_rate[1] >= 10.0 or spike_rate[0] <= 50.0:
        raise ScenarioError(f"{where}: quiet rates must stay under 10/s (warn) and spiking ones over "
                            f"50/s (10 × the spike floor), so every verdict is known in advance")
    roles = ["quiet"] * total
    slots = rng.sample(range(total), len(kinds) + spikers)
    for slot, kind in zip(slots, kinds + ["spiking"] * spikers):
        roles[slot] = kind
    hosts = []
    for i, role in enumerate(roles):
        section = spiking if role == "spiking" else quiet
        rate = rng.uniform(*(spike_rate if role == "spiking" else quiet_rate))
        baseline = rng.uniform(*_range(section, "baseline", (0.1, 2.0), f"{where}.{role}"))
        hosts.append(SimHost(i, f"sim{i + 1:05d}", str(start + i), port,
                             role if role in KINDS else "ok", round(rate, 3), round(baseline, 3),
                             86400.0 * (1 + rng.randrange(60))))
    return hosts


def load_scenario(path: str | Path) -> dict:
    """A scenario file (YAML or JSON) as a mapping; errors name the file."""
    try:
        scenario = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    if not isinstance(scenario, dict):
        raise ScenarioError(f"{path}: a scenario is a mapping (hosts:, seed:, quiet:, spiking:, broken:)")
    plan_hosts(scenario, where=str(path))      # every bound checked before anything starts
    return scenario


def hosts_to_json(hosts: list[SimHost]) -> str:
    return json.dumps([asdict(h) for h in hosts])


def hosts_from_json(text: str) -> list[SimHost]:
    return [SimHost(**item) for item in json.loads(text)]


# --- counters --------------------------------------------------------------------------------

def counters_at(host: SimHost, since_epoch_s: float) -> dict[str, dict[str, int]]:
    """The host's /proc counters `since_epoch_s` after the fleet started: {'Tcp': …, 'TcpExt': …}."""
    lived = host.uptime_s + since_epoch_s
    tcp = {name: 0 for name in SNMP_TCP}
    tcp.update(RtoAlgorithm=1, RtoMin=200, RtoMax=120000, MaxConn=-1, CurrEstab=3 + host.index % 40)
    tcp["OutRsts"] = int(host.baseline * host.uptime_s + host.rate * since_epoch_s)
    for name, per_s in TRAFFIC.items():
        tcp[name] = int(per_s * lived)
    tcpext = {name: (host.index % 7 if name == "ListenDrops" else 0) for name in TCPEXT}
    return {"Tcp": tcp, "TcpExt": tcpext}


def proc_text(counters: dict[str, dict[str, int]]) -> str:
    """/proc/net/snmp's Tcp pair then /proc/net/netstat's TcpExt pair, as the kernel prints them."""
    lines = []
    for prefix in ("Tcp", "TcpExt"):
        table = counters[prefix]
        lines.append(f"{prefix}: " + " ".join(table))
        lines.append(f"{prefix}: " + " ".join(str(v) for v in table.values()))
    return "\n".join(lines) + "\n"


# --- answers ---------------------------------------------------------------------------------

def parse_command(command: str) -> Request:
    """The probe's command (probe_argv, shell_argv) or the bench peers' sampling (bench/peers.py)."""
    try:
        argv = shlex.split(command)
    except ValueError:
        return Request("unknown")
    if len(argv) >= 5 and argv[0] == "sh" and argv[1] == "-c" and argv[3] == "rstfleet-shell":
        return Request("shell", _window(argv[4]), start_in=_window(argv[5]) if len(argv) > 5 else 0.0,
                       go=argv[6:7] == ["go"])
    if argv and argv[0].endswith("python3") and "--window" in argv:
        at = argv.index("--window")
        options = tuple(a for a in argv[at + 2:] if a.startswith("--"))

        def value(option: str, parse=_window) -> float:
            return parse(argv[argv.index(option) + 1]) if option in argv[:-1] else 0.0
        reader = argv[1:at].index("-c") + 1 if "-c" in argv[1:at] else 0    # probe.GO_READER, then N
        script_bytes = int(argv[reader + 2]) if reader and reader + 2 < at and argv[reader + 2].isdigit() else 0
        return Request("python", _window(argv[at + 1] if at + 1 < len(argv) else ""), options,
                       value("--start-at", _epoch), value("--start-in"), script_bytes,
                       "--start-on-stdin" in options)
    if argv[:2] == ["python3", "-c"] and len(argv) == 3 and "time.sleep(" in argv[2]:
        return Request("sample", sample_window(argv[2]))
    if argv == ["python3", "-"]:
        return Request("sample")          # the sampling comes on stdin: sample_window(stdin)
    return Request("unknown")


def _epoch(text: str) -> float:
    try:
        return max(0.0, float(text))
    except ValueError:
        return 0.0


def _window(text: str) -> float:
    try:
        return max(0.0, min(float(text), 3600.0))
    except ValueError:
        return 0.0


def sample_window(script: str) -> float:
    """The window of bench/peers.py's sampling: the number in its `time.sleep(…)`."""
    start = script.find("time.sleep(")
    end = script.find(")", start)
    return _window(script[start + len("time.sleep("):end]) if start >= 0 else 0.0


def probe_document(host: SimHost, request: Request, started_at: float, began_s: float,
                   ended_s: float, elapsed_s: float) -> dict:
    """The Python probe's document (probe/host/main.py's shape) for a window from `began_s` to
    `ended_s` after the fleet's epoch."""
    first, last = counters_at(host, began_s), counters_at(host, ended_s)
    delta = counter_deltas(first["Tcp"], last["Tcp"])
    uptime = host.uptime_s + ended_s
    document = {
        "schema": SCHEMA, "kind": "rstfleet-probe", "probe_version": PROBE_VERSION + "+sim",
        "facts": {"hostname": host.name, "kernel": KERNEL, "uid": 0, "python": "3.11.2",
                  "python_executable": "/usr/bin/python3", "tcpdump": None, "lsof": None,
                  "has_tcpdump": False, "has_lsof": False},
        "window": {"requested_s": request.window_s, "measured_s": elapsed_s, "started_at": started_at,
                   **({"start_at": request.start_at} if request.start_at else {})},
        "tcp": {"start": {k: first["Tcp"][k] for k in TCP_KEYS},
                "end": {k: last["Tcp"][k] for k in TCP_KEYS},
                "delta": {k: delta[k] for k in TCP_KEYS if k in delta},
                "per_s": {k: delta[k] / elapsed_s for k in TCP_KEYS
                          if delta.get(k) is not None and elapsed_s > 0}},
        "tcpext_delta": counter_deltas(first["TcpExt"], last["TcpExt"]),
        "baseline": {"uptime_s": uptime, "OutRsts_total": last["Tcp"]["OutRsts"],
                     "OutRsts_per_s_lifetime": last["Tcp"]["OutRsts"] / uptime},
        "sysctls": dict(SYSCTL_VALUES),
        "cost": {"cpu_s": 0.0, "children_cpu_s": 0.0, "max_rss_kb": 0},
    }
    if "--trace" in request.options:
        document["trace"] = {"available": False, "reason": "simulated host: no tracefs"}
    if "--capture" in request.options:
        document["capture"] = {"available": False, "reason": "simulated host: no tcpdump"}
    return document


def shell_snapshot(host: SimHost, marker: str, since_epoch_s: float) -> str:
    """One of the shell probe's two snapshots (probe/shell.py's `snap`)."""
    uptime = host.uptime_s + since_epoch_s
    return f"@@{marker}\n@@uptime {uptime:.2f}\n{proc_text(counters_at(host, since_epoch_s))}@@end\n"


def shell_head(host: SimHost, epoch_wall: float, since_epoch_s: float) -> str:
    """The shell probe's output up to the window: header, boot time, first snapshot."""
    btime = int(epoch_wall - host.uptime_s)
    return f"{SHELL_FORMAT}\n@@btime {btime}\n" + shell_snapshot(host, "begin", since_epoch_s)


def shell_tail(host: SimHost, since_epoch_s: float) -> str:
    """After the window: second snapshot, sysctls (as `grep '' FILES` prints them), identity."""
    sysctls = "".join(f"@@sysctl /proc/sys/{name.replace('.', '/')} {SYSCTL_VALUES[name]}\n"
                      for name in SYSCTLS)
    return (shell_snapshot(host, "finish", since_epoch_s) + sysctls
            + f"@@host {host.name}\n@@kernel {KERNEL}\n@@uid 0\n")


def sample_answer(host: SimHost, began_s: float, ended_s: float) -> str:
    """bench/peers.py's sampling prints the OutRsts delta over its window."""
    return f"{counters_at(host, ended_s)['Tcp']['OutRsts'] - counters_at(host, began_s)['Tcp']['OutRsts']}\n"
