#!/usr/bin/env python3
"""One window for the fleet, on real lab hosts: rstfleet's default sweep against plain OpenSSH.

    flock /tmp/rstfleet-e2e.lock python bench/window_bench.py --sizes 500,1000 --out bench/window.json

For each size N: build a lab of N namespace hosts (time it; the neighbour-table room and bridges it
needed are recorded), then in one run on those hosts:
  * ``rstfleet sweep`` with default settings (forks 200, 10 s window): wall, orchestrator CPU of
    the process tree, peak RSS, hosts ok, and the fleet window (the report's fleet_window);
  * plain OpenSSH the way bench/fleet_bench.py runs it (``ssh HOST python3 -`` per host, a thread
    per host, default KEX and curve25519), the sampling stamped with its window's start and end,
    so its span is computed the same way (sweep/window.py);
  * the cost of one held session in this process (rstfleet's transports, as the pool holds them):
    descriptors, threads and RSS per session connected, and RSS per session while probes run;
  * the tracepoint's cost on a shared kernel: k probes started at once directly in k namespaces
    (no SSH) with and without ``--trace``, k = 1, 10, 100.
Tool runs reuse fleet_bench.py's measuring (child subreaper, PSS sampler, quiet-machine wait).
Writes JSON and prints Markdown tables; docs/benchmarks.md's window section is written by hand
from them. The lab is always taken down.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import fleet_bench  # noqa: E402  (measuring a child tree, the lab-idle waits)

from rstfleet.sweep.window import fleet_window  # noqa: E402

def _this_rstfleet(ctx):
    """The `rstfleet` entry point of the venv, importing this checkout (not wherever it was installed from)."""
    argv, env = fleet_bench._rstfleet()(ctx)
    return argv, dict(env, PYTHONPATH=str(HERE.parent))


TOOLS = {
    "rstfleet": _this_rstfleet,
    "rstfleet-shell": lambda ctx: (lambda argv, env: (argv + ["--host-probe", "shell"], env))(*_this_rstfleet(ctx)),
    "rstfleet-asyncssh": lambda ctx: (lambda argv, env: (argv + ["--ssh-engine", "asyncssh"], env))(*_this_rstfleet(ctx)),
    "ssh": fleet_bench._peer("ssh", stamps=True),
    "ssh-curve25519": fleet_bench._peer("ssh", kex="curve25519-sha256", stamps=True),
}


def peer_windows(stdout: str) -> list[dict]:
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            outcome = json.loads(line)
            return [{"window": {"started_at": s, "measured_s": e - s}} for s, e in outcome.get("windows", [])]
    return []


def run_tool(lab, tool: str, window: float, args) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"win-{tool}-"))
    ctx = fleet_bench.Context(lab, len(lab.hosts), window, workdir, verify_host_keys=True)
    argv, env = TOOLS[tool](ctx)
    idle = fleet_bench.wait_lab_idle(lab)
    time.sleep(args.pause)
    quiet = fleet_bench.wait_machine_quiet(args.quiet_wait)
    spawned = time.time()
    row = fleet_bench.run_measured(argv, env, workdir, timeout=window + 600)
    if tool.startswith("rstfleet"):
        ok = fleet_bench._rstfleet_ok(ctx, row["stdout"], row["exit_code"])
        try:
            report = json.loads((workdir / "sweep.json").read_text())
            span = report.get("fleet_window") or {}
            failures = Counter(f"{h['status']}: {h['reason'][:120]}" for h in report["hosts"] if h["status"] != "ok")
            row["failures"] = failures.most_common(3)
            costs = [h["probe"]["cost"]["cpu_s"] for h in report["hosts"] if (h.get("probe") or {}).get("cost")]
            row["probe_cpu_ms_median"] = round(1000 * statistics.median(costs), 1) if costs else None
        except (OSError, ValueError):
            span = {}
    else:
        ok = fleet_bench._peer_ok(ctx, row["stdout"], row["exit_code"])
        span = fleet_window(peer_windows(row["stdout"])).as_dict()
    n = len(lab.hosts)
    if span.get("earliest_start"):      # the timeline, from the tool's spawn (this machine's clock)
        row["first_window_after_s"] = round(span["earliest_start"] - spawned, 2)
        row["last_window_after_s"] = round(span["latest_start"] - spawned, 2)
        row["tail_s"] = round(spawned + row["wall_s"] - span["latest_end"], 2)
    row.update(tool=tool, n=n, ok=ok, overhead_s=round(row["wall_s"] - window, 2),
               cpu_ms_per_host=round(1000 * row["cpu_s"] / n, 1), fleet_window=span,
               idle_wait_s=round(idle, 1), quiet_wait_s=quiet)
    row.pop("stdout", None)
    return row


def session_cost(lab, probe_window: float = 2.0, forks: int = 100) -> dict:
    """Hold every lab host's session in this process as the pool does; RSS, fds and threads."""
    from rstfleet.inventory import load_inventory
    from rstfleet.probe import probe_argv, probe_script_for
    from rstfleet.transport import SSHSettings, transport_factory

    def rss_kb() -> int:
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    hosts = list(load_inventory(str(lab.inventory_path)).hosts.values())
    make = transport_factory(SSHSettings())
    rss0, fds0, threads0 = rss_kb(), len(os.listdir("/proc/self/fd")), threading.active_count()
    slots, transports = threading.Semaphore(forks), [make(h) for h in hosts]

    def reach(t):
        with slots:
            t.connect(time.monotonic() + 40)
    workers = [threading.Thread(target=reach, args=(t,)) for t in transports]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    rss1, fds1, threads1 = rss_kb(), len(os.listdir("/proc/self/fd")), threading.active_count()
    peak, done = [rss1], threading.Event()

    def sample():
        while not done.wait(0.2):
            peak.append(rss_kb())
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    script = probe_script_for(())
    ok = []
    runners = [threading.Thread(target=lambda t=t: ok.append(t.run(probe_argv(probe_window, []), script,
                                                                    time.monotonic() + 120).exit_code == 0))
               for t in transports]
    for r in runners:
        r.start()
    threads2 = threading.active_count()
    for r in runners:
        r.join()
    done.set()
    for t in transports:
        t.close()
    n = len(hosts)
    return {"n": n, "connected_rss_kb_per_session": round((rss1 - rss0) / n, 1),
            "fds_per_session": round((fds1 - fds0) / n, 2),
            "threads_per_session": round((threads2 - threads0) / n, 2),
            "threads_per_connected_session": round((threads1 - threads0) / n, 2),
            "probing_rss_kb_per_session": round((max(peak) - rss0) / n, 1), "probes_ok": sum(ok)}


