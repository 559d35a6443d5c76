#!/usr/bin/env python3
"""The engine's curve on a simulated fleet: 1k, 2k, 5k, 10k hosts in one window, and the peers.

    python bench/simfleet_bench.py --sizes 1000,2000,5000,10000 --tools rstfleet,rstfleet-asyncssh \\
        --peers-at 1000,2000 --window 10 --out bench/simfleet-results.json

For each size N a simulated fleet of N hosts comes up (rstfleet_lab/simfleet.py: real SSH on
127.1.x.y:2222, host keys verified, 1 % of hosts spiking, none broken), then each tool sweeps it,
one after the other:

  rstfleet            ``rstfleet sweep`` with the defaults (--forks 200, --ssh-engine auto; --forks-all: -f N)
  rstfleet-asyncssh   the same with ``--ssh-engine asyncssh`` (rstfleet/transport/asyncssh_engine.py)
  rstfleet-paramiko   the same with ``--ssh-engine paramiko`` (the default, auto, picks asyncssh from 500 hosts)
  fabric, pssh        bench/peers.py: Fabric ThreadingGroup, parallel-ssh, at the --peers-at sizes

Measured per run: wall (spawn to exit) and wall − window, the orchestrator's CPU (rusage of the
child) per host, its peak RSS (VmRSS sampled every 0.25 s) per host, peak thread count, hosts ok and
the failures by reason, the simulator's CPU over the same run; for rstfleet, from its JSON, whether
every host's window overlapped a common instant (one window) and the fleet window's span.
Printed as a table with each peer's figures as ratios to rstfleet's at the same size.

Every child gets its soft RLIMIT_NOFILE raised to the hard limit (20,000 here: one socket per
host); --pid-max raises kernel.pid_max for the run (a thread
per host needs more than 32,768 pids at 10,000) and restores it. No timed assertions: figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from tabulate import tabulate

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from rstfleet_lab.simfleet import simfleet_context  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
FORKS_ALL = False          # --forks-all
PID_MAX = Path("/proc/sys/kernel/pid_max")


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _status(pid: int) -> tuple[int, int]:
    """(VmRSS KiB, threads) of a live process."""
    rss = threads = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    except OSError:
        pass
    return rss, threads


def _raise_nofile() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def run_measured(argv: list[str], timeout_s: float, sim_pids: list[int]) -> dict:
    """Spawn, sample RSS and threads, reap with rusage: the orchestrator's own figures."""
    sim_before = sum(_cpu_s(p) for p in sim_pids)
    started = time.monotonic()
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(ROOT),
                             preexec_fn=_raise_nofile, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    peak_rss = peak_threads = peak_fds = 0
    out_file, err_file = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    import threading
    pumps = [threading.Thread(target=lambda s=s, f=f: f.write(s.read()), daemon=True)
             for s, f in ((child.stdout, out_file), (child.stderr, err_file))]
    for pump in pumps:
        pump.start()
    status, usage = None, None
    while status is None:
        pid, wait_status, rusage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            status, usage = os.waitstatus_to_exitcode(wait_status), rusage
            break
        rss, threads = _status(child.pid)
        peak_rss, peak_threads = max(peak_rss, rss), max(peak_threads, threads)
        peak_fds = max(peak_fds, _fds(child.pid))
        if time.monotonic() - started > timeout_s:
            child.kill()
        time.sleep(0.25)
    wall = time.monotonic() - started
    child.returncode = status
    for pump in pumps:
        pump.join(5)
    out_file.seek(0)
    err_file.seek(0)
    return {"wall_s": wall, "exit": status, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_kb": max(peak_rss, usage.ru_maxrss), "peak_threads": peak_threads,
            "peak_fds": peak_fds, "sim_cpu_s": sum(_cpu_s(p) for p in sim_pids) - sim_before,
            "stdout": out_file.read().decode("utf-8", "replace"),
            "stderr": err_file.read().decode("utf-8", "replace")[-2000:]}


