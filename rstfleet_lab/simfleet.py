"""A simulated fleet: thousands of real SSH endpoints on loopback, to measure past what the lab hosts.

    with simfleet_context({"hosts": 200, "broken": {"auth_refused": 2}}) as fleet:
        rstfleet sweep -i fleet.inventory_path ...

Each host listens on its own address in 127.0.0.0/8 (from 127.1.0.1 up, one port) and is a real
SSH server: key exchange, its own host key (in the generated known_hosts, which the client
verifies), public-key authentication with the generated client key, exec channels answering the
probe with a modelled document (simmodel.py). The servers run in WORKERS processes (one event loop
each, simserver.py), all in one process group of their own.

Bounded and torn down whatever happens: at most MAX_HOSTS hosts and MAX_LIFETIME_S; the workers
exit on their own when their stdin pipe closes (this process died, even by SIGKILL) or their
lifetime ends; stop() kills the process group (SIGTERM, then SIGKILL) and is called from the
context manager's finally and at exit. The files (keys, known_hosts, inventory) live in a
temporary folder removed by stop().

    python -m rstfleet_lab.simfleet SCENARIO.yml [--workers 2] [--lifetime 600]
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from rstfleet_lab.simmodel import MAX_HOSTS, SimHost, load_scenario, plan_hosts
from rstfleet_lab.simserver import WORKDIR_PREFIX, host_public_line

ROOT = Path(__file__).resolve().parent.parent
MAX_LIFETIME_S = 3600.0
WORKERS = 2                    # one event loop per core of this machine
READY_S_PER_HOST = 0.01        # measured ~1 ms per listener; generous for a loaded machine
_LIVE: list["SimFleet"] = []


class SimFleetError(RuntimeError):
    """The simulated fleet could not start; the message says why."""


@dataclass
class SimFleet:
    hosts: list[SimHost]
    workdir: Path
    inventory_path: Path
    known_hosts_path: Path
    key_path: Path
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def pgid(self) -> int | None:
        return self.processes[0].pid if self.processes else None

    def host(self, name: str) -> SimHost:
        return next(h for h in self.hosts if h.name == name)

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def stop(self) -> None:
        """Kill the workers' process group and remove the files; safe to call twice."""
        if self.processes:
            _kill_group(self.pgid, self.processes)
            self.processes = []
        shutil.rmtree(self.workdir, ignore_errors=True)
        if self in _LIVE:
            _LIVE.remove(self)


def _kill_group(pgid: int, processes: list[subprocess.Popen], grace_s: float = 3.0) -> None:
    for process in processes:
        if process.stdin:
            with contextlib.suppress(OSError):
                process.stdin.close()          # the workers' own signal to leave
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    end = time.monotonic() + grace_s
    for process in processes:
        try:
            process.wait(max(0.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5.0)
        if process.stdout:
            process.stdout.close()


@atexit.register
def _stop_all() -> None:
    for fleet in list(_LIVE):
        fleet.stop()


def _write_files(hosts: list[SimHost], workdir: Path, seed: str) -> tuple[Path, Path, Path, str]:
    """Client key (0600), known_hosts (every host but the `unknown_key` ones), INI inventory."""
    client = Ed25519PrivateKey.generate()
    key_path = workdir / "client_ed25519"
    key_path.write_bytes(client.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                              serialization.NoEncryption()))
    key_path.chmod(0o600)
    public = client.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                              serialization.PublicFormat.OpenSSH).decode("ascii")
    known_hosts = workdir / "known_hosts"
    known_hosts.write_text("".join(f"[{h.address}]:{h.port} {host_public_line(seed, h.index)}\n"
                                   for h in hosts if h.kind != "unknown_key"))
    inventory = workdir / "inventory.ini"
    lines = ["[sim]"] + [f"{h.name} ansible_host={h.address} ansible_port={h.port}" for h in hosts]
    lines += ["", "[sim:vars]", "ansible_user=root", f"ansible_ssh_private_key_file={key_path}",
              f"ansible_ssh_common_args='-o UserKnownHostsFile={known_hosts}'", ""]
    inventory.write_text("\n".join(lines))
    return key_path, known_hosts, inventory, public


def _group_of(fleet: SimFleet) -> dict:
    """Popen arguments: the first worker leads a new process group, the others join it."""
    pgid = fleet.processes[0].pid if fleet.processes else 0
    return {"preexec_fn": lambda: os.setpgid(0, pgid)}


def _wait_ready(processes: list[subprocess.Popen], timeout_s: float) -> None:
    end = time.monotonic() + timeout_s
    for process in processes:
        left = end - time.monotonic()
        ready, _, _ = select.select([process.stdout], [], [], max(0.0, left))
        line = process.stdout.readline().decode("utf-8", "replace").strip() if ready else ""
        if not line.startswith("ready"):
            raise SimFleetError(f"simulator worker {process.pid} did not start: "
                                f"{line or f'no answer within {timeout_s:.0f} s'}")


def start(scenario: dict, workers: int = WORKERS, lifetime_s: float = 600.0,
          workdir: Path | None = None) -> SimFleet:
    """Write the fleet's files and start its workers; stop() it (or use simfleet_context)."""
    hosts = plan_hosts(scenario)
    if not 0 < lifetime_s <= MAX_LIFETIME_S:
        raise SimFleetError(f"lifetime {lifetime_s} s: wanted 0 < lifetime <= {MAX_LIFETIME_S:.0f} s")
    workers = max(1, min(workers, len(hosts)))
    workdir = Path(workdir or tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
    workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    seed = secrets.token_hex(32)
    key_path, known_hosts, inventory, public = _write_files(hosts, workdir, seed)
    fleet = SimFleet(hosts, workdir, inventory, known_hosts, key_path)
    _LIVE.append(fleet)
    try:
        plan_path = workdir / "plan.json"
        plan_path.write_text(json.dumps({"seed": seed, "epoch_wall": time.time(), "client_public_key": public,
                                         "hosts": [asdict(h) for h in hosts]}))
        plan_path.chmod(0o600)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        for worker in range(workers):
            fleet.processes.append(subprocess.Popen(
                [sys.executable, "-m", "rstfleet_lab.simserver", str(plan_path), str(worker), str(workers),
                 repr(lifetime_s)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=str(ROOT),
                **_group_of(fleet)))
        _wait_ready(fleet.processes, 10.0 + READY_S_PER_HOST * len(hosts))
    except BaseException:
        fleet.stop()
        raise
    return fleet


@contextlib.contextmanager
def simfleet_context(scenario: dict, workers: int = WORKERS, lifetime_s: float = 600.0) -> Iterator[SimFleet]:
    """A running simulated fleet, stopped whatever happens."""
    fleet = start(scenario, workers, lifetime_s)
    try:
        yield fleet
    finally:
        fleet.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rstfleet_lab.simfleet", description=__doc__.split("\n")[0])
    parser.add_argument("scenario", help="scenario file (YAML or JSON; see rstfleet_lab/simmodel.py)")
    parser.add_argument("--workers", type=int, default=WORKERS)
    parser.add_argument("--lifetime", type=float, default=600.0, help=f"seconds (<= {MAX_LIFETIME_S:.0f})")
    args = parser.parse_args(argv)
    with simfleet_context(load_scenario(args.scenario), args.workers, args.lifetime) as fleet:
        print(f"{len(fleet.hosts)} simulated hosts up (max {MAX_HOSTS}); inventory: {fleet.inventory_path}; "
              f"Ctrl-C or {args.lifetime:.0f} s to stop", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            time.sleep(args.lifetime)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