def trace_cost(lab, ks: list[int]) -> list[dict]:
    """k probes (window 0) started at once in k namespaces, with and without --trace."""
    from rstfleet.probe import probe_script_for

    rows = []
    for k in ks:
        for trace in (False, True):
            options = ["--trace"] if trace else []
            script = probe_script_for(tuple(options))
            started = time.monotonic()
            procs = [(time.monotonic(), subprocess.Popen(
                ["ip", "netns", "exec", h.namespace, "/usr/bin/python3", "-I", "-B", "-", "--window", "0",
                 *options], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL))
                     for h in lab.hosts[:k]]
            for _, p in procs:
                p.stdin.write(script)
                p.stdin.close()
            walls, traced = [], 0
            for began, p in procs:
                out = p.stdout.read()
                p.wait()
                walls.append(time.monotonic() - began)
                try:
                    traced += bool(json.loads(out).get("trace", {}).get("available"))
                except ValueError:
                    pass
            rows.append({"k": k, "trace": trace, "all_done_s": round(time.monotonic() - started, 3),
                         "probe_wall_median_s": round(statistics.median(walls), 3),
                         "probe_wall_max_s": round(max(walls), 3), "traced": traced})
            time.sleep(1.0)
    return rows


class PhaseClock:
    """Wall time of the lab's build steps (rstfleet_lab.fleet), summed over hosts where per host."""

    STEPS = ("_keygen", "_build_network", "_start_sshd", "_wait_ready")

    def __init__(self):
        from rstfleet_lab import fleet
        self.fleet, self.spent, self.lock = fleet, {}, threading.Lock()
        self.saved = {name: getattr(fleet, name) for name in self.STEPS}
        for name, function in self.saved.items():
            setattr(fleet, name, self.timed(name, function))

    def timed(self, name, function):
        def wrapper(*a, **kw):
            began = time.monotonic()
            try:
                return function(*a, **kw)
            finally:
                with self.lock:
                    self.spent[name] = round(self.spent.get(name, 0.0) + time.monotonic() - began, 2)
        return wrapper

    def restore(self) -> dict:
        for name, function in self.saved.items():
            setattr(self.fleet, name, function)
        return self.spent


