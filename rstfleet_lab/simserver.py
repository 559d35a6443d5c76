"""One simulator worker: a share of the simulated hosts as real SSH servers on one event loop.

    python -m rstfleet_lab.simserver PLAN.json WORKER WORKERS LIFETIME_S

Started by simfleet.py (never by hand). Each host is a listener on its own loopback address with
its own ed25519 host key (derived from the plan's seed and the host's index, so the parent writes
known_hosts without handing keys over), a real key exchange, public-key authentication against the
fleet's client key, and exec channels that answer rstfleet's probe (simmodel.py). Broken hosts:
`auth_refused` rejects the key, `unknown_key` is simply absent from known_hosts (the client must
refuse it), `slow_banner` accepts TCP and never speaks.

Bounded: the worker exits when its stdin closes (the parent went away, even by SIGKILL), after
LIFETIME_S, or on SIGTERM; worker 0 then removes the fleet's temporary folder (keys, plan). One asyncio loop and no thread per connection: measured in
docs/benchmarks.md ("The simulated fleet"), paramiko's server mode costs a thread per connection.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import resource
import shutil
import signal
import sys
import time
from pathlib import Path

import asyncssh
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from rstfleet_lab.simmodel import Request, SimHost, hosts_from_json, parse_command, probe_document
from rstfleet_lab.simmodel import sample_answer, sample_window, shell_head, shell_tail

WORKDIR_PREFIX = "rstfleet-simfleet-"   # simfleet.start's temporary folder: keys, plan, inventory
MAX_STDIN = 1024 * 1024       # the probe's payload is ~40 KB; more is not a probe
LOGIN_TIMEOUT_S = 60.0


def host_key_seed(seed_hex: str, index: int) -> bytes:
    return hashlib.sha256(bytes.fromhex(seed_hex) + index.to_bytes(4, "big")).digest()


def host_private_key(seed_hex: str, index: int) -> Ed25519PrivateKey:
    """The host's ed25519 key: the parent derives the same one for known_hosts."""
    return Ed25519PrivateKey.from_private_bytes(host_key_seed(seed_hex, index))


def host_public_line(seed_hex: str, index: int) -> str:
    """'ssh-ed25519 AAAA…' for known_hosts."""
    return host_private_key(seed_hex, index).public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode("ascii")


def _asyncssh_key(seed_hex: str, index: int):
    pem = host_private_key(seed_hex, index).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    return asyncssh.import_private_key(pem)


