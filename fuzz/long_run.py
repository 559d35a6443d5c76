#!/usr/bin/env python3
"""Long fuzzing run over rstfleet's parsers of untrusted input (see fuzz/README, docs/fuzzing.md).

    nice -n 10 .venv/bin/python fuzz/long_run.py --fresh    # defaults: ~20-30 min on one core
    .venv/bin/python fuzz/long_run.py --cases pcap=20000,probe=20000,inventory=2000,playbook=2000 \
        --runs-dir /tmp/fuzz-try                            # a quick try; fuzz/runs/ stays as recorded
    .venv/bin/python fuzz/long_run.py --targets pcap --cases pcap=5000000 --engine mutate

Targets run one after another, each in its own child process (atheris' libFuzzer loop never
returns), so the run uses one core at a time; the parent only waits.  Engines: ``atheris``
(coverage-guided libFuzzer; ``pip install atheris``) or ``mutate`` (a plain mutational loop over
the same seeds and mutators, no coverage feedback; used by ``--engine auto`` when atheris is not
installed).

Every case is timed and the process's peak RSS checked after it; every 20th case also runs
under tracemalloc, whose peak is that case's Python allocations.  A case over the time bound
(confirmed by a second run) or over the memory bound (either measure) is a finding, as is any exception other than the target's documented error type (fuzz/harness.py).
Each distinct finding (exception type + innermost rstfleet frame) is saved once under
fuzz/crashes/ -- the smallest input seen for it -- with its traceback beside it; replay one with
``fuzz/reproduce.py FILE``.  The ``large`` stage then feeds a few inputs at the size limits the
controller allows (8-12 MiB captures, 16 MiB probe output) to fresh processes, to measure time
and peak RSS where per-case fuzzing cannot reach.

Results: fuzz/runs/<target>.json per target, fuzz/runs/latest.json for the whole run.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import harness  # noqa: E402
import mutators  # noqa: E402

DEFAULT_CASES = {"pcap": 1_000_000, "probe": 1_000_000, "inventory": 50_000, "playbook": 100_000}
MAX_LEN = {"pcap": 65536, "probe": 65536, "inventory": 16384, "playbook": 16384}
RUNS = HERE / "runs"                                    # --runs-dir changes it
CRASHES = HERE / "crashes"
CORPUS = HERE / "corpus"


# --- one target, in a child process -----------------------------------------------------------

class Stats:
    """Counts cases and outcomes, applies the bounds, saves findings."""

    def __init__(self, target: str, cases: int, opts):
        self.target, self.goal, self.opts = target, cases, opts
        self.case = harness.CASES[target]
        self.started = time.monotonic()
        self.cases = self.accepted = self.rejected = self.crashing_cases = 0
        self.findings: dict[str, dict] = {}
        self.max_case_s = self.max_case_peak = self.max_len = 0
        self.slow_unconfirmed = 0
        self.next_report = self.started + opts.report_every
        self.trace_every = opts.trace_every
        self.traced_cases = 0
        self.rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        import tracemalloc
        self.tracemalloc = tracemalloc

    def run(self, data: bytes) -> None:
        self.cases += 1
        self.max_len = max(self.max_len, len(data))
        # tracemalloc hooks every allocation while it runs (5x slower), so it runs for every
        # trace_every-th case only, started and stopped around it: its peak is that case's.
        tm = self.tracemalloc if self.trace_every and self.cases % self.trace_every == 0 else None
        if tm:
            tm.start()
        t0 = time.perf_counter()
        try:
            outcome = self.case(data)
        except Exception as exc:                        # noqa: BLE001 -- that is the point
            outcome = None
            self.crash(data, exc)
        elapsed = time.perf_counter() - t0
        bound = self.opts.mem_bound_mb * 2 ** 20
        if tm:
            peak = tm.get_traced_memory()[1]
            tm.stop()
            self.traced_cases += 1
            self.max_case_peak = max(self.max_case_peak, peak)
            if peak > bound:
                self.finding(data, f"Memory@{self.target}",
                             f"case allocated {peak / 2**20:.1f} MiB (bound {self.opts.mem_bound_mb} MiB)")
        # Every case: the process's peak RSS may only grow by less than the bound in one case.
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if (rss - self.rss_kib) * 1024 > bound:
            self.finding(data, f"RSS@{self.target}",
                         f"peak RSS grew {(rss - self.rss_kib) / 1024:.1f} MiB in one case "
                         f"(bound {self.opts.mem_bound_mb} MiB)")
        self.rss_kib = rss
        if outcome == "accepted":
            self.accepted += 1
        elif outcome == "rejected":
            self.rejected += 1
        if elapsed > self.opts.time_bound:
            self.confirm_slow(data, elapsed)
        else:
            self.max_case_s = max(self.max_case_s, elapsed)
        if self.cases >= self.goal or time.monotonic() - self.started > self.opts.max_seconds:
            self.finish()
        if time.monotonic() >= self.next_report:
            self.next_report += self.opts.report_every
            self.report()

    def confirm_slow(self, data: bytes, first: float) -> None:
        """A slow case is run again without tracemalloc: the machine may just have been busy."""
        t0 = time.perf_counter()
        try:
            self.case(data)
        except Exception:                               # noqa: BLE001 -- already recorded
            pass
        again = time.perf_counter() - t0
        self.max_case_s = max(self.max_case_s, again)
        if again > self.opts.time_bound:
            self.finding(data, f"Slow@{self.target}",
                         f"case took {first:.2f} s, then {again:.2f} s (bound {self.opts.time_bound} s)")
        else:
            self.slow_unconfirmed += 1

    def crash(self, data: bytes, exc: BaseException) -> None:
        self.crashing_cases += 1
        self.finding(data, harness.signature(exc),
                     "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))

    def finding(self, data: bytes, sig: str, detail: str) -> None:
        entry = self.findings.get(sig)
        if entry is None:
            name = f"{self.target}-{hashlib.sha1(sig.encode()).hexdigest()[:10]}"
            entry = self.findings[sig] = {"signature": sig, "file": _shown(CRASHES / f"{name}.bin"),
                                          "count": 0, "first_case": self.cases, "size": None}
            self.log(f"NEW finding {sig} (case {self.cases}) -> {entry['file']}")
        entry["count"] += 1
        if entry["size"] is None or len(data) < entry["size"]:   # keep the smallest input
            entry["size"] = len(data)
            path = harness.ROOT / entry["file"]         # absolute paths stay absolute
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            path.with_suffix(".txt").write_text(
                f"target: {self.target}\nsignature: {sig}\ninput: {entry['file']} ({len(data)} bytes)\n"
                f"replay: .venv/bin/python fuzz/reproduce.py {entry['file']}\n\n{detail}")

    def summary(self) -> dict:
        wall = time.monotonic() - self.started
        return {
            "target": self.target, "engine": self.opts.engine, "cases": self.cases,
            "accepted": self.accepted, "rejected_documented": self.rejected,
            "crashing_cases": self.crashing_cases, "distinct_findings": len(self.findings),
            "findings": sorted(self.findings.values(), key=lambda f: f["first_case"]),
            "wall_s": round(wall, 1), "cases_per_s": round(self.cases / wall, 1) if wall else None,
            "max_case_s": round(self.max_case_s, 4), "slow_unconfirmed": self.slow_unconfirmed,
            "max_case_alloc_mib": round(self.max_case_peak / 2 ** 20, 2),
            "tracemalloc_every": self.opts.trace_every, "traced_cases": self.traced_cases,
            "max_input_bytes": self.max_len,
            "ru_maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "time_bound_s": self.opts.time_bound, "mem_bound_mib": self.opts.mem_bound_mb,
        }

    def report(self) -> None:
        s = self.summary()
        self.log(f"{s['cases']:>9} cases {s['cases_per_s']:>8}/s  accepted {s['accepted']}  "
                 f"rejected {s['rejected_documented']}  crashing {s['crashing_cases']} "
                 f"({s['distinct_findings']} distinct)  max case {s['max_case_s']} s / "
                 f"{s['max_case_alloc_mib']} MiB  rss {s['ru_maxrss_mib']} MiB")
        (RUNS / f"{self.target}.json").write_text(json.dumps(s, indent=2) + "\n")

    def finish(self) -> None:
        self.report()
        self.log("done")
        harness.cleanup()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)                                     # atheris.Fuzz() does not return

    def log(self, text: str) -> None:
        os.write(2, f"[fuzz {self.target}] {text}\n".encode())


def _shown(path: Path) -> str:
    """Repository-relative when inside it (fuzz/crashes/...), else absolute."""
    try:
        return str(path.relative_to(harness.ROOT))
    except ValueError:
        return str(path)


def _corpus(target: str, fresh: bool) -> Path:
    """libFuzzer's working corpus: the seeds, then whatever new coverage it keeps."""
    folder = CORPUS / target
    if fresh and folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, data in enumerate(harness.seeds(target)):
        (folder / f"seed-{i:03d}").write_bytes(data)
    return folder


