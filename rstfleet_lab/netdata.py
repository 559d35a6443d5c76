"""A real Netdata agent inside a lab host's network namespace (Debian's `netdata` package).

The agent reads its own namespace's ``/proc/net/snmp``, so its ``ipv4.tcphandshake`` chart and its
``10s_ipv4_tcp_resets_sent`` alarm are that lab host's — the alert an on-call engineer gets, made
for real. The recipe (measured in ../shared/DESIGN.md, "A real Netdata agent in a lab host"):
RAM database at 1 s, the API on the namespace's 127.0.0.1:19999, no registry, no alarm script,
every plugin off but ``proc`` and ``netdata monitoring``, its own cache/lib/log folders owned by
user netdata, started with ``ip netns exec NS env DO_NOT_TRACK=1 netdata -D``, stopped with SIGTERM
then SIGKILL. It is never started in the root namespace.

    with NetdataAgent(lab, lab.host("h01")) as agent:     # waits for the API
        agent.alarm("10s_ipv4_tcp_resets_sent")["status"]  # 'CLEAR' once the chart exists
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from rstfleet_lab.fleet import Lab, LabError, LabHost
from rstfleet_lab.netns import kill_and_wait
from rstfleet_lab.scenarios import netns

NETDATA = "/usr/sbin/netdata"
PORT = 19999
USER = "netdata"
ALARM_UPTIME_S = 60.0        # the rule's `$netdata.uptime.uptime > 60`: no verdict before it
PLUGINS_OFF = ("idlejitter", "tc", "diskspace", "cgroups", "timex", "statsd", "apps", "python.d",
               "charts.d", "go.d", "node.d", "fping", "ioping", "perf", "slabinfo", "nfacct", "ebpf",
               "cups", "freeipmi")

CONFIG = """[global]
    run as user = {user}
[db]
    mode = ram
    update every = 1
[directories]
    cache = {root}/cache
    lib = {root}/lib
    log = {root}/log
    home = {root}/lib
    lock = {root}/lib/lock
[logs]
    error = {root}/log/error.log
    access = none
    debug = none
[web]
    bind to = 127.0.0.1:{port}
[registry]
    enabled = no
[ml]
    enabled = no
[health]
    script to execute on alarm = /bin/true
[plugins]
    enable running new plugins = no
    proc = yes
    netdata monitoring = yes
{plugins_off}
"""


def available() -> str | None:
    """None when the lab can run an agent here, else what is missing (tests fail with it)."""
    if not os.access(NETDATA, os.X_OK):
        return f"{NETDATA} is missing: apt-get install netdata (scripts/debian-packages.txt lists it)"
    try:
        pwd.getpwnam(USER)
    except KeyError:
        return f"user {USER!r} is missing (Debian's netdata package creates it)"
    return None


class NetdataAgent:
    """One agent in one lab host; see the module docstring. ``start()`` returns once the API answers."""

    def __init__(self, lab: Lab, host: LabHost, port: int = PORT) -> None:
        if not host.namespace or not (Path("/run/netns") / host.namespace).exists():
            raise LabError(f"{host.name}: network namespace {host.namespace!r} does not exist; "
                           f"the agent is never started in the root namespace")
        self.lab, self.host, self.port = lab, host, port
        self.root = lab.host_dir(host) / "netdata"
        self.proc: subprocess.Popen | None = None
        self.started_at: float | None = None

    # --- life cycle ----------------------------------------------------------------------------

    def start(self, ready_timeout: float = 20.0) -> "NetdataAgent":
        missing = available()
        if missing:
            raise LabError(missing)
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True)
        entry = pwd.getpwnam(USER)
        for sub in ("cache", "lib", "log", "run"):
            (self.root / sub).mkdir()
            os.chown(self.root / sub, entry.pw_uid, entry.pw_gid)
        plugins_off = "".join(f"    {name} = no\n" for name in PLUGINS_OFF)
        (self.root / "netdata.conf").write_text(CONFIG.format(
            user=USER, root=self.root, port=self.port, plugins_off=plugins_off))
        stderr = open(self.root / "stderr.log", "wb")
        try:
            # `ip netns exec` execs: the Popen pid is netdata's own (-D keeps it in the foreground).
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", self.host.namespace, "env", "DO_NOT_TRACK=1", NETDATA, "-D",
                 "-c", str(self.root / "netdata.conf"), "-P", str(self.root / "run" / "netdata.pid")],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)
        finally:
            stderr.close()
        self.started_at = time.monotonic()
        try:
            self.wait_ready(ready_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float) -> dict:
        """Poll /api/v1/info until it answers JSON (bounded); LabError with the agent's log if not."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise LabError(f"netdata in {self.host.name} exited with {self.proc.returncode}: {self._log_tail()}")
            try:
                return self.get_json("/api/v1/info", timeout=1.0)
            except (OSError, ValueError):
                if time.monotonic() > deadline:
                    raise LabError(f"netdata in {self.host.name} did not answer on 127.0.0.1:{self.port} "
                                   f"within {timeout:.0f} s: {self._log_tail()}") from None
                time.sleep(0.2)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; also the agent's own children (spawn server)."""
        if self.proc is None:
            return
        pids = [self.proc.pid] + self._children(self.proc.pid)
        kill_and_wait(pids, signal.SIGTERM, timeout)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=timeout)
        self.proc = None

    @staticmethod
    def _children(pid: int) -> list[int]:
        try:
            text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def uptime_s(self) -> float:
        return 0.0 if self.started_at is None else time.monotonic() - self.started_at

    def __enter__(self) -> "NetdataAgent":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _log_tail(self) -> str:
        parts = []
        for name in ("stderr.log", "log/error.log"):
            path = self.root / name
            if path.exists():
                parts.append(path.read_text(errors="replace")[-600:].strip())
        return " | ".join(p for p in parts if p) or "(no log)"

    # --- the API, from inside the namespace (an independent reader: urllib, not the probe's) ---

    def get_json(self, path: str, timeout: float = 2.0):
        """GET http://127.0.0.1:PORT/path inside the host's namespace; the decoded JSON."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))   # never a proxy
        with netns(self.host.namespace):
            with opener.open(f"http://127.0.0.1:{self.port}{path}", timeout=timeout) as reply:
                body = reply.read(4 * 1024 * 1024)
        return json.loads(body)

    def alarms(self) -> dict:
        """name -> alarm, from /api/v1/alarms?all."""
        return self.get_json("/api/v1/alarms?all").get("alarms") or {}

    def alarm(self, name: str) -> dict | None:
        """The alarm whose `name` is ``name`` (keys are 'chart.name'), or None."""
        for alarm in self.alarms().values():
            if alarm.get("name") == name:
                return alarm
        return None

    def wait_alarm(self, name: str, statuses: tuple[str, ...], timeout: float) -> dict:
        """Poll until alarm ``name`` has one of ``statuses`` (bounded); its last reading either way."""
        deadline = time.monotonic() + timeout
        while True:
            alarm = self.alarm(name)
            if (alarm and alarm.get("status") in statuses) or time.monotonic() > deadline:
                return alarm or {}
            time.sleep(0.5)

    def history(self, chart: str, seconds: int) -> dict:
        """/api/v1/data for the chart's last ``seconds`` (one point a second, newest first)."""
        return self.get_json(f"/api/v1/data?chart={chart}&after=-{int(seconds)}&points={int(seconds)}"
                             f"&group=average&format=json&options=seconds")
