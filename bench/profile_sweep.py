#!/usr/bin/env python3
"""Where rstfleet's time and CPU go, at one fleet size (default 100) on a fresh lab.

    python bench/profile_sweep.py --n 100 --out bench/profile.json [--flamegraph docs/profile-100.svg]

1. CLI start-up: CPU and wall of `rstfleet --version`, and the heaviest imports (-X importtime).
2. One connection, phase by phase (sequential, paramiko as rstfleet uses it): TCP connect, banner +
   key exchange (which KEX was negotiated, and what each KEX paramiko offers costs), host-key check
   (known_hosts of N lines parsed), private-key load, ed25519 auth, channel open, exec of `true`,
   `python3 -I -B -c pass` and the probe with a 0 s window (Python start on the host).
3. The sweep's timeline: when each host's probe window started and ended (the probe's own clock,
   which is this machine's) against the CLI's spawn and exit: start-up, ramp, tail.
4. Wake-ups and CPU during the window: context switches and CPU of the sweep process sampled
   between t = 4 s and t = 9 s of the 10 s window.
5. py-spy (sampling, all threads, on-CPU only) over a whole sweep: CPU by phase and by function.
6. perf stat (software events) over a whole sweep.
Everything runs one at a time on the same lab; the lab is always taken down.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def run_wait4(argv, **kw):
    """Run argv to completion; (wall s, CPU s of its tree, stdout, stderr)."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    out, err = proc.communicate(timeout=600)
    wall = time.perf_counter() - started
    usage = proc_rusage.pop(proc.pid, None)
    return wall, usage, out.decode(errors="replace"), err.decode(errors="replace")


proc_rusage: dict = {}


def cpu_of(argv, repeats=5, **kw):
    """Median (wall, CPU) of running argv; CPU from wait4 of the child tree."""
    walls, cpus = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
        _, _, usage = os.wait4(proc.pid, 0)
        proc.returncode = 0
        walls.append(time.perf_counter() - started)
        cpus.append(usage.ru_utime + usage.ru_stime)
    return {"wall_s": median(walls), "cpu_s": median(cpus)}


# ---------------------------------------------------------------------------------------------
# 1. CLI start-up
# ---------------------------------------------------------------------------------------------