def _dirs(opts) -> None:
    """fuzz/runs + fuzz/crashes for the recorded run; <runs-dir> + <runs-dir>/crashes otherwise."""
    global RUNS, CRASHES
    if Path(opts.runs_dir).resolve() != RUNS.resolve():
        RUNS = Path(opts.runs_dir).resolve()
        CRASHES = RUNS / "crashes"


def child(opts) -> None:
    _dirs(opts)
    target = opts.child
    RUNS.mkdir(parents=True, exist_ok=True)
    if opts.engine == "atheris":
        import atheris
        with atheris.instrument_imports(include=["rstfleet"]):
            import rstfleet.analysis  # noqa: F401  -- every module a target reaches
            import rstfleet.evidence.capture_summary  # noqa: F401
            import rstfleet.evidence.causes  # noqa: F401
            import rstfleet.cli  # noqa: F401
            import rstfleet.evidence.captures  # noqa: F401
            import rstfleet.evidence.host  # noqa: F401
            import rstfleet.inventory  # noqa: F401
            import rstfleet.inventory.ini  # noqa: F401
            import rstfleet.inventory.yaml  # noqa: F401
            import rstfleet.evidence.pcap  # noqa: F401
            import rstfleet.playbook  # noqa: F401
            import rstfleet.results  # noqa: F401
    stats = Stats(target, opts.cases, opts)
    stats.log(f"engine {opts.engine}, goal {opts.cases} cases, seeds {len(harness.seeds(target))}")
    if opts.engine == "atheris":
        import atheris
        corpus = _corpus(target, opts.fresh)
        CRASHES.mkdir(parents=True, exist_ok=True)      # libFuzzer wants the artifact folder
        argv = [sys.argv[0], str(corpus), f"-max_len={MAX_LEN[target]}", "-timeout=20",
                "-rss_limit_mb=4096", f"-seed={opts.seed}", "-print_final_stats=1",
                f"-artifact_prefix={CRASHES}/{target}-libfuzzer-"]
        if (HERE / "dicts" / f"{target}.dict").exists():
            argv.append(f"-dict={HERE / 'dicts' / f'{target}.dict'}")
        kwargs = {}
        if target == "probe":
            def custom_mutator(data, max_size, seed):
                return mutators.mutate_probe(data, random.Random(seed), max_size, atheris.Mutate)
            kwargs["custom_mutator"] = custom_mutator
        atheris.Setup(argv, stats.run, **kwargs)
        atheris.Fuzz()
        return
    # --engine mutate: no coverage feedback; a bounded pool of accepted inputs evolves.
    rng = random.Random(opts.seed)
    seeds = harness.seeds(target)
    pool = list(seeds)
    for data in seeds:
        stats.run(data)
    byte_mutate = (lambda data, size: mutators.mutate_bytes(data, rng, size, seeds))
    while True:
        parent = rng.choice(pool)
        if target == "probe":
            data = mutators.mutate_probe(parent, rng, MAX_LEN[target], byte_mutate)
        else:
            data = byte_mutate(parent, MAX_LEN[target])
        accepted_before = stats.accepted
        stats.run(data)
        if stats.accepted > accepted_before and rng.random() < 0.05:
            if len(pool) < 2000:
                pool.append(data)
            else:
                pool[rng.randrange(len(seeds), len(pool))] = data


