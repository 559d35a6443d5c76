#!/usr/bin/env python3
"""The benchmark's peers, each written the way a user of that tool would write it first.

    python bench/peers.py fabric|pssh|ssh SPEC.json

SPEC (written by fleet_bench.py and simfleet_bench.py): {"hosts": [addresses], "port" (optional,
22), "user", "key", "known_hosts", "window", "verify_host_keys", "kex" (ssh only), "timeout"}. Every peer runs the same sampling on
every host (read Tcp OutRsts from /proc/net/snmp, sleep the window, read again, print the delta)
and prints one JSON line: {"ok": hosts whose output is an integer, "failed": {host: reason}}.

Each peer imports only its own library, so its start-up cost is its own. This file is bench-only:
rstfleet never imports it.
"""

from __future__ import annotations

import json
import sys

# The sampling, as one line of Python: by header name, like the probe (rstfleet's probe does the
# same reads, plus TcpExt, sysctls, facts and JSON; the peers get the lighter job).
SAMPLE_PY = ('import time;r=lambda:(lambda l:int(l[1][l[0].index("OutRsts")]))'
             '([x.split() for x in open("/proc/net/snmp") if x.startswith("Tcp:")]);'
             'a=r();time.sleep({window});print(r()-a)')


# With "stamps" in the spec (bench/window_bench.py): the same, printing "delta start end" (epoch s),
# so the span of the peer's windows can be compared with rstfleet's.
SAMPLE_STAMPED_PY = ('import time;r=lambda:(lambda l:int(l[1][l[0].index("OutRsts")]))'
                     '([x.split() for x in open("/proc/net/snmp") if x.startswith("Tcp:")]);'
                     's=time.time();a=r();time.sleep({window});print(r()-a,s,time.time())')


def sample_py(window: float, stamps: bool = False) -> str:
    return (SAMPLE_STAMPED_PY if stamps else SAMPLE_PY).format(window=repr(float(window)))


def sample_shell(window: float) -> str:
    """The sampling as a shell command (Fabric, parallel-ssh, Ansible's shell module)."""
    return "python3 -c '%s'" % sample_py(window)


def _is_count(text: str) -> bool:
    text = (text.strip().split() or [""])[0]
    return text.lstrip("-").isdigit()


def run_fabric(spec: dict) -> dict:
    import paramiko
    from fabric import ThreadingGroup
    from fabric.exceptions import GroupException

    port = spec.get("port", 22)
    group = ThreadingGroup(*(f"{h}:{port}" for h in spec["hosts"]), user=spec["user"],
                           connect_kwargs={"key_filename": spec["key"], "look_for_keys": False,
                                           "allow_agent": False})
    if spec["verify_host_keys"]:
        # Fabric's default is AutoAddPolicy (no verification); give it the known_hosts, parsed once
        # and shared as rstfleet does: paramiko's HostKeys.load is O(N²), and loading it per
        # connection (load_host_keys) kept 1,000 simulated hosts in set-up for over 2 minutes.
        known = paramiko.HostKeys(spec["known_hosts"])
        for cxn in group:
            cxn.client._system_host_keys = known
            cxn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        results = group.run(sample_shell(spec["window"]), hide=True, warn=True)
    except GroupException as exc:
        results = exc.result
    ok, failed = 0, {}
    for cxn, result in results.items():
        if isinstance(result, Exception):
            failed[cxn.host] = repr(result)[:200]
        elif result.exited == 0 and _is_count(result.stdout):
            ok += 1
        else:
            failed[cxn.host] = f"exit {result.exited}: {result.stderr[-200:]}"
    group.close()
    return {"ok": ok, "failed": failed}