def startup(env) -> dict:
    result = {"rstfleet --version": cpu_of([str(BIN / "rstfleet"), "--version"], env=env),
              "python -c pass": cpu_of([sys.executable, "-c", "pass"], env=env),
              "import paramiko": cpu_of([sys.executable, "-c", "import paramiko"], env=env),
              "import rstfleet.cli": cpu_of([sys.executable, "-c", "import rstfleet.cli"], env=env),
              "import rstfleet.transport.ssh": cpu_of(
                  [sys.executable, "-c", "import rstfleet.cli, rstfleet.transport.ssh"], env=env)}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c",
                           "import rstfleet.cli, rstfleet.transport.ssh"],
                          capture_output=True, text=True, env=env)
    rows = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if m:
            rows.append((int(m.group(2)), int(m.group(1)), len(m.group(3)) // 2, m.group(4)))
    top = [r for r in rows if r[2] <= 1]
    top.sort(reverse=True)
    result["importtime_top"] = [{"module": m, "cumulative_ms": c / 1000, "self_ms": s / 1000}
                                for c, s, _, m in top[:15]]
    self_by_pkg = defaultdict(int)
    for c, s, _, m in rows:
        self_by_pkg[m.split(".")[0]] += s
    result["importtime_self_by_package_ms"] = dict(sorted(
        ((k, v / 1000) for k, v in self_by_pkg.items()), key=lambda kv: -kv[1])[:15])
    return result


# ---------------------------------------------------------------------------------------------
# 2. One connection, phase by phase
# ---------------------------------------------------------------------------------------------

PARAMIKO_KEX = ["curve25519-sha256@libssh.org", "ecdh-sha2-nistp256", "ecdh-sha2-nistp384",
                "diffie-hellman-group14-sha256", "diffie-hellman-group16-sha512"]


class _KexLog(logging.Handler):
    """paramiko logs the agreed algorithms at DEBUG ("Kex: …", "Cipher: …"): keep the last ones."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.agreed = {}

    def emit(self, record):
        text = record.getMessage()
        for key in ("Kex", "HostKey", "Cipher", "MAC"):
            if text.startswith(key + ": "):
                self.agreed[key.lower()] = text.split(": ", 1)[1]


KEX_LOG = _KexLog()


def one_connection(address, key_path, known_hosts, kex=None, command=None, stdin=b"",
                   nodelay=False) -> dict:
    import paramiko
    if KEX_LOG not in logging.getLogger("paramiko.transport").handlers:
        logging.getLogger("paramiko.transport").addHandler(KEX_LOG)
        logging.getLogger("paramiko.transport").setLevel(logging.DEBUG)
    marks, cpu0, wall0 = {}, time.process_time(), time.perf_counter()
    last = [cpu0, wall0]

    def mark(name):
        c, w = time.process_time(), time.perf_counter()
        marks[name] = {"cpu_ms": 1000 * (c - last[0]), "wall_ms": 1000 * (w - last[1])}
        last[:] = [c, w]

    sock = socket.create_connection((address, 22), timeout=10)
    if nodelay:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    mark("tcp_connect")
    disabled = {"kex": [k for k in paramiko.Transport._preferred_kex if k != kex]} if kex else None
    transport = paramiko.Transport(sock, disabled_algorithms=disabled)
    transport.start_client(timeout=10)
    mark("banner_and_kex")
    hostkeys = paramiko.HostKeys(known_hosts)
    server_key = transport.get_remote_server_key()
    assert hostkeys.check(address, server_key), "host key mismatch"
    mark("host_key_check")
    pkey = paramiko.Ed25519Key.from_private_key_file(key_path)
    mark("private_key_load")
    transport.auth_publickey("root", pkey)
    mark("auth_ed25519")
    negotiated = dict(KEX_LOG.agreed)
    if command:
        channel = transport.open_session(timeout=10)
        mark("channel_open")
        channel.exec_command(command)
        if stdin:
            channel.sendall(stdin)
        channel.shutdown_write()
        out = b""
        while True:
            chunk = channel.recv(65536)
            if not chunk:
                break
            out += chunk
        status = channel.recv_exit_status()
        mark("exec_to_exit")
        negotiated["exit_status"] = status
    transport.close()
    mark("close")
    return {"phases": marks, "negotiated": negotiated}


def phase_study(lab, repeats: int) -> dict:
    import paramiko
    from rstfleet.probe import probe_argv, probe_script
    hosts = [h.address for h in lab.hosts]
    key, known = str(lab.key_path), str(lab.known_hosts_path)
    out = {"known_hosts_lines": len(lab.hosts)}

    def study(kex=None, command=None, stdin=b"", nodelay=False):
        runs = [one_connection(hosts[i % len(hosts)], key, known, kex, command, stdin, nodelay)
                for i in range(repeats)]
        phases = {}
        for name in runs[0]["phases"]:
            phases[name] = {k: round(median([r["phases"][name][k] for r in runs]), 2)
                            for k in ("cpu_ms", "wall_ms")}
        return {"phases": phases, "negotiated": runs[0]["negotiated"],
                "total_cpu_ms": round(sum(p["cpu_ms"] for p in phases.values()), 1),
                "total_wall_ms": round(sum(p["wall_ms"] for p in phases.values()), 1)}

    probe_cmd = " ".join(probe_argv(0.0, []))
    out["default"] = {
        "true": study(command="true"),
        "python3 -I -B -c pass": study(command="python3 -I -B -c pass"),
        "probe --window 0": study(command=probe_cmd, stdin=probe_script()),
        "probe --window 0 --trace": study(command=" ".join(probe_argv(0.0, ["--trace"])),
                                          stdin=probe_script()),
        "probe --window 0, TCP_NODELAY": study(command=probe_cmd, stdin=probe_script(), nodelay=True),
    }
    out["kex"] = {}
    for kex in PARAMIKO_KEX:
        try:
            out["kex"][kex] = study(kex=kex)
        except Exception as exc:  # the server may not offer it
            out["kex"][kex] = {"error": repr(exc)[:200]}
    # As rstfleet does it: SSHClient.connect with key_filename (tries RSA, ECDSA, then Ed25519 on
    # the file), known_hosts loaded per client; versus a pre-loaded key and host-key table.
    import paramiko as pm

    def client_connect(preloaded):
        pkey = pm.Ed25519Key.from_private_key_file(key) if preloaded else None
        shared = pm.HostKeys(known) if preloaded else None
        cpus, walls = [], []
        for i in range(repeats):
            c0, w0 = time.process_time(), time.perf_counter()
            client = pm.SSHClient()
            if preloaded:
                client._host_keys = shared
            else:
                client.load_host_keys(known)
            client.set_missing_host_key_policy(pm.RejectPolicy())
            client.connect(hosts[i % len(hosts)], username="root",
                           **({"pkey": pkey} if preloaded else {"key_filename": key}),
                           look_for_keys=False, allow_agent=not preloaded, timeout=10)
            client.close()
            cpus.append(1000 * (time.process_time() - c0))
            walls.append(1000 * (time.perf_counter() - w0))
        return {"cpu_ms": round(median(cpus), 2), "wall_ms": round(median(walls), 2)}
    out["sshclient_connect"] = {"as_rstfleet (key_filename, known_hosts per client)": client_connect(False),
                                "preloaded key + shared HostKeys": client_connect(True)}
    # known_hosts parse cost against its length
    with tempfile.TemporaryDirectory() as tmp:
        lines = Path(known).read_text().splitlines()
        for count in (100, 200, 1000):
            path = Path(tmp) / f"kh{count}"
            path.write_text("\n".join((lines * (count // len(lines) + 1))[:count]) + "\n")
            c0 = time.process_time()
            for _ in range(5):
                pm.HostKeys(str(path))
            out.setdefault("known_hosts_parse_ms", {})[count] = round(
                1000 * (time.process_time() - c0) / 5, 2)
    return out


def trace_study(lab) -> dict:
    """The probe's tracepoint tier on a host: which kernel calls take the time (strace -T), and
    whether they serialize when many probes share one kernel (the lab: every host is a namespace
    of the same kernel; a real fleet has one kernel per host)."""
    from rstfleet.probe import probe_argv, probe_script
    script = probe_script()
    out = {}
    if shutil.which("strace"):
        with tempfile.TemporaryDirectory() as tmp:
            log = Path(tmp) / "st"
            subprocess.run(["ip", "netns", "exec", lab.hosts[0].namespace, "strace", "-f", "-T", "-qq",
                            "-e", "trace=mkdir,rmdir,mount,openat,write", "-o", str(log),
                            "/usr/bin/python3"] + probe_argv(0.0, ["--trace"])[1:],
                           input=script, capture_output=True, timeout=60)
            path_of_fd, slow = {}, []
            for line in log.read_text().splitlines():
                m = re.search(r'openat\(AT_FDCWD, "([^"]+)".* = (\d+) <', line)
                if m:
                    path_of_fd[m.group(2)] = m.group(1).rsplit("/", 1)[-1]
                m = re.search(r"(mkdir|rmdir|mount|write)\((\d+)?.*<([\d.]+)>$", line)
                if m and float(m.group(3)) >= 0.001:
                    what = m.group(1) + (f"({path_of_fd.get(m.group(2), m.group(2))})"
                                         if m.group(1) == "write" else "")
                    slow.append({"call": what, "ms": round(1000 * float(m.group(3)), 1)})
            out["slow_calls_one_probe"] = slow
    for k in (k for k in (1, 10, 20) if k <= len(lab.hosts)):
        hosts = lab.hosts[:k]
        for label, extra in (("trace", ["--trace"]), ("no-trace", [])):
            started = time.perf_counter()
            procs = [subprocess.Popen(["ip", "netns", "exec", h.namespace, "/usr/bin/python3"]
                                      + probe_argv(0.0, extra)[1:], stdin=subprocess.PIPE,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                     for h in hosts]
            for p in procs:
                p.stdin.write(script)
                p.stdin.close()
            for p in procs:
                p.wait(timeout=120)
            out.setdefault("concurrent_probes_window0_wall_s", {}).setdefault(str(k), {})[label] = round(
                time.perf_counter() - started, 3)
            time.sleep(0.5)
    return out


# ---------------------------------------------------------------------------------------------
# 3 + 4. Timeline and wake-ups of one sweep
# ---------------------------------------------------------------------------------------------

def task_counters(pid: int) -> tuple[int, int, float]:
    """(threads, voluntary + involuntary context switches summed over threads, CPU s)."""
    switches, threads = 0, 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                text = Path(f"/proc/{pid}/task/{tid}/status").read_text()
            except OSError:
                continue
            threads += 1
            for key in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
                m = re.search(rf"^{key}:\s+(\d+)", text, re.M)
                switches += int(m.group(1)) if m else 0
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return threads, switches, 0.0
    return threads, switches, cpu


def sweep_timeline(lab, window: float, env, extra=()) -> dict:
    with tempfile.TemporaryDirectory(prefix="prof-sweep-") as tmp:
        out = Path(tmp) / "sweep.json"
        argv = [str(BIN / "rstfleet"), "sweep", "-i", str(lab.inventory_path), "--window",
                repr(window), "--format", "json", "-o", str(out), "-q", *extra]
        spawn = time.time()
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        samples = {}

        # Between the last host's window start (~2.7 s at N=100, ~5.9 s at N=200 here) and the
        # first host's window end (~window + 0.5 s): every session is open and only waiting.
        points = (0.65 * window, window)

        def sampler():
            for at in points:
                time.sleep(max(0.0, at - (time.perf_counter() - t0)))
                samples[at] = task_counters(proc.pid)
        th = threading.Thread(target=sampler, daemon=True)
        th.start()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall, end = time.perf_counter() - t0, time.time()
        th.join(1)
        report = json.loads(out.read_text())
    starts, ends, elapsed = [], [], []
    for host in report["hosts"]:
        w = (host.get("probe") or {}).get("window") or {}
        if w.get("started_at"):
            starts.append(w["started_at"] - spawn)
            ends.append(w["started_at"] + w["measured_s"] - spawn)
            elapsed.append(host["elapsed_s"])
    starts.sort()
    ends.sort()
    result = {"wall_s": round(wall, 3), "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
              "cpu_user_s": usage.ru_utime, "cpu_sys_s": usage.ru_stime,
              "maxrss_kb": usage.ru_maxrss, "hosts_ok": sum(h["status"] == "ok" for h in report["hosts"]),
              "first_window_start_s": round(starts[0], 3) if starts else None,
              "median_window_start_s": round(median(starts), 3) if starts else None,
              "p90_window_start_s": round(starts[int(0.9 * (len(starts) - 1))], 3) if starts else None,
              "last_window_start_s": round(starts[-1], 3) if starts else None,
              "last_window_end_s": round(ends[-1], 3) if ends else None,
              "exit_after_last_window_end_s": round(end - spawn - ends[-1], 3) if ends else None,
              "per_host_elapsed_s": {"median": median(elapsed), "max": max(elapsed) if elapsed else None}}
    if all(p in samples for p in points) and starts and starts[-1] < points[0]:
        (_, sw4, cpu4), (th9, sw9, cpu9) = samples[points[0]], samples[points[1]]
        span = points[1] - points[0]
        result["during_window"] = {"from_s": points[0], "to_s": points[1], "threads": th9,
                                   "wakeups_per_s": round((sw9 - sw4) / span, 1),
                                   "wakeups_per_host_per_s": round((sw9 - sw4) / span / len(lab.hosts), 2),
                                   "cpu_ms_per_s": round(1000 * (cpu9 - cpu4) / span, 1),
                                   "cpu_ms_over_window_per_host": round(
                                       1000 * (cpu9 - cpu4) / span * window / len(lab.hosts), 2)}
    return result


# ---------------------------------------------------------------------------------------------
# 5. py-spy, 6. perf stat
# ---------------------------------------------------------------------------------------------

CATEGORIES = [  # (name, regex on one frame "function (file:line)"), first match from leaf up wins
    ("startup imports", r"_find_and_load|_call_with_frames_removed \(<frozen importlib"),
    ("key exchange", r"kex_|_negotiate_keys|_activate_outbound|_activate_inbound|_compute_key|_parse_kex_init|_send_kex_init"),
    ("host keys (known_hosts)", r"hostkeys\.py|load_host_keys"),
    ("private key load", r"_key_from_filepath|from_private_key_file|_read_private_key"),
    ("auth (ed25519 sign)", r"auth_handler\.py|ed25519key\.py"),
    ("channel open / exec", r"open_session|open_channel|exec_command|sendall \(paramiko"),
    ("transport poll loop (0.1 s timeouts)", r"read_all \(paramiko/packet\.py|handshake_timed_out|_check_keepalive"),
    ("packet crypto / I/O", r"packet\.py|_send_message|_send_user_message"),
    ("probe script bundle", r"probe_script"),
    ("probe output parse + checks", r"parse_probe_output|results\.py|json/decoder|loads \(json"),
    ("analysis + report", r"analysis\.py|report/|fleet\.py|causes\.py|evidence\.py|tabulate"),
    ("TCP connect", r"create_connection|connect \(socket|getaddrinfo"),
    ("threads start/join", r"threading\.py"),
    ("orchestrator", r"orchestrator\.py"),
    ("inventory + settings", r"inventory|yaml|config\.py|argparse"),
]


def categorize(frames: list[str]) -> str:
    for name, pattern in CATEGORIES:
        rx = re.compile(pattern)
        for frame in reversed(frames):
            if rx.search(frame):
                return name
    return "other"


def pyspy(lab, window: float, env, raw_out: Path, flamegraph: Path | None) -> dict:
    pyspy_bin = BIN / "py-spy"
    if not pyspy_bin.exists():
        return {"error": "py-spy not installed (pip install py-spy)"}
    with tempfile.TemporaryDirectory(prefix="prof-pyspy-") as tmp:
        report = Path(tmp) / "sweep.json"
        sweep = [str(BIN / "rstfleet"), "sweep", "-i", str(lab.inventory_path), "--window",
                 repr(window), "--format", "json", "-o", str(report), "-q"]
        rate = 250
        proc = subprocess.run([str(pyspy_bin), "record", "--rate", str(rate), "--format", "raw",
                               "--threads", "--nonblocking", "-o", str(raw_out), "--"] + sweep,
                              capture_output=True, text=True, env=env, timeout=300)
        if proc.returncode not in (0, 4, 8, 12):
            return {"error": proc.stderr[-800:]}
        if flamegraph:
            subprocess.run([str(pyspy_bin), "record", "--rate", "100", "--nonblocking", "-o",
                            str(flamegraph), "--"] + sweep, capture_output=True, env=env, timeout=300)
    by_cat, by_leaf, by_thread_kind, total = Counter(), Counter(), Counter(), 0
    for line in raw_out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        count = int(count)
        frames = stack.split(";")
        if frames and frames[0].startswith("thread ("):
            frames = frames[1:]
        if not frames:
            continue
        total += count
        by_cat[categorize(frames)] += count
        by_leaf[re.sub(r":\d+\)$", ")", frames[-1])] += count
        kind = ("paramiko transport thread" if any("Transport.run" in f or "run (paramiko/transport.py" in f
                                                   for f in frames)
                else "worker thread" if any("worker (rstfleet/orchestrator.py" in f for f in frames)
                else "main thread")
        by_thread_kind[kind] += count
    ms = 1000.0 / rate
    return {"rate_hz": rate, "samples_on_cpu": total, "on_cpu_ms_estimate": round(total * ms),
            "by_phase_ms": {k: round(v * ms) for k, v in by_cat.most_common()},
            "by_thread_ms": {k: round(v * ms) for k, v in by_thread_kind.most_common()},
            "top_leaf_functions_ms": {k: round(v * ms) for k, v in by_leaf.most_common(25)}}


def perf_stat(lab, window: float, env) -> dict:
    if not shutil.which("perf"):
        return {"error": "perf not installed"}
    with tempfile.TemporaryDirectory(prefix="prof-perf-") as tmp:
        argv = ["perf", "stat", "-x", ",", "-e", "task-clock,context-switches,cpu-migrations,page-faults",
                "--", str(BIN / "rstfleet"), "sweep", "-i", str(lab.inventory_path), "--window",
                repr(window), "--format", "json", "-o", f"{tmp}/s.json", "-q"]
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    out = {}
    for line in proc.stderr.splitlines():
        parts = line.split(",")
        if len(parts) >= 3 and parts[2]:
            try:
                out[parts[2]] = float(parts[0])
            except ValueError:
                out[parts[2]] = parts[0]
    return out


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=15, help="connections per phase study")
    parser.add_argument("--lab-name", default="prof")
    parser.add_argument("--out", default=str(HERE / "profile.json"))
    parser.add_argument("--raw", default=str(HERE / "profile-raw.txt"), help="py-spy collapsed stacks")
    parser.add_argument("--flamegraph", default=None, help="also write a py-spy flame graph SVG here")
    args = parser.parse_args(argv)
    from rstfleet_lab import fleet as labmod

    env = dict(os.environ, PATH=f"{BIN}:{os.environ.get('PATH', '')}")
    data = {"n": args.n, "window_s": args.window}
    try:
        labmod.down(args.lab_name)
    except Exception:
        pass
    lab = labmod.up(args.n, args.lab_name)
    try:
        print("startup ...", flush=True)
        data["startup"] = startup(env)
        print("phases ...", flush=True)
        data["phases"] = phase_study(lab, args.repeats)
        print("trace tier ...", flush=True)
        data["trace"] = trace_study(lab)
        for label, extra in (("default", ()), ("no-trace", ("--no-trace",))):
            print(f"timeline {label} ...", flush=True)
            data.setdefault("timeline", {})[label] = sweep_timeline(lab, args.window, env, extra)
            time.sleep(2)
        print("py-spy ...", flush=True)
        data["pyspy"] = pyspy(lab, args.window, env, Path(args.raw),
                              Path(args.flamegraph) if args.flamegraph else None)
        time.sleep(2)
        print("perf stat ...", flush=True)
        data["perf_stat"] = perf_stat(lab, args.window, env)
    finally:
        labmod.down(args.lab_name)
    Path(args.out).write_text(json.dumps(data, indent=1) + "\n")
    print(json.dumps(data, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