# --- the large stage: limit-sized inputs, each in a fresh process --------------------------------

def _big_pcap(size: int, v6: bool) -> bytes:
    import struct
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101)]
    total, i = 24, 0
    while total < size:
        if v6:
            ip = (bytes([0x60, 0, 0, 0, 0, 20, 6, 64]) + b"\x20\x01\x0d\xb8" + bytes(8)
                  + i.to_bytes(4, "big") + b"\x20\x01\x0d\xb8" + bytes(11) + b"\x02")
        else:
            ip = bytes([0x45, 0, 0, 34, 0, 0, 0, 0, 64, 6, 0, 0]) + (0x0A000000 | i).to_bytes(4, "big") \
                + bytes([10, 0, 0, 2])
        rec = ip + struct.pack(">HHIIBB", i & 0xFFFF, 80, 0, 0, 0x50, 0x04)
        out.append(struct.pack("<IIII", i, 0, len(rec), len(rec)) + rec)
        total += 16 + len(rec)
        i += 1
    return b"".join(out)


def _big_inputs():
    """(target, name, bytes): at the limits a host can reach (capture-bytes, max_output)."""
    import base64
    mib = 2 ** 20
    out = [("pcap", "8MiB-ipv4-distinct-peers", _big_pcap(8 * mib, False)),
           ("pcap", "12MiB-ipv6-distinct-peers", _big_pcap(12 * mib, True))]
    head = b'{"kind":"rstfleet-probe","schema":1,"x":['
    for name, unit in (("ints", b"0,"), ("empty-objects", b"{},"), ("nested-lists", b"[[]],")):
        n = (16 * mib - len(head) - 2) // len(unit)
        out.append(("probe", f"16MiB-{name}", head + unit * n + b"0]}"))
    seed = json.loads((HERE / "seeds/probe/trace_capture_owners.json").read_bytes())
    seed["capture"]["pcap_b64"] = base64.b64encode(_big_pcap(11 * mib, True)).decode()
    out.append(("probe", "15MiB-valid-doc-with-11MiB-capture", json.dumps(seed).encode()))
    return out