def windows_of(report: dict) -> dict:
    """One window? Every ok host's [start, end] overlaps a common instant; and the span."""
    spans = [(p["window"]["started_at"], p["window"]["started_at"] + p["window"]["measured_s"])
             for p in (h["probe"] for h in report["hosts"]) if p and p["window"].get("started_at")]
    if not spans:
        return {"one_window": False, "fleet_window_span_s": None}
    latest_start, earliest_end = max(s for s, _ in spans), min(e for _, e in spans)
    return {"one_window": latest_start < earliest_end,
            "fleet_window_span_s": round(max(e for _, e in spans) - min(s for s, _ in spans), 2),
            "start_spread_s": round(latest_start - min(s for s, _ in spans), 2)}


def rstfleet_run(fleet, n: int, window: float, workdir: Path, engine: str | None,
                 extra: list[str]) -> tuple[list[str], callable]:
    out = workdir / f"sweep-{engine or 'auto'}-{n}.json"
    argv = [sys.executable, "-m", "rstfleet", "sweep", "-i", str(fleet.inventory_path), "--window",
            repr(window), "--format", "json", "-o", str(out), "--fail-on", "never"]
    if FORKS_ALL:              # the old pool's way to one window: every host's handshake at once
        argv += ["-f", str(n)]
    if engine:
        argv += ["--ssh-engine", engine]
    argv += extra

    def outcome(measured: dict) -> dict:
        try:
            report = json.loads(out.read_text())
        except (OSError, ValueError):
            return {"ok": 0, "failures": {"no report": n}}
        statuses = Counter(h["status"] for h in report["hosts"])
        failures = Counter(f"{h['status']}: {h['reason'][:60]}" for h in report["hosts"] if h["status"] != "ok")
        return {"ok": statuses.get("ok", 0), "failures": dict(failures.most_common(5)), **windows_of(report)}
    return argv, outcome


def peer_run(fleet, tool: str, window: float, workdir: Path) -> tuple[list[str], callable]:
    spec = {"hosts": [h.address for h in fleet.hosts], "port": fleet.hosts[0].port, "user": "root",
            "key": str(fleet.key_path), "known_hosts": str(fleet.known_hosts_path), "window": window,
            "verify_host_keys": True, "timeout": 10.0}
    path = workdir / f"spec-{tool}.json"
    path.write_text(json.dumps(spec))
    argv = [sys.executable, str(HERE / "peers.py"), tool, str(path)]

    def outcome(measured: dict) -> dict:
        try:
            result = json.loads(measured["stdout"].strip().splitlines()[-1])
        except (ValueError, IndexError):
            return {"ok": 0, "failures": {"no output: " + measured["stderr"][-120:]: len(fleet.hosts)}}
        reasons = Counter(reason[:60] for reason in result["failed"].values())
        return {"ok": result["ok"], "failures": dict(reasons.most_common(5))}
    return argv, outcome