def run_pssh(spec: dict) -> dict:
    from pssh.clients import ParallelSSHClient

    hosts = spec["hosts"]
    client = ParallelSSHClient(hosts, port=spec.get("port", 22), user=spec["user"], pkey=spec["key"],
                               pool_size=len(hosts),
                               allow_agent=False, timeout=spec["timeout"], num_retries=1)
    output = client.run_command(sample_shell(spec["window"]), stop_on_errors=False)
    client.join(output)
    ok, failed = 0, {}
    for host_out in output:
        if host_out.exception is not None:
            failed[host_out.host] = repr(host_out.exception)[:200]
            continue
        text = "\n".join(host_out.stdout or [])
        if host_out.exit_code == 0 and _is_count(text):
            ok += 1
        else:
            failed[host_out.host] = f"exit {host_out.exit_code}: {text[-200:]}"
    return {"ok": ok, "failed": failed}


def run_ssh(spec: dict) -> dict:
    import subprocess
    from concurrent.futures import ThreadPoolExecutor

    base = ["ssh", "-i", spec["key"], "-p", str(spec.get("port", 22)),
            "-o", f"UserKnownHostsFile={spec['known_hosts']}",
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=" + ("yes" if spec["verify_host_keys"] else "no")]
    if spec.get("kex"):
        base += ["-o", f"KexAlgorithms={spec['kex']}"]
    script = (sample_py(spec["window"], spec.get("stamps", False)).replace(";", "\n") + "\n").encode()
    windows = []

    def one(address: str):
        try:
            proc = subprocess.run(base + [f"{spec['user']}@{address}", "python3", "-"], input=script,
                                  capture_output=True, timeout=spec["timeout"] + spec["window"] + 30)
        except subprocess.TimeoutExpired:
            return address, "timeout"
        if proc.returncode == 0 and _is_count(proc.stdout.decode(errors="replace")):
            if spec.get("stamps"):
                windows.append([float(x) for x in proc.stdout.split()[1:3]])
            return address, None
        return address, f"exit {proc.returncode}: {proc.stderr.decode(errors='replace')[-200:]}"

    with ThreadPoolExecutor(max_workers=len(spec["hosts"])) as pool:
        outcomes = list(pool.map(one, spec["hosts"]))
    failed = {address: reason for address, reason in outcomes if reason}
    return {"ok": len(outcomes) - len(failed), "failed": failed, **({"windows": windows} if windows else {})}


def run_asyncssh(spec: dict) -> dict:
    """Not a peer users have: a candidate transport for rstfleet, measured for the lead. Written
    as rstfleet would use it: key and known_hosts parsed once, host keys verified, one event loop,
    ``python3 -`` with the sampling on stdin (like the ssh peer)."""
    import asyncio

    import asyncssh

    key = asyncssh.read_private_key(spec["key"])
    known = asyncssh.read_known_hosts(spec["known_hosts"]) if spec["verify_host_keys"] else None
    script = sample_py(spec["window"]).replace(";", "\n") + "\n"

    async def one(address: str):
        try:
            async with asyncssh.connect(address, spec.get("port", 22), username=spec["user"], client_keys=[key],
                                        known_hosts=known, agent_path=None,
                                        connect_timeout=spec["timeout"]) as conn:
                result = await conn.run("python3 -", input=script, check=False,
                                        timeout=spec["timeout"] + spec["window"] + 30)
        except (OSError, asyncssh.Error, asyncio.TimeoutError) as exc:
            return address, repr(exc)[:200]
        if result.exit_status == 0 and _is_count(result.stdout or ""):
            return address, None
        return address, f"exit {result.exit_status}: {(result.stderr or '')[-200:]}"

    async def everyone():
        return await asyncio.gather(*(one(a) for a in spec["hosts"]))

    outcomes = asyncio.run(everyone())
    failed = {address: reason for address, reason in outcomes if reason}
    return {"ok": len(outcomes) - len(failed), "failed": failed}


PEERS = {"fabric": run_fabric, "pssh": run_pssh, "ssh": run_ssh, "asyncssh": run_asyncssh}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in PEERS:
        print(f"usage: peers.py {'|'.join(PEERS)} SPEC.json", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as handle:
        spec = json.load(handle)
    outcome = PEERS[argv[0]](spec)
    print(json.dumps(outcome))
    return 0 if not outcome["failed"] else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