_LARGE_CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
import harness
target, path = sys.argv[2], sys.argv[3]
data = open(path, "rb").read()
harness.CASES[target](b"\x00")           # warm imports outside the measurement

def status(key):                          # /proc/self/status, in KiB
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])

try:                                      # reset the peak RSS (VmHWM) to the current RSS
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before, key = status("VmRSS"), "VmHWM"
except OSError:
    before, key = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, None
t0, c0 = time.perf_counter(), time.process_time()
try:   # what the controller does with such an input (evidence.host_evidence; cli sweep order)
    if target == "probe":
        outcome = harness.probe_case(data, store=True)
    else:
        from rstfleet.evidence.capture_summary import summarize
        from rstfleet.evidence.pcap import read_resets
        packets = read_resets(data)
        summarize(packets, set())
        outcome = f"accepted ({len(packets)} resets, truncated={packets.truncated})"
except Exception as exc:
    outcome = "finding: " + harness.signature(exc)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
after = status(key) if key else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"outcome": outcome, "wall_s": wall, "cpu_s": cpu,
                  "rss_growth_mib": (after - before) / 1024}))
harness.cleanup()
"""


def large_stage(opts) -> list[dict]:
    results = []
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"rstfleet-fuzz-large-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    try:
        for target, name, data in _big_inputs():
            path = work / f"{target}-{name}.bin"
            path.write_bytes(data)
            run = subprocess.run([sys.executable, "-c", _LARGE_CHILD, str(HERE), target, str(path)],
                                 capture_output=True, text=True, timeout=600)
            try:
                row = json.loads(run.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                row = {"outcome": f"child failed: {run.stderr.strip()[-300:]}"}
            row.update(target=target, input=name, bytes=len(data))
            over = []
            if row.get("cpu_s", 0) > opts.time_bound:
                over.append("time")
            if row.get("rss_growth_mib", 0) > opts.mem_bound_mb:
                over.append("memory")
            row["over_bound"] = over
            results.append(row)
            print(f"[fuzz large] {target:5} {name:40} {len(data) / 2**20:5.1f} MiB  "
                  f"{row.get('outcome')!s:30.30} cpu {row.get('cpu_s', 0):6.2f} s  "
                  f"rss +{row.get('rss_growth_mib', 0):6.0f} MiB  {'OVER ' + '+'.join(over) if over else ''}",
                  file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


# --- the parent -------------------------------------------------------------------------------

def machine() -> dict:
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem = int(next(l for l in open("/proc/meminfo") if l.startswith("MemTotal")).split()[1]) // 1024
    except (OSError, StopIteration, ValueError):
        mem = None
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_mib": mem, "kernel": platform.release(),
            "python": platform.python_version(), "load_at_start": os.getloadavg()}


def parse_cases(text: str) -> dict:
    cases = dict(DEFAULT_CASES)
    for item in filter(None, (t.strip() for t in text.split(","))):
        name, _, n = item.partition("=")
        if name not in cases:
            raise SystemExit(f"unknown target {name!r} in --cases")
        cases[name] = int(float(n))
    return cases


def parent(opts) -> int:
    _dirs(opts)
    if opts.nice:
        os.nice(opts.nice)
    RUNS.mkdir(parents=True, exist_ok=True)
    cases = parse_cases(opts.cases_text)
    targets = [t for t in opts.targets.split(",") if t]
    started = time.time()
    run = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
           "engine": opts.engine, "machine": machine(), "niceness": os.nice(0), "seed": opts.seed,
           "targets": {}, "large": []}
    try:
        import atheris  # noqa: F401
        from importlib.metadata import version
        run["atheris"] = version("atheris")
    except ImportError:
        run["atheris"] = None
    for target in targets:
        if target == "large":
            continue
        log = RUNS / f"{target}.log"
        (RUNS / f"{target}.json").unlink(missing_ok=True)
        argv = [sys.executable, str(Path(__file__).resolve()), "--child", target,
                "--engine", opts.engine, "--cases", str(cases[target]), "--seed", str(opts.seed),
                "--time-bound", str(opts.time_bound), "--mem-bound-mb", str(opts.mem_bound_mb),
                "--trace-every", str(opts.trace_every), "--max-seconds", str(opts.max_seconds),
                "--report-every", str(opts.report_every), "--nice", "0", "--runs-dir", str(RUNS)]
        if opts.fresh:
            argv.append("--fresh")
        print(f"[fuzz] {target}: {cases[target]} cases, engine {opts.engine}, log {log}", file=sys.stderr)
        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
            with open(log, "rb") as tail:                # echo the harness' own lines
                pending = b""
                while True:
                    code = proc.poll()
                    *lines, pending = (pending + tail.read()).split(b"\n")
                    for line in lines:
                        if line.startswith(b"[fuzz"):
                            print(line.decode(errors="replace"), file=sys.stderr, flush=True)
                    if code is not None:
                        break
                    time.sleep(1)
        stats_file = RUNS / f"{target}.json"
        result = json.loads(stats_file.read_text()) if stats_file.exists() else {}
        result["exit_code"] = code
        if code != 0:   # libFuzzer stopped on a hang/OOM: its artifact is under fuzz/crashes/
            result["child_died"] = f"exit {code}; see {log}"
        run["targets"][target] = result
    if "large" in targets:
        run["large"] = large_stage(opts)
    run["wall_s"] = round(time.time() - started, 1)
    run["max_rss_children_mib"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    (RUNS / "latest.json").write_text(json.dumps(run, indent=2) + "\n")

    print("\n== rstfleet fuzz run ==", file=sys.stderr)
    bad = 0
    for target, r in run["targets"].items():
        print(f"{target:9} {r.get('cases', 0):>9} cases  {r.get('cases_per_s')}/s  "
              f"{r.get('wall_s')} s  accepted {r.get('accepted')}  documented errors "
              f"{r.get('rejected_documented')}  crashing cases {r.get('crashing_cases')} "
              f"({r.get('distinct_findings')} distinct)  max case {r.get('max_case_s')} s, "
              f"{r.get('max_case_alloc_mib')} MiB alloc, rss {r.get('ru_maxrss_mib')} MiB"
              + (f"  CHILD DIED: {r['child_died']}" if "child_died" in r else ""), file=sys.stderr)
        bad += r.get("distinct_findings", 0) + ("child_died" in r)
        for f in sorted(r.get("findings", []), key=lambda f: -f["count"]):
            print(f"    {f['count']:>8} x {f['signature']}  -> {f['file']}", file=sys.stderr)
    for row in run["large"]:
        bad += bool(row["over_bound"])
    print(f"total {run['wall_s']} s; findings {bad}; results in {RUNS / 'latest.json'}", file=sys.stderr)
    return 1 if bad else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--targets", default="pcap,probe,inventory,playbook,large",
                   help="comma list of pcap, probe, inventory, playbook, large (default: all)")
    p.add_argument("--cases", dest="cases_text", default="",
                   help="per-target counts, e.g. pcap=1000000,probe=1000000 (defaults: "
                        + ", ".join(f"{k}={v}" for k, v in DEFAULT_CASES.items()) + ")")
    p.add_argument("--engine", choices=("auto", "atheris", "mutate"), default="auto")
    p.add_argument("--time-bound", type=float, default=1.0, help="seconds per case (default 1)")
    p.add_argument("--mem-bound-mb", type=float, default=64.0, help="MiB per case (default 64)")
    p.add_argument("--trace-every", type=int, default=20,
                   help="measure every Nth case with tracemalloc (0: never; default 20); the "
                        "peak RSS is checked after every case")
    p.add_argument("--max-seconds", type=float, default=20 * 60, help="stop a target after this long")
    p.add_argument("--report-every", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--nice", type=int, default=10, help="niceness of the run (default 10)")
    p.add_argument("--fresh", action="store_true", help="start from the seeds, not fuzz/corpus/")
    p.add_argument("--runs-dir", default=str(RUNS),
                   help="where the figures go (default fuzz/runs/, the recorded run, with findings "
                        "in fuzz/crashes/); another folder keeps its findings in <folder>/crashes")
    p.add_argument("--child", help=argparse.SUPPRESS)
    opts = p.parse_args(argv)
    if opts.engine == "auto":
        try:
            import atheris  # noqa: F401
            opts.engine = "atheris"
        except ImportError:
            opts.engine = "mutate"
    if opts.child:
        opts.cases = int(opts.cases_text)
        child(opts)
        return 0
    return parent(opts)


if __name__ == "__main__":
    sys.exit(main())