def bench(sizes: list[int], tools: list[str], peers_at: set[int], window: float, pause_s: float,
          sweep_args: list[str]) -> list[dict]:
    rows = []
    for n in sizes:
        scenario = {"hosts": n, "seed": n, "spiking": {"share": 0.01}}
        with simfleet_context(scenario, lifetime_s=min(3600.0, 300.0 + 60.0 * len(tools) * (1 + n / 2000))) as fleet, \
                tempfile.TemporaryDirectory(prefix="rstfleet-simbench-") as tmp:
            for tool in tools:
                if tool in ("fabric", "pssh") and n not in peers_at:
                    continue
                if tool.startswith("rstfleet"):
                    argv, outcome = rstfleet_run(fleet, n, window, Path(tmp), tool.partition("-")[2] or None,
                                                sweep_args)
                else:
                    argv, outcome = peer_run(fleet, tool, window, Path(tmp))
                time.sleep(pause_s)
                load_before = round(os.getloadavg()[0], 2)
                measured = run_measured(argv, window + 600.0, fleet.pids())
                row = {"tool": tool, "hosts": n, "window_s": window, "sweep_args": " ".join(sweep_args),
                       "overhead_s": round(measured["wall_s"] - window, 2),
                       "wall_s": round(measured["wall_s"], 2),
                       "cpu_ms_per_host": round(1000 * measured["cpu_s"] / n, 2),
                       "peak_rss_kb_per_host": round(measured["peak_rss_kb"] / n, 1),
                       "peak_rss_mb": round(measured["peak_rss_kb"] / 1024, 1),
                       "peak_threads": measured["peak_threads"], "peak_fds": measured["peak_fds"],
                       "sim_cpu_ms_per_host": round(1000 * measured["sim_cpu_s"] / n, 2),
                       "exit": measured["exit"], "load_1m_before": load_before, **outcome(measured)}
                if not row["ok"]:
                    row["stderr"] = measured["stderr"][-400:]
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def ratios(rows: list[dict]) -> list[dict]:
    """Each peer against rstfleet (the default engine) at the same size: >1 means the peer costs more."""
    out = []
    for row in rows:
        base = next((r for r in rows if r["hosts"] == row["hosts"] and r["tool"] == "rstfleet"), None)
        if base is None or row["tool"] == "rstfleet":
            continue
        out.append({"tool": row["tool"], "hosts": row["hosts"],
                    "overhead ×": round(row["overhead_s"] / base["overhead_s"], 2) if base["overhead_s"] > 0 else None,
                    "cpu/host ×": round(row["cpu_ms_per_host"] / base["cpu_ms_per_host"], 2),
                    "rss/host ×": round(row["peak_rss_kb_per_host"] / base["peak_rss_kb_per_host"], 2),
                    "ok": f"{row['ok']}/{row['hosts']}"})
    return out


def table(rows: list[dict]) -> str:
    columns = ["tool", "hosts", "ok", "overhead_s", "cpu_ms_per_host", "peak_rss_kb_per_host", "peak_threads",
               "one_window", "fleet_window_span_s", "sim_cpu_ms_per_host", "load_1m_before"]
    return tabulate([[r.get(c, "") for c in columns] for r in rows], headers=columns)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,2000,5000,10000")
    parser.add_argument("--tools", default="rstfleet,rstfleet-asyncssh,fabric,pssh")
    parser.add_argument("--peers-at", default="1000,2000")
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--pause", type=float, default=5.0, help="seconds between runs")
    parser.add_argument("--pid-max", type=int, default=0, help="raise kernel.pid_max for the run (restored)")
    parser.add_argument("--out", type=Path, default=HERE / "simfleet-results.json")
    parser.add_argument("--forks-all", action="store_true",
                        help="pass -f N (every handshake at once; before --forks bounded only handshakes "
                             "this was how the pool held one window); default: rstfleet's default --forks")
    parser.add_argument("--sweep-args", default="", help="more rstfleet sweep options, e.g. '--connect-timeout 60'")
    parser.add_argument("--merge", action="store_true", help="keep --out's other rows (same tool and size: replaced)")
    args = parser.parse_args()
    global FORKS_ALL
    FORKS_ALL = args.forks_all
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # so the finally below restores pid_max
    before = PID_MAX.read_text().strip()
    try:
        if args.pid_max:
            PID_MAX.write_text(str(args.pid_max))
        rows = bench([int(s) for s in args.sizes.split(",")], args.tools.split(","),
                     {int(s) for s in args.peers_at.split(",") if s}, args.window, args.pause,
                     args.sweep_args.split())
    finally:
        PID_MAX.write_text(before)
    if args.merge and args.out.exists():
        fresh = {(r["tool"], r["hosts"]) for r in rows}
        kept = [r for r in json.loads(args.out.read_text())["rows"] if (r["tool"], r["hosts"]) not in fresh]
        rows = sorted(kept + rows, key=lambda r: (r["hosts"], r["tool"]))
    print(table(rows))
    print()
    print(tabulate(ratios(rows), headers="keys"))
    args.out.write_text(json.dumps({"machine": {"cores": os.cpu_count()}, "rows": rows,
                                    "ratios": ratios(rows)}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
