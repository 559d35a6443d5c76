#!/usr/bin/env python3
"""rstfleet against the tools people already have, on the same lab hosts, in one run.

    python bench/fleet_bench.py --sizes 10,50,100,200 --window 10 --out bench/results.json

For each fleet size N it builds a lab of N network-namespace hosts (``rstfleet_lab``), then runs,
one after another on those same hosts, every tool below doing the same 10 s counter sampling
(read Tcp OutRsts from /proc/net/snmp, sleep the window, read again):

  rstfleet          ``rstfleet sweep`` (CLI, default settings: counters only; JSON to a file,
                    table on stdout)
  rstfleet-fN       the same with ``-f N``
  rstfleet-trace    the same with ``--trace`` (tracepoint tier: more work than the peers do)
  fabric            Fabric ``ThreadingGroup(...).run(cmd)``                    (bench/peers.py)
  pssh              parallel-ssh ``ParallelSSHClient(pool_size=N)`` (libssh2)   (bench/peers.py)
  ansible-f5        ``ansible all -m shell -a CMD`` with default forks (5), N <= 20 only
  ansible-fN        the same with ``-f N``
  ssh               one ``ssh ... root@HOST python3 -`` per host, thread pool of N, default KEX
  ssh-curve25519    the same with ``-o KexAlgorithms=curve25519-sha256``
  asyncssh          (not by default) asyncssh as a candidate transport for rstfleet, not a peer

Each tool runs as a child process in its own session; this process is its child subreaper, so
every process of the tool's tree (Ansible's ControlPersist masters included) is reaped here and
its CPU lands in os.wait4's rusage. Measured per run: wall time (spawn to exit), overhead (wall -
window), CPU (user + sys of the whole tree), ru_maxrss (largest single process), the tree's peak
memory (sum of PSS, sampled from /proc every 0.5 s), hosts ok. Tools run one at a time, with a
pause and a wait until the lab hosts are idle again, in an order rotated per size and reversed
every other repetition. Repeats: --repeats at N <= 100, --repeats-large above; medians reported.

Also: the probe's own cost on each host (from rstfleet's JSON), a 0-bytes-written check of the
probe (strace + rusage), the table (tabulate), the JSON, an SVG chart, and the figures section
of docs/benchmarks.md (between its bench markers). The lab is always taken down.
Bench-only dependencies: parallel-ssh, ansible-core (pip), strace (apt).
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.metadata
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import peers  # noqa: E402  (bench/peers.py: the sampling command and the peer scripts)

PR_SET_CHILD_SUBREAPER = 36
CLK_TCK = os.sysconf("SC_CLK_TCK")
DOC_BEGIN, DOC_END = "<!-- bench:begin -->", "<!-- bench:end -->"


# ---------------------------------------------------------------------------------------------
# The tools
# ---------------------------------------------------------------------------------------------

@dataclass
class Context:
    lab: object             # rstfleet_lab.Lab
    n: int
    window: float
    workdir: Path           # fresh per run
    verify_host_keys: bool
    connect_timeout: float = 10.0

    def spec(self, **extra) -> Path:
        spec = {"hosts": [h.address for h in self.lab.hosts], "user": "root",
                "key": str(self.lab.key_path), "known_hosts": str(self.lab.known_hosts_path),
                "window": self.window, "verify_host_keys": self.verify_host_keys,
                "timeout": self.connect_timeout, **extra}
        path = self.workdir / "spec.json"
        path.write_text(json.dumps(spec))
        return path


@dataclass
class Tool:
    id: str
    label: str
    family: str                                   # rstfleet | fabric | pssh | ansible | ssh
    command: Callable[[Context], tuple[list[str], dict]]
    hosts_ok: Callable[[Context, str, int], int]
    max_n: int | None = None
    note: str = ""
    default: bool = True


def _rstfleet(*extra: str, forks_n: bool = False):
    def command(ctx: Context):
        argv = [str(BIN / "rstfleet"), "sweep", "-i", str(ctx.lab.inventory_path),
                "--window", repr(ctx.window), "--format", "json", "-o", str(ctx.workdir / "sweep.json")]
        if forks_n:
            argv += ["-f", str(ctx.n)]
        return argv + list(extra), {}
    return command


def _rstfleet_ok(ctx: Context, stdout: str, rc: int) -> int:
    try:
        report = json.loads((ctx.workdir / "sweep.json").read_text())
    except (OSError, ValueError):
        return 0
    return sum(1 for h in report["hosts"] if h["status"] == "ok")


def _peer(name: str, **extra):
    def command(ctx: Context):
        return [sys.executable, str(HERE / "peers.py"), name, str(ctx.spec(**extra))], {}
    return command


def _peer_ok(ctx: Context, stdout: str, rc: int) -> int:
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            try:
                return int(json.loads(line)["ok"])
            except (ValueError, KeyError):
                break
    return 0


def _ansible(forks: int | None):
    def command(ctx: Context):
        argv = [str(BIN / "ansible"), "all", "-i", str(ctx.lab.inventory_path), "-m", "shell",
                "-a", peers.sample_shell(ctx.window)]
        if forks is not None:
            argv += ["-f", str(forks or ctx.n)]
        env = {"ANSIBLE_PIPELINING": "True",
               # Same as every other tool here: host keys verified against the lab's known_hosts
               # (the inventory passes -o UserKnownHostsFile=... in ansible_ssh_common_args).
               "ANSIBLE_HOST_KEY_CHECKING": "True",
               # A fresh ControlPath dir per run: no ControlPersist master survives into the
               # next run (it would hand Ansible ready-made connections).
               "ANSIBLE_SSH_CONTROL_PATH_DIR": str(ctx.workdir / "cp"),
               "ANSIBLE_LOCAL_TEMP": str(ctx.workdir / "tmp"),
               "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
        return argv, env
    return command


def _ansible_ok(ctx: Context, stdout: str, rc: int) -> int:
    return len(re.findall(r"^\S+ \| CHANGED \| rc=0 >>\n-?\d+$", stdout, re.M))


TOOLS = [
    Tool("rstfleet", "rstfleet sweep (default)", "rstfleet", _rstfleet(), _rstfleet_ok),
    Tool("rstfleet-fN", "rstfleet sweep -f N", "rstfleet", _rstfleet(forks_n=True), _rstfleet_ok),
    Tool("rstfleet-asyncssh", "rstfleet sweep --ssh-engine asyncssh", "rstfleet",
         _rstfleet("--ssh-engine", "asyncssh"), _rstfleet_ok, default=False,
         note="the event-loop engine (extra rstfleet[fleet]): same checks, one loop thread"),
    Tool("rstfleet-shell", "rstfleet sweep --host-probe shell", "rstfleet",
         _rstfleet("--host-probe", "shell"), _rstfleet_ok, default=False,
         note="counters only, POSIX sh on the host (no Python start there)"),
    Tool("rstfleet-trace", "rstfleet sweep --trace", "rstfleet", _rstfleet("--trace"), _rstfleet_ok,
         note="adds the tracepoint tier (per-reset attribution): ~80 ms of kernel time per host, "
              "serialized across lab hosts because they share one kernel"),
    # Before 6dd23ca the default sweep traced and this was the counters-only variant; now it is
    # the default's configuration again. Kept so older results files re-render.
    Tool("rstfleet-notrace", "rstfleet sweep --no-trace", "rstfleet", _rstfleet("--no-trace"),
         _rstfleet_ok, default=False),
    Tool("fabric", "Fabric ThreadingGroup", "fabric", _peer("fabric"), _peer_ok),
    Tool("pssh", "parallel-ssh (libssh2, pool N)", "pssh", _peer("pssh"), _peer_ok,
         note="no host-key verification: ParallelSSHClient has no known_hosts option"),
    Tool("ansible-f5", "Ansible ad-hoc, forks 5", "ansible", _ansible(None), _ansible_ok, max_n=20,
         note="default forks: only at N <= 20 (runs N/5 batches of window + set-up)"),
    Tool("ansible-fN", "Ansible ad-hoc, forks N", "ansible", _ansible(0), _ansible_ok),
    Tool("ssh", "OpenSSH x N (default KEX)", "ssh", _peer("ssh"), _peer_ok),
    Tool("ssh-curve25519", "OpenSSH x N (curve25519)", "ssh", _peer("ssh", kex="curve25519-sha256"),
         _peer_ok),
    # Not a peer: a candidate transport for rstfleet itself. Only with --tools ...,asyncssh.
    Tool("asyncssh", "asyncssh (candidate transport)", "candidate", _peer("asyncssh"), _peer_ok,
         default=False, note="candidate transport, not a peer: key and known_hosts parsed once"),
]
BY_ID = {t.id: t for t in TOOLS}
RSTFLEET_IDS = [t.id for t in TOOLS if t.family == "rstfleet"]
# Dropped first, in this order, when a size would not fit the time budget (rstfleet-fN is the
# same configuration as the default below 200 hosts; Fabric and parallel-ssh are never dropped).
SHED_ORDER = ["ansible-fN", "ssh", "rstfleet-fN", "rstfleet-notrace", "rstfleet-trace"]
MIN_REPEATS_UP_TO_100 = 2


# ---------------------------------------------------------------------------------------------
# Measuring one child process tree
# ---------------------------------------------------------------------------------------------

def set_subreaper(on: bool) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def _stat(pid: int) -> tuple[int, int, int] | None:
    """(ppid, session id, threads) of a live process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), int(fields[3]), int(fields[17])


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as handle:
            for line in handle:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_pids(root: int, me: int) -> tuple[list[int], int]:
    """The tool's processes: root's descendants, its session, and orphans reparented to us."""
    parents, members, threads = {}, set(), {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        st = _stat(int(name))
        if st is None:
            continue
        pid = int(name)
        parents[pid] = st[0]
        threads[pid] = st[2]
        if pid == root or st[1] == root or (st[0] == me and pid != me):
            members.add(pid)
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in members and pid not in members:
                members.add(pid)
                changed = True
    members.discard(me)
    return sorted(members), sum(threads.get(p, 0) for p in members)


class TreeSampler(threading.Thread):
    """Peak memory (sum of PSS), process and thread counts of a process tree, every interval."""

    def __init__(self, root: int, interval: float = 0.5):
        super().__init__(daemon=True, name="tree-sampler")
        self.root, self.interval = root, interval
        self.me = os.getpid()
        self.stop = threading.Event()
        self.peak_pss_kb = self.peak_procs = self.peak_threads = 0
        self.samples = 0
        self.cpu_s = 0.0

    def run(self) -> None:
        started = time.thread_time()
        while True:
            pids, threads = tree_pids(self.root, self.me)
            self.peak_pss_kb = max(self.peak_pss_kb, sum(_pss_kb(p) for p in pids))
            self.peak_procs = max(self.peak_procs, len(pids))
            self.peak_threads = max(self.peak_threads, threads)
            self.samples += 1
            if self.stop.wait(self.interval):
                break
        self.cpu_s = time.thread_time() - started


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy so far (all cores; noise indicator)."""
    with open("/proc/stat") as handle:
        fields = [int(x) for x in handle.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / CLK_TCK


def run_measured(argv: list[str], env: dict, workdir: Path, timeout: float) -> dict:
    """Run one tool as a child (own session), wait4 it and every process of its tree."""
    out_path, err_path = workdir / "stdout", workdir / "stderr"
    full_env = dict(os.environ)
    full_env["PATH"] = f"{BIN}:{full_env.get('PATH', '')}"
    full_env.update(env)
    busy0, load0 = machine_busy_s(), os.getloadavg()[0]
    set_subreaper(True)
    try:
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            started = time.perf_counter()
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    env=full_env, cwd=workdir, start_new_session=True)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        killed_by_timeout = []
        watchdog = threading.Timer(timeout, lambda: (killed_by_timeout.append(True),
                                                     _killpg(proc.pid)))
        watchdog.daemon = True
        watchdog.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:            # interrupted: the tool must not outlive the benchmark
            _killpg(proc.pid)
            for pid in tree_pids(proc.pid, os.getpid())[0]:
                _kill(pid, signal.SIGKILL)
            os.waitpid(proc.pid, 0)
            proc.returncode = -9
            raise
        finally:
            watchdog.cancel()
            sampler.stop.set()
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        sampler.join()
        user, sys_ = usage.ru_utime, usage.ru_stime
        maxrss = usage.ru_maxrss
        # Whatever of the tree outlived the tool (Ansible's ControlPersist masters, a stray ssh):
        # it is ours now (subreaper); stop it and add its CPU.
        leftovers = tree_pids(proc.pid, os.getpid())[0]
        for pid in leftovers:
            _kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for pid in leftovers:
            while True:
                try:
                    done, _, extra = os.wait4(pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if done:
                    user, sys_ = user + extra.ru_utime, sys_ + extra.ru_stime
                    maxrss = max(maxrss, extra.ru_maxrss)
                    break
                if time.monotonic() > deadline:
                    _kill(pid, signal.SIGKILL)
                time.sleep(0.02)
    finally:
        set_subreaper(False)
    busy = machine_busy_s() - busy0
    return {"wall_s": wall, "exit_code": proc.returncode, "cpu_user_s": user, "cpu_sys_s": sys_,
            "cpu_s": user + sys_, "maxrss_kb": maxrss, "tree_pss_kb": sampler.peak_pss_kb,
            "peak_procs": sampler.peak_procs, "peak_threads": sampler.peak_threads,
            "leftovers_killed": len(leftovers), "timed_out": bool(killed_by_timeout),
            "machine_busy_s": round(busy, 3), "loadavg1_before": load0,
            "sampler_cpu_s": round(sampler.cpu_s, 4), "sampler_samples": sampler.samples,
            "stdout": out_path.read_text(errors="replace"),
            "stderr_tail": err_path.read_text(errors="replace")[-1500:]}


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def lab_busy_procs(namespaces: set[tuple[int, int]]) -> int:
    """Processes living in the lab's network namespaces (idle lab: one sshd per host)."""
    count = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                st = os.stat(f"/proc/{name}/ns/net")
            except OSError:
                continue
            count += (st.st_dev, st.st_ino) in namespaces
    return count


def wait_machine_quiet(max_wait: float, threshold_cores: float = 0.5,
                       probe_s: float = 0.5) -> tuple[float, float]:
    """Wait (bounded) for a second in which the machine is nearly idle: other work on this shared
    machine (another session's tests) would otherwise land in the timings. Returns (waited, busy
    cores in the last second)."""
    if max_wait <= 0:
        return 0.0, -1.0
    started = time.monotonic()
    while True:
        before = machine_busy_s()
        time.sleep(probe_s)
        busy = (machine_busy_s() - before) / probe_s
        if busy < threshold_cores or time.monotonic() - started >= max_wait:
            return time.monotonic() - started, busy


def wait_lab_idle(lab, timeout: float = 20.0) -> float:
    """Wait (bounded) until every session of the previous tool is gone from the lab hosts."""
    inodes = set()
    for h in lab.hosts:
        st = os.stat(f"/run/netns/{h.namespace}")
        inodes.add((st.st_dev, st.st_ino))
    started = time.monotonic()
    while lab_busy_procs(inodes) > len(lab.hosts) and time.monotonic() - started < timeout:
        time.sleep(0.2)
    return time.monotonic() - started


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------

def plan_order(tools: list[Tool], size_index: int, rep: int) -> list[Tool]:
    """Rotate the order per size; reverse it every other repetition (no tool always first)."""
    k = (size_index * 3) % len(tools)
    order = tools[k:] + tools[:k]
    return order[::-1] if rep % 2 else order


def estimate_run_s(tool: Tool, n: int, window: float, pause: float, previous: list[dict]) -> float:
    """Seconds one run of tool at n will take, scaled linearly from the largest smaller n run."""
    seen = [r for r in previous if r["tool"] == tool.id and r["wall_s"]]
    if not seen:
        return window * (n / 5 if tool.id == "ansible-f5" else 1) + pause + 0.04 * n + 2.5
    ref = max(seen, key=lambda r: r["n"])
    return window + pause + 2.5 + max(0.0, ref["wall_s"] - window) * n / ref["n"]


def probe_costs(report_path: Path) -> list[dict]:
    try:
        report = json.loads(report_path.read_text())
    except (OSError, ValueError):
        return []
    costs = []
    for host in report["hosts"]:
        cost = (host.get("probe") or {}).get("cost")
        if cost:
            costs.append({"cpu_s": cost.get("cpu_s"), "max_rss_kb": cost.get("max_rss_kb"),
                          "elapsed_s": host.get("elapsed_s")})
    return costs


def run_size(lab, n: int, size_index: int, args, tools: list[Tool], results: list[dict],
             probe_samples: dict, budget_end: float, skipped: list[dict],
             later_sizes: list[int] = ()) -> None:
    reps = args.repeats if n <= 100 else args.repeats_large
    runnable = [t for t in tools if t.max_n is None or n <= t.max_n]
    for t in tools:
        if t not in runnable:
            skipped.append({"tool": t.id, "n": n, "reason": f"only at N <= {t.max_n}"})

    def projected(m, ts, r):
        return r * sum(estimate_run_s(t, m, args.window, args.pause, results) for t in ts)

    def min_reps(m):
        return min(args.repeats, MIN_REPEATS_UP_TO_100) if m <= 100 else 1

    # What the later sizes need at least (essential tools, fewest repeats), kept in reserve.
    essential = [t for t in tools if t.id not in SHED_ORDER and t.max_n is None]
    reserve = sum(projected(m, essential, min_reps(m)) for m in later_sizes)
    while True:
        remaining = budget_end - time.monotonic() - reserve
        if projected(n, runnable, reps) <= remaining:
            break
        if reps > min_reps(n):
            reps -= 1
            continue
        drop = next((tid for tid in SHED_ORDER if any(t.id == tid for t in runnable)), None)
        if drop is None:
            break
        runnable = [t for t in runnable if t.id != drop]
        skipped.append({"tool": drop, "n": n, "reason": "time budget"})
        print(f"  N={n}: {drop} skipped to stay within the time budget", flush=True)

    for rep in range(reps):
        for position, tool in enumerate(plan_order(runnable, size_index, rep)):
            idle_wait = wait_lab_idle(lab)
            time.sleep(args.pause)
            quiet_wait, busy_before = wait_machine_quiet(args.quiet_wait)
            workdir = Path(tempfile.mkdtemp(prefix=f"bench-{tool.id}-{n}-", dir=args.workdir))
            ctx = Context(lab, n, args.window, workdir, args.verify_host_keys)
            argv, env = tool.command(ctx)
            timeout = args.window * (n / 5 + 1 if tool.id == "ansible-f5" else 1) + 60 + 0.5 * n
            m = run_measured(argv, env, workdir, timeout)
            ok = tool.hosts_ok(ctx, m.pop("stdout"), m["exit_code"])
            row = {"tool": tool.id, "n": n, "rep": rep, "position": position, **m,
                   "overhead_s": m["wall_s"] - args.window, "hosts_ok": ok,
                   "idle_wait_s": round(idle_wait, 2), "quiet_wait_s": round(quiet_wait, 1),
                   "busy_cores_before": round(busy_before, 2),
                   "other_busy_s": round(m["machine_busy_s"] - m["cpu_s"] - m["sampler_cpu_s"], 2)}
            if tool.family == "rstfleet":
                costs = probe_costs(workdir / "sweep.json")
                probe_samples.setdefault(tool.id, []).extend(costs)
            results.append(row)
            print(f"  N={n:<4} rep {rep} {tool.id:<17} wall {m['wall_s']:6.2f} s  "
                  f"cpu {m['cpu_s']:6.2f} s  mem {m['tree_pss_kb'] / 1024:7.1f} MB  ok {ok}/{n}"
                  f"{'  TIMEOUT' if m['timed_out'] else ''}", flush=True)
            if ok < n and not args.keep_workdirs:
                (workdir / "stderr.keep").write_text(m["stderr_tail"])
            if not args.keep_workdirs and ok == n:
                shutil.rmtree(workdir, ignore_errors=True)


def warm_up(lab, args) -> None:
    """One unmeasured pass (curve25519 ssh, empty window) so no tool pays for cold caches."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-warmup-", dir=args.workdir))
    ctx = Context(lab, len(lab.hosts), 0.0, workdir, args.verify_host_keys)
    argv, _ = _peer("ssh", kex="curve25519-sha256")(ctx)
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    shutil.rmtree(workdir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# The probe on a host: cost and disk writes
# ---------------------------------------------------------------------------------------------

def distribution(values: list[float]) -> dict:
    values = sorted(v for v in values if v is not None)
    if not values:
        return {}

    def q(p):
        return values[min(len(values) - 1, int(round(p * (len(values) - 1))))]
    return {"count": len(values), "min": values[0], "p10": q(0.1), "median": q(0.5),
            "p90": q(0.9), "max": values[-1]}


OPEN_FOR_WRITE = re.compile(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND")


def probe_disk_check(lab, window: float = 2.0) -> dict:
    """Run the probe once on lab host 1 (as its sshd would: /usr/bin/python3 -I -B -, script on
    stdin) under strace, and once plainly with wait4's ru_oublock; report every file opened for
    writing and every write() that is not to stdout/stderr, and the disk blocks written."""
    from rstfleet.probe import probe_argv, probe_script

    host = lab.hosts[0]
    out = {}
    for variant, extra in (("trace", ["--trace"]), ("no-trace", [])):
        argv = ["/usr/bin/python3"] + probe_argv(window, extra)[1:]
        ns = ["ip", "netns", "exec", host.namespace]
        proc = subprocess.Popen(ns + argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        stdout, _ = proc.communicate(probe_script(), timeout=window + 40)
        try:
            document = json.loads(stdout)
        except ValueError:
            document = {}
        out[variant] = {"exit_code": proc.returncode, "cost": document.get("cost"),
                        "trace": (document.get("trace") or {}).get("available"),
                        "trace_reason": (document.get("trace") or {}).get("reason")}
        if not shutil.which("strace"):
            out[variant]["strace"] = "strace not installed (apt-get install strace)"
            continue
        with tempfile.TemporaryDirectory(prefix="bench-strace-") as tmp:
            log = Path(tmp) / "strace.log"
            traced = subprocess.run(
                ns + ["strace", "-f", "-y", "-qq", "-s", "0", "-o", str(log), "-e",
                      "trace=open,openat,openat2,creat,write,writev,pwrite64,pwritev,pwritev2,"
                      "rename,renameat,renameat2,unlink,unlinkat,mkdir,mkdirat,truncate,ftruncate,"
                      "mount,umount2"] + argv, input=probe_script(), capture_output=True,
                timeout=window + 60)
            lines = log.read_text(errors="replace").splitlines()
        opened_w, writes, other = [], {}, []
        for line in lines:
            m = re.search(r'open(?:at2?)?\([^"]*"([^"]*)", ([A-Z_|]+)', line)
            if m and OPEN_FOR_WRITE.search(m.group(2)) and "= -1" not in line:
                opened_w.append(m.group(1))
            m = re.search(r"(write|writev|pwrite64|pwritev2?)\((\d+)<([^>]*)>.*= (\d+)$", line)
            if m and m.group(2) not in ("1", "2"):
                writes[m.group(3)] = writes.get(m.group(3), 0) + int(m.group(4))
            if re.search(r"\b(creat|rename|renameat2?|unlink|unlinkat|mkdir|mkdirat|truncate|"
                         r"ftruncate|mount|umount2)\(", line) and "= -1" not in line:
                other.append(line.split("(", 1)[0].split()[-1] + "(" + line.split("(", 1)[1][:80])
        on_disk = {p: b for p, b in writes.items()
                   if not p.startswith(("/sys/", "/proc/", "/dev/", "pipe:", "socket:",
                                        "anon_inode:"))}
        out[variant].update({"strace_exit": traced.returncode, "opened_for_writing": sorted(set(opened_w)),
                             "bytes_written_by_target": writes, "bytes_written_to_disk_files": on_disk,
                             "other_fs_calls": other[:20]})
        # rusage: blocks the probe process wrote through the filesystem (512 B units).
        plain = subprocess.Popen(ns + argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        plain.stdin.write(probe_script())
        plain.stdin.close()
        _, status, usage = os.wait4(plain.pid, 0)
        plain.returncode = os.waitstatus_to_exitcode(status)
        out[variant]["ru_oublock"] = usage.ru_oublock
    return out


# ---------------------------------------------------------------------------------------------
# Summaries, table, chart, doc
# ---------------------------------------------------------------------------------------------

def summarize(results: list[dict]) -> list[dict]:
    rows = []
    keys = sorted({(r["n"], r["tool"]) for r in results},
                  key=lambda k: (k[0], [t.id for t in TOOLS].index(k[1])))
    for n, tool in keys:
        runs = [r for r in results if r["n"] == n and r["tool"] == tool]
        med = {k: statistics.median(r[k] for r in runs)
               for k in ("wall_s", "overhead_s", "cpu_s", "cpu_user_s", "cpu_sys_s", "maxrss_kb",
                         "tree_pss_kb", "hosts_ok", "machine_busy_s", "peak_threads", "peak_procs")}
        med["other_busy_s"] = statistics.median(r.get("other_busy_s", 0.0) for r in runs)
        rows.append({"tool": tool, "label": BY_ID[tool].label, "n": n, "reps": len(runs), **med,
                     "overhead_min_s": min(r["overhead_s"] for r in runs),
                     "overhead_max_s": max(r["overhead_s"] for r in runs),
                     "cpu_ms_per_host": 1000 * med["cpu_s"] / n,
                     "tree_mb": med["tree_pss_kb"] / 1024,
                     "tree_kb_per_host": med["tree_pss_kb"] / n})
    return rows


def ratios(summary: list[dict], ours: tuple[str, ...] = ("rstfleet", "rstfleet-trace")) -> list[dict]:
    """rstfleet / peer at each N, for the default sweep (counters only, the peers' job) and for
    --trace (more work than the peers do)."""
    out = []
    for row in summary:
        if row["tool"] in RSTFLEET_IDS:
            continue
        entry = {"n": row["n"], "peer": row["tool"]}
        for variant in ours:
            mine = next((r for r in summary if r["n"] == row["n"] and r["tool"] == variant), None)
            suffix = "" if variant == "rstfleet" else "_" + variant.split("-", 1)[1]
            entry["overhead_ratio" + suffix] = (mine["overhead_s"] / row["overhead_s"]
                                                if mine and row["overhead_s"] > 0 else None)
            entry["cpu_ratio" + suffix] = mine["cpu_s"] / row["cpu_s"] if mine and row["cpu_s"] > 0 else None
            entry["memory_ratio" + suffix] = (mine["tree_pss_kb"] / row["tree_pss_kb"]
                                              if mine and row["tree_pss_kb"] else None)
        if any(v is not None for k, v in entry.items() if k.endswith(("ratio", "trace"))):
            out.append(entry)
    return out


def table(summary: list[dict], fmt: str = "simple") -> str:
    from tabulate import tabulate
    rows = [[r["n"], r["tool"], f"{r['wall_s']:.2f}", f"{r['overhead_s']:+.2f}",
             f"{r['overhead_min_s']:+.2f}..{r['overhead_max_s']:+.2f}" if r["reps"] > 1 else "",
             f"{r['cpu_s']:.2f}", f"{r['cpu_ms_per_host']:.1f}", f"{r['tree_mb']:.1f}",
             f"{r['tree_kb_per_host']:.0f}", f"{r['maxrss_kb'] / 1024:.0f}",
             f"{r['hosts_ok']:g}/{r['n']}", r["reps"], f"{r.get('other_busy_s', 0):.1f}"]
            for r in summary]
    return tabulate(rows, headers=["N", "tool", "wall s", "overhead s", "range", "CPU s",
                                   "CPU ms/host", "tree MB", "KB/host", "maxrss MB", "ok", "reps",
                                   "other CPU s"],
                    tablefmt=fmt, disable_numparse=True)


def ratio_table(rows: list[dict], fmt: str = "simple") -> str:
    from tabulate import tabulate

    def f(x):
        return "-" if x is None else f"{x:.2f}"
    traced = any(r.get("overhead_ratio_trace") is not None for r in rows)
    headers = ["N", "peer", "overhead", "CPU", "memory"]
    if traced:
        headers += ["overhead (--trace)", "CPU (--trace)", "memory (--trace)"]
    body = []
    for r in rows:
        line = [r["n"], r["peer"], f(r["overhead_ratio"]), f(r["cpu_ratio"]), f(r["memory_ratio"])]
        if traced:
            line += [f(r.get("overhead_ratio_trace")), f(r.get("cpu_ratio_trace")),
                     f(r.get("memory_ratio_trace"))]
        body.append(line)
    return tabulate(body, headers=headers, tablefmt=fmt, disable_numparse=True)


COLORS = {"rstfleet": "#d62728", "rstfleet-fN": "#ff9896", "rstfleet-notrace": "#8c1a1a",
          "rstfleet-trace": "#e377c2",
          "fabric": "#1f77b4", "pssh": "#2ca02c", "ansible-f5": "#7f7f7f", "ansible-fN": "#9467bd",
          "ssh": "#ff7f0e", "ssh-curve25519": "#bcbd22", "asyncssh": "#17becf",
          "rstfleet-asyncssh": "#8c564b", "rstfleet-shell": "#c49c94"}


def svg_chart(summary: list[dict], title: str) -> str:
    """Three panels (overhead, CPU per host, memory), log y axes, one line per tool."""
    panels = [("overhead_s", "overhead over the window (s)"),
              ("cpu_ms_per_host", "orchestrator CPU per host (ms)"),
              ("tree_kb_per_host", "orchestrator memory per host (KB, PSS)")]
    width, height, pw, ph, left, top = 1140, 430, 300, 270, 70, 50
    ns = sorted({r["n"] for r in summary})
    xmax = max(ns) * 1.05
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="11">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">{_esc(title)}</text>']
    for i, (key, label) in enumerate(panels):
        x0, y0 = left + i * (pw + 70), top
        values = [r[key] for r in summary if r[key] and r[key] > 0]
        lo = 10 ** math.floor(math.log10(min(values))) if values else 0.1
        hi = 10 ** math.ceil(math.log10(max(values))) if values else 10

        def sx(n):
            return x0 + pw * n / xmax

        def sy(v):
            v = max(v, lo)
            return y0 + ph - ph * (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
        parts.append(f'<rect x="{x0}" y="{y0}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
        parts.append(f'<text x="{x0 + pw / 2}" y="{y0 - 8}" text-anchor="middle">{_esc(label)}</text>')
        decade = lo
        while decade <= hi * 1.0001:
            for m in (1, 2, 5):
                v = decade * m
                if lo <= v <= hi * 1.0001:
                    y = sy(v)
                    parts.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + pw}" y2="{y:.1f}" '
                                 f'stroke="#ddd" stroke-width="{1 if m == 1 else 0.5}"/>')
                    parts.append(f'<text x="{x0 - 4}" y="{y + 4:.1f}" text-anchor="end">{v:g}</text>')
            decade *= 10
        for n in ns:
            parts.append(f'<line x1="{sx(n):.1f}" y1="{y0 + ph}" x2="{sx(n):.1f}" y2="{y0 + ph + 4}" stroke="#333"/>')
            parts.append(f'<text x="{sx(n):.1f}" y="{y0 + ph + 16}" text-anchor="middle">{n}</text>')
        parts.append(f'<text x="{x0 + pw / 2}" y="{y0 + ph + 32}" text-anchor="middle">hosts (N)</text>')
        for tool in [t.id for t in TOOLS]:
            pts = [(sx(r["n"]), sy(r[key])) for r in sorted(summary, key=lambda r: r["n"])
                   if r["tool"] == tool and r[key] and r[key] > 0]
            if not pts:
                continue
            color = COLORS[tool]
            dash = (' stroke-dasharray="5,3"' if tool in ("rstfleet-fN", "ssh-curve25519", "ansible-f5",
                                                        "asyncssh") else "")
            if len(pts) > 1:
                d = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
                parts.append(f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
            for x, y in pts:
                parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>')
    ly = top + ph + 50
    for i, tool in enumerate(t for t in TOOLS if any(r["tool"] == t.id for r in summary)):
        x = left + (i % 5) * 210
        y = ly + (i // 5) * 18
        parts.append(f'<line x1="{x}" y1="{y}" x2="{x + 24}" y2="{y}" stroke="{COLORS[tool.id]}" stroke-width="3"/>')
        parts.append(f'<text x="{x + 30}" y="{y + 4}">{_esc(tool.label)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info() -> dict:
    mem_kb = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    ssh_v = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "rstfleet"],
                           capture_output=True, text=True).stdout.strip()
    nofile = __import__("resource").getrlimit(__import__("resource").RLIMIT_NOFILE)
    return {"nproc": os.cpu_count(), "cpu": cpu, "memory_gib": round(mem_kb / 2 ** 20, 1),
            "kernel": platform.release(), "os": _os_release(), "python": platform.python_version(),
            "host_python": subprocess.run(["/usr/bin/python3", "-V"], capture_output=True,
                                          text=True).stdout.strip(),
            "openssh": ssh_v, "paramiko": _version("paramiko"), "fabric": _version("fabric"),
            "invoke": _version("invoke"), "ansible_core": _version("ansible-core"),
            "parallel_ssh": _version("parallel-ssh"), "ssh2_python": _version("ssh2-python"),
            "gevent": _version("gevent"), "cryptography": _version("cryptography"),
            "rstfleet_commit": commit + ("+dirty" if dirty else ""), "nofile_limit": list(nofile)}


def _os_release() -> str:
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.platform()


def markdown_section(data: dict, chart_rel: str) -> str:
    m = data["machine"]
    lines = [f"Run {data['started_at']} — `{' '.join(data['argv'])}`, {data['duration_s'] / 60:.1f} min.",
             "",
             f"Machine: {m['nproc']} cores ({m['cpu']}), {m['memory_gib']} GiB, {m['os']}, kernel "
             f"{m['kernel']}; orchestrator Python {m['python']}, hosts' {m['host_python']}; "
             f"{m['openssh']}; paramiko {m['paramiko']}, fabric {m['fabric']}, invoke {m['invoke']}, "
             f"ansible-core {m['ansible_core']}, parallel-ssh {m['parallel_ssh']} (ssh2-python "
             f"{m['ssh2_python']}); rstfleet {m['rstfleet_commit']}. Lab hosts share the 2 cores.",
             ""] + [f"Sizes {', '.join(map(str, part['sizes']))} come from an earlier invocation of the "
                    f"same script ({part['started_at']}, rstfleet {part['rstfleet_commit']}); "
                    f"the run was split around other load on this shared machine." for part in
                    data.get("parts", [])] + [
             "", f"![overhead, CPU and memory against N]({chart_rel})", "",
             "Medians over `reps` runs (range = min..max overhead). CPU = user + sys of the tool's "
             "whole process tree; tree MB = peak sum of PSS over the tree; maxrss = largest single "
             "process.", "", table(data["summary"], "github"), "",
             "`other CPU s`: CPU the rest of the machine used during the run (the lab hosts' sshd and "
             "Python, plus anything else running on this shared machine): a noise indicator.", "",
             "Ratios rstfleet / peer (below 1: rstfleet is ahead), for the default sweep (counters "
             "only: the peers' job) and, where measured, `--trace` (more work than the peers do):", "",
             ratio_table(data["ratios"], "github"), ""]
    if data.get("skipped"):
        grouped = {}
        for s in data["skipped"]:
            grouped.setdefault((s["tool"], s["reason"]), []).append(str(s["n"]))
        lines += ["Not run: " + "; ".join(f"{tool} at N = {', '.join(ns)} ({reason})"
                                          for (tool, reason), ns in grouped.items()), ""]
    probe = data.get("probe", {})
    for variant, samples in probe.get("cost", {}).items():
        cpu, rss = samples.get("cpu_ms", {}), samples.get("max_rss_kb", {})
        if cpu:
            lines.append(f"Probe cost per host, `{variant}` ({cpu['count']} host runs): CPU "
                         f"median {cpu['median']:.1f} ms (p90 {cpu['p90']:.1f}, max {cpu['max']:.1f}); "
                         f"peak RSS median {rss['median'] / 1024:.1f} MB (max {rss['max'] / 1024:.1f}).")
    for variant, check in probe.get("disk", {}).items():
        opened = check.get("opened_for_writing") or []
        tracefs = sorted({p.rsplit("/", 1)[-1] for p in opened if "/tracing/instances/" in p})
        others = [p for p in opened if "/tracing/instances/" not in p]
        said = ", ".join(([f"its own tracefs instance's control files ({', '.join(tracefs)})"]
                          if tracefs else []) + others) or "nothing"
        written = check.get("bytes_written_to_disk_files")
        lines.append(f"Probe disk writes (`{variant}`, `strace -f` on one lab host): bytes written to "
                     f"files on disk: {sum(written.values()) if written else 0}; `ru_oublock` "
                     f"{check.get('ru_oublock')}; opened for writing: {said}.")
    return "\n".join(lines) + "\n"


def update_doc(doc: Path, section: str) -> bool:
    if not doc.exists():
        return False
    text = doc.read_text()
    if DOC_BEGIN not in text or DOC_END not in text:
        return False
    head, rest = text.split(DOC_BEGIN, 1)
    _, tail = rest.split(DOC_END, 1)
    doc.write_text(f"{head}{DOC_BEGIN}\n{section}{DOC_END}{tail}")
    return True


# ---------------------------------------------------------------------------------------------

def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,50,100,200", help="fleet sizes (default %(default)s)")
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--tools", default=",".join(t.id for t in TOOLS if t.default),
                        help="comma list of tool ids (default: all but the candidate asyncssh)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per tool at N <= 100")
    parser.add_argument("--repeats-large", type=int, default=1, help="runs per tool at N > 100")
    parser.add_argument("--pause", type=float, default=1.0,
                        help="seconds between runs (plus the lab-idle and quiet-machine waits)")
    parser.add_argument("--budget-min", type=float, default=25.0,
                        help="whole-run time budget; slow peers are dropped at large N to fit")
    parser.add_argument("--no-host-key-checking", dest="verify_host_keys", action="store_false",
                        help="let every tool skip host-key verification (default: verify)")
    parser.add_argument("--quiet-wait", type=float, default=10.0,
                        help="before each run, wait up to this many seconds for a nearly idle "
                             "second (the machine may be shared); 0 disables")
    parser.add_argument("--lab-name", default="bench")
    parser.add_argument("--out", default=str(HERE / "results.json"))
    parser.add_argument("--chart", default=str(ROOT / "docs" / "benchmarks.svg"))
    parser.add_argument("--doc", default=str(ROOT / "docs" / "benchmarks.md"),
                        help="markdown file whose bench-markers section is rewritten")
    parser.add_argument("--no-probe-check", dest="probe_check", action="store_false")
    parser.add_argument("--workdir", default=None, help="where per-run files go (default: a temp dir)")
    parser.add_argument("--keep-workdirs", action="store_true")
    parser.add_argument("--merge", metavar="RESULTS.json",
                        help="keep this earlier run's sizes that are not measured now (one file "
                             "for a run split in two, e.g. around other load on the machine)")
    parser.add_argument("--from-json", metavar="RESULTS.json",
                        help="measure nothing: re-summarize a saved run (table, chart, doc)")
    args = parser.parse_args(argv)
    if args.from_json:
        return rerender(Path(args.from_json), args)

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    wanted = [s.strip() for s in args.tools.split(",") if s.strip()]
    unknown = [w for w in wanted if w not in BY_ID]
    if unknown or not sizes:
        parser.error(f"unknown tool(s) {unknown}; known: {', '.join(BY_ID)}")
    tools = [t for t in TOOLS if t.id in wanted]
    if os.geteuid() != 0:
        parser.error("the lab needs root")
    missing = [t.id for t in tools if t.family in ("ansible",) and not (BIN / "ansible").exists()]
    missing += [t.id for t in tools if t.family == "pssh" and _version("parallel-ssh") is None]
    if missing:
        parser.error(f"{missing} need the bench extras: {sys.executable} -m pip install "
                     f"parallel-ssh ansible-core")

    from rstfleet_lab import fleet as labmod

    own_tmp = args.workdir is None
    args.workdir = args.workdir or tempfile.mkdtemp(prefix="rstfleet-bench-")
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    started, started_at = time.monotonic(), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    machine = machine_info()        # now: the rstfleet commit measured is the one at the start
    budget_end = started + args.budget_min * 60
    results, skipped, probe_samples, probe_disk, limits = [], [], {}, {}, []

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    print(f"fleet_bench: sizes {sizes}, window {args.window:g} s, tools {', '.join(t.id for t in tools)}",
          flush=True)
    interrupted = False
    try:
        for index, n in enumerate(sizes):
            with _suppress():
                labmod.down(args.lab_name)          # a lab left by an earlier, killed run
            t_up = time.monotonic()
            try:
                lab = labmod.up(n, args.lab_name)
            except Exception as exc:                 # where N stops: say why, keep what we have
                limits.append({"n": n, "reason": f"lab up failed: {exc}"})
                print(f"  N={n}: lab up failed: {exc}", flush=True)
                break
            try:
                print(f"N={n}: lab up in {time.monotonic() - t_up:.1f} s", flush=True)
                warm_up(lab, args)
                if args.probe_check and not probe_disk:
                    probe_disk = probe_disk_check(lab)
                run_size(lab, n, index, args, tools, results, probe_samples, budget_end, skipped,
                         sizes[index + 1:])
            finally:
                labmod.down(args.lab_name)
    except KeyboardInterrupt:
        interrupted = True
        print("fleet_bench: interrupted; writing what was measured", file=sys.stderr)
    finally:
        with _suppress():
            labmod.down(args.lab_name)
        if own_tmp and not args.keep_workdirs:
            shutil.rmtree(args.workdir, ignore_errors=True)

    summary = summarize(results)
    data = {"schema": "rstfleet.bench/1", "started_at": started_at, "argv": ["bench/fleet_bench.py"] + argv,
            "duration_s": round(time.monotonic() - started, 1), "interrupted": interrupted,
            "machine": machine,
            "settings": {"sizes": sizes, "window_s": args.window, "repeats": args.repeats,
                         "repeats_large": args.repeats_large, "pause_s": args.pause,
                         "host_key_checking": args.verify_host_keys,
                         "ansible": {"ANSIBLE_PIPELINING": True, "ANSIBLE_HOST_KEY_CHECKING": True,
                                     "module": "shell", "interpreter_discovery": "auto (default)"},
                         "sampling_command": peers.sample_shell(args.window),
                         "tool_notes": {t.id: t.note for t in tools if t.note}},
            "summary": summary, "ratios": ratios(summary), "skipped": skipped, "limits": limits,
            "probe": {"cost": probe_cost_summary(probe_samples),
                      "disk": probe_disk},
            "probe_samples": probe_samples,
            "runs": results}
    if args.merge:
        merge_earlier(data, json.loads(Path(args.merge).read_text()), sizes)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(data, indent=1) + "\n")
    publish(data, args)
    print(f"wrote {args.out}")
    return 130 if interrupted else 0


def merge_earlier(data: dict, old: dict, sizes: list[int]) -> None:
    """Add an earlier invocation's sizes (those not measured now) to this run's data."""
    kept = [r for r in old["runs"] if r["n"] not in sizes]
    if not kept:
        return
    data["runs"] = sorted(kept + data["runs"], key=lambda r: r["n"])
    data["skipped"] = [s for s in old.get("skipped", []) if s["n"] not in sizes] + data["skipped"]
    data.setdefault("parts", []).append({
        "started_at": old["started_at"], "argv": old["argv"], "duration_s": old["duration_s"],
        "sizes": sorted({r["n"] for r in kept}), "rstfleet_commit": old["machine"]["rstfleet_commit"],
        "interrupted": old.get("interrupted", False)})
    for variant, samples in (old.get("probe_samples") or {}).items():
        data["probe_samples"].setdefault(variant, []).extend(samples)
    data["summary"] = summarize(data["runs"])
    data["ratios"] = ratios(data["summary"])
    data["probe"]["cost"] = probe_cost_summary(data["probe_samples"])


def probe_cost_summary(probe_samples: dict) -> dict:
    return {variant: {"cpu_ms": distribution([1000 * s["cpu_s"] for s in samples
                                              if s["cpu_s"] is not None]),
                      "max_rss_kb": distribution([s["max_rss_kb"] for s in samples])}
            for variant, samples in probe_samples.items()}


def publish(data: dict, args) -> None:
    """Table on stdout, chart, and the doc's figures section."""
    print()
    print(table(data["summary"]))
    print()
    print(ratio_table(data["ratios"]))
    if not data["summary"]:
        return
    chart = Path(args.chart)
    chart.parent.mkdir(parents=True, exist_ok=True)
    chart.write_text(svg_chart(data["summary"], f"{data['settings']['window_s']:g} s window on N lab "
                                                f"hosts ({data['machine']['nproc']} cores shared with "
                                                f"the hosts)"))
    rel = os.path.relpath(chart, Path(args.doc).parent)
    if update_doc(Path(args.doc), markdown_section(data, rel)):
        print(f"\nupdated {args.doc}")
    print(f"wrote {chart}")


def rerender(path: Path, args) -> int:
    data = json.loads(path.read_text())
    data["summary"] = summarize(data["runs"])
    data["ratios"] = ratios(data["summary"])
    path.write_text(json.dumps(data, indent=1) + "\n")
    publish(data, args)
    return 0


class _suppress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return exc[0] is not None and issubclass(exc[0], Exception)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