class Worker:
    """The hosts of one worker and how each answers."""

    def __init__(self, plan: dict, hosts: list[SimHost]):
        self.epoch_wall = plan["epoch_wall"]
        self.epoch_mono = time.monotonic() - (time.time() - self.epoch_wall)
        self.client_key = asyncssh.import_public_key(plan["client_public_key"])
        self.by_address = {(h.address, h.port): h for h in hosts}
        self.seed = plan["seed"]
        self.hosts = hosts
        self.servers: list[asyncio.AbstractServer] = []
        self.tarpits: list[asyncio.Transport] = []

    def since_epoch(self) -> float:
        return time.monotonic() - self.epoch_mono

    def host_of(self, conn) -> SimHost:
        return self.by_address[conn.get_extra_info("sockname")[:2]]

    # --- the SSH side ----------------------------------------------------------------------

    def server_factory(self):
        worker = self

        class SimServer(asyncssh.SSHServer):
            def connection_made(self, conn):
                self.host = worker.host_of(conn)

            def begin_auth(self, username):
                return True

            def public_key_auth_supported(self):
                return True

            def validate_public_key(self, username, key):
                return self.host.kind != "auth_refused" and key == worker.client_key

        return SimServer

    async def answer(self, process: asyncssh.SSHServerProcess) -> None:
        """One exec channel: the probe's document, the shell probe's text or the peers' sample."""
        host = self.host_of(process)
        request = parse_command(process.command or "")
        try:
            if request.kind == "python" or (request.kind == "sample" and not request.window_s):
                if request.script_bytes:             # length-delimited: a go line follows it
                    script = await process.stdin.readexactly(min(request.script_bytes, MAX_STDIN))
                else:
                    script = await process.stdin.read(MAX_STDIN)     # the script comes on stdin
                if request.kind == "sample":
                    request = Request("sample", sample_window(script.decode("utf-8", "replace")))
            if request.go:                           # started at connect: wait for the go, as the probes do
                request = request.went(await process.stdin.readline())
                if request is None:
                    process.stderr.write(b"rstprobe: no go from the orchestrator; exiting without measuring\n")
                    process.exit(5)
                    return
            if request.kind == "unknown":
                process.stderr.write(b"simfleet: command not simulated\n")
                process.exit(127)
                return
            await asyncio.sleep(request.wait_s(time.time()))      # the common start, as the probes wait
            started_at, began, t0 = time.time(), self.since_epoch(), time.monotonic()
            if request.kind == "shell":
                process.stdout.write(shell_head(host, self.epoch_wall, began).encode())
                for _ in range(int(request.window_s)):
                    await asyncio.sleep(1.0)
                    process.stdout.write(b"@@tick\n")
                await asyncio.sleep(request.window_s - int(request.window_s))
                process.stdout.write(shell_tail(host, self.since_epoch()).encode())
            else:
                await asyncio.sleep(request.window_s)
                ended, elapsed = self.since_epoch(), time.monotonic() - t0
                if request.kind == "sample":
                    process.stdout.write(sample_answer(host, began, ended).encode())
                else:
                    document = probe_document(host, request, started_at, began, ended, elapsed)
                    process.stdout.write(json.dumps(document).encode())
            process.exit(0)
        except (asyncssh.Error, OSError, BrokenPipeError, ConnectionError, asyncio.IncompleteReadError):
            process.close()        # the client went away: nothing to answer

    # --- listeners -------------------------------------------------------------------------

    async def start(self, loop: asyncio.AbstractEventLoop) -> None:
        for host in self.hosts:
            if host.kind == "slow_banner":
                server = await loop.create_server(lambda: _Tarpit(self.tarpits), host.address,
                                                  host.port, backlog=16, reuse_address=True)
            else:
                options = asyncssh.SSHServerConnectionOptions(
                    server_host_keys=[_asyncssh_key(self.seed, host.index)],
                    server_factory=self.server_factory(), process_factory=self.answer,
                    encoding=None, allow_scp=False, agent_forwarding=False, x11_forwarding=False,
                    login_timeout=LOGIN_TIMEOUT_S, keepalive_interval=0, compression_algs=None)
                server = await loop.create_server(
                    lambda options=options: asyncssh.SSHServerConnection(loop, options),
                    host.address, host.port, backlog=16, reuse_address=True)
            self.servers.append(server)

    def close(self) -> None:
        for server in self.servers:
            server.close()
        for transport in self.tarpits:
            transport.abort()


class _Tarpit(asyncio.Protocol):
    """Accepts TCP and says nothing: the client's banner timeout is what it meets."""

    def __init__(self, held: list):
        self.held = held

    def connection_made(self, transport):
        self.held.append(transport)


async def serve(plan: dict, worker: int, workers: int, lifetime_s: float) -> None:
    loop = asyncio.get_running_loop()
    hosts = [h for h in hosts_from_json(json.dumps(plan["hosts"])) if h.index % workers == worker]
    sim = Worker(plan, hosts)
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    loop.add_reader(sys.stdin.fileno(), lambda: done.set() if not sys.stdin.buffer.read1(1) else None)
    loop.call_later(lifetime_s, done.set)
    try:
        await sim.start(loop)
        print(f"ready {len(hosts)}", flush=True)
        await done.wait()
    finally:
        sim.close()


def main(argv: list[str]) -> int:
    plan_path, worker, workers, lifetime_s = argv[0], int(argv[1]), int(argv[2]), float(argv[3])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    logging.getLogger("asyncssh").setLevel(logging.CRITICAL)
    with open(plan_path, encoding="utf-8") as handle:
        plan = json.load(handle)
    try:
        asyncio.run(serve(plan, worker, workers, lifetime_s))
    except OSError as exc:
        print(f"error {exc}", flush=True)
        return 1
    finally:
        folder = Path(plan_path).resolve().parent
        if worker == 0 and folder.name.startswith(WORKDIR_PREFIX):
            shutil.rmtree(folder, ignore_errors=True)    # the parent may have died without stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
