#!/usr/bin/env python3
"""Which SSH server can host a simulated fleet: asyncssh (one event loop) or paramiko's server mode
(a Transport thread per connection)? Server-side CPU per connection and memory per open session.

    python bench/sim_server_cost.py --connections 300

The server runs in a child process on 127.0.0.1 (one port); an asyncssh client (another child)
opens N connections at once, each authenticates with a key, verifies the host key, runs one exec
channel that sleeps 3 s server-side (so every session is open at the same time) and reads "0".
The server's CPU (rusage) and its RSS with all N sessions open are printed per connection.
Bench-only (asyncssh, paramiko).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HOLD_S = 3.0


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def serve_asyncssh(port: int, host_key: str, client_pub: str) -> None:
    import asyncssh

    async def answer(process):
        await asyncio.sleep(HOLD_S)
        process.stdout.write("0\n")
        process.exit(0)

    async def main():
        await asyncssh.listen("127.0.0.1", port, server_host_keys=[host_key],
                              authorized_client_keys=client_pub, process_factory=answer, backlog=4096)
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

    asyncio.run(main())


def serve_paramiko(port: int, host_key: str, client_pub: str) -> None:
    import paramiko

    key = paramiko.Ed25519Key.from_private_key_file(host_key)
    allowed = Path(client_pub).read_text().split()[1]

    class Server(paramiko.ServerInterface):
        def get_allowed_auths(self, username):
            return "publickey"

        def check_auth_publickey(self, username, offered):
            return paramiko.AUTH_SUCCESSFUL if offered.get_base64() == allowed else paramiko.AUTH_FAILED

        def check_channel_request(self, kind, chanid):
            return paramiko.OPEN_SUCCEEDED

        def check_channel_exec_request(self, channel, command):
            def reply():
                time.sleep(HOLD_S)
                channel.sendall(b"0\n")
                channel.send_exit_status(0)
                channel.close()
            threading.Thread(target=reply, daemon=True).start()
            return True

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(4096)
    print("ready", flush=True)
    while True:
        sock, _ = listener.accept()
        transport = paramiko.Transport(sock)
        transport.add_server_key(key)
        transport.start_server(server=Server())


def client(port: int, n: int, key: str, known_hosts: str) -> None:
    import asyncssh

    async def one():
        async with asyncssh.connect("127.0.0.1", port, username="root", client_keys=[key],
                                    known_hosts=known_hosts, agent_path=None) as conn:
            result = await conn.run("sample", check=False)
            return result.stdout.strip() == "0"

    async def main():
        outcomes = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
        print(json.dumps({"ok": sum(o is True for o in outcomes),
                          "errors": sorted({repr(o)[:80] for o in outcomes if o is not True})[:3]}))

    asyncio.run(main())


def measure(engine: str, n: int, tmp: Path, port: int) -> dict:
    me = [sys.executable, __file__]
    server = subprocess.Popen(me + ["--serve", engine, "--port", str(port), "--tmp", str(tmp)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        before, idle_rss = _cpu_of(server.pid), _rss_kb(server.pid)
        started = time.monotonic()
        clients = subprocess.Popen(me + ["--client", str(n), "--port", str(port), "--tmp", str(tmp)],
                                   stdout=subprocess.PIPE, text=True)
        peak_rss, threads = 0, 0
        while clients.poll() is None:
            peak_rss = max(peak_rss, _rss_kb(server.pid))
            threads = max(threads, len(os.listdir(f"/proc/{server.pid}/task")))
            time.sleep(0.1)
        outcome = json.loads(clients.stdout.read())
        cpu = _cpu_of(server.pid) - before
        return {"engine": engine, "connections": n, "ok": outcome["ok"], "errors": outcome["errors"],
                "wall_s": round(time.monotonic() - started, 2),
                "server_cpu_ms_per_conn": round(1000 * cpu / n, 2),
                "server_rss_kb_per_open_session": round((peak_rss - idle_rss) / n, 1), "server_threads_peak": threads}
    finally:
        server.kill()
        server.wait()


def _cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=300)
    parser.add_argument("--serve")
    parser.add_argument("--client", type=int)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tmp")
    args = parser.parse_args()
    if args.serve or args.client:
        tmp = Path(args.tmp)
        if args.serve:
            (serve_asyncssh if args.serve == "asyncssh" else serve_paramiko)(
                args.port, str(tmp / "host"), str(tmp / "client.pub"))
        else:
            resource.setrlimit(resource.RLIMIT_NOFILE, resource.getrlimit(resource.RLIMIT_NOFILE)[1:] * 2)
            client(args.port, args.client, str(tmp / "client"), str(tmp / "known_hosts"))
        return 0
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        for key in ("host", "client"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp / key)], check=True)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        (tmp / "known_hosts").write_text(f"[127.0.0.1]:{port} " + (tmp / "host.pub").read_text())
        for engine in ("asyncssh", "paramiko"):
            print(json.dumps(measure(engine, args.connections, tmp, port)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