def markdown(data: dict) -> str:
    lines = ["| N | tool | wall s | overhead s | CPU ms/host | maxrss MB | tree MB | ok | window span s | "
             "starts apart s | one instant in every window |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in data["runs"]:
        w = row["fleet_window"] or {}
        lines.append(f"| {row['n']} | {row['tool']} | {row['wall_s']:.2f} | {row['overhead_s']:+.2f} | "
                     f"{row['cpu_ms_per_host']} | {row['maxrss_kb'] / 1024:.0f} | {row['tree_pss_kb'] / 1024:.0f} | "
                     f"{row['ok']}/{row['n']} | {w.get('span_s')} | {w.get('start_spread_s')} | "
                     f"{'yes' if w.get('overlap') else 'no'} |")
    lines += ["", "| N | lab up s | lab down s | neighbour limits set | bridges |", "|---|---|---|---|---|"]
    for lab in data["labs"]:
        lines.append(f"| {lab['n']} | {lab['up_s']} | {lab['down_s']} | {lab['neighbour_limits']} | {lab['bridges']} |")
    if data.get("sessions"):
        lines += ["", "Per held session: " + json.dumps(data["sessions"])]
    if data.get("trace"):
        lines += ["", "| k probes at once | --trace | all done s | probe wall median s | max s |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['k']} | {'yes' if r['trace'] else 'no'} | {r['all_done_s']} | "
                  f"{r['probe_wall_median_s']} | {r['probe_wall_max_s']} |" for r in data["trace"]]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="500")
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--tools", default="rstfleet,ssh-curve25519,ssh,rstfleet")
    parser.add_argument("--trace-k", default="1,10,100", help="tracefs cost at these k (first size only)")
    parser.add_argument("--session-cost", action="store_true", help="measure per-session cost (first size)")
    parser.add_argument("--pause", type=float, default=2.0)
    parser.add_argument("--quiet-wait", type=float, default=10.0)
    parser.add_argument("--lab-name", default="win")
    parser.add_argument("--out", default=str(HERE / "window.json"))
    args = parser.parse_args(argv)
    from rstfleet_lab import down, up
    from rstfleet_lab import scale

    data = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "argv": argv, "runs": [], "labs": []}
    for i, n in enumerate(int(s) for s in args.sizes.split(",")):
        before = scale.read_thresholds()
        clock = PhaseClock()
        began = time.monotonic()
        try:
            lab = up(n, args.lab_name)
        finally:
            phases = clock.restore()
        up_s = round(time.monotonic() - began, 1)
        record = json.loads((lab.state_dir / "state.json").read_text()).get(scale.RECORD_KEY)
        entry = {"n": n, "up_s": up_s, "neighbour_limits": record and record["set"],
                 "bridges": scale.bridge_names(lab.index, n), "up_phases_s": phases}
        print(json.dumps(entry), flush=True)
        try:
            fleet_bench.warm_up(lab, argparse.Namespace(workdir=None, verify_host_keys=True))
            for tool in args.tools.split(","):
                row = run_tool(lab, tool, args.window, args)
                data["runs"].append(row)
                print(json.dumps({k: row.get(k) for k in ("n", "tool", "wall_s", "cpu_ms_per_host", "maxrss_kb", "first_window_after_s", "last_window_after_s", "tail_s", "failures",
                                                      "ok", "fleet_window")}), flush=True)
            if i == 0 and args.session_cost:
                data["sessions"] = session_cost(lab)
                print(json.dumps(data["sessions"]), flush=True)
            if i == 0 and args.trace_k:
                data["trace"] = trace_cost(lab, [int(k) for k in args.trace_k.split(",") if int(k) <= n])
                print(json.dumps(data["trace"]), flush=True)
        finally:
            began = time.monotonic()
            down(args.lab_name)
            entry["down_s"] = round(time.monotonic() - began, 1)
            entry["limits_restored"] = scale.read_thresholds() == before
            data["labs"].append(entry)
        Path(args.out).write_text(json.dumps(data, indent=1))
    print(markdown(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
