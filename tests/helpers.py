"""Shared test helpers: run the real CLI as a subprocess, parse its options, read its reports, watch the
lab for leftovers, and the real tools used as oracles (ansible-inventory, tcpdump)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rstfleet.probe import GO_READER as PROBE_READER

GO_READER = PROBE_READER.encode()
ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"


def run_cli(*args: str, timeout: float = 120, input: bytes | None = None) -> subprocess.CompletedProcess:
    """`python -m rstfleet ARGS` exactly as a user would run it (fresh process, real stdout/exit code)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "rstfleet", *args], capture_output=True,
                          timeout=timeout, env=env, input=input, cwd=str(ROOT))


def options(*argv: str) -> dict:
    """The options cli.py hands to Plan.from_args, parsed from real argv by the CLI's own parser."""
    from rstfleet.cli import build_parser
    args = build_parser().parse_args(list(argv))
    return dict(vars(args), triage=args.command == "triage")


def json_report(path: Path) -> dict:
    return json.loads(path.read_text())


def hosts_by_name(report: dict) -> dict:
    return {h["host"]: h for h in report["hosts"]}


def require_root_lab() -> None:
    """The lab is the real path: its absence is a failure, not a skip."""
    if os.geteuid() != 0:
        pytest.fail("lab tests need root (network namespaces); run scripts/test.sh as root")
    if not Path("/usr/sbin/sshd").exists():
        pytest.fail("lab tests need /usr/sbin/sshd: apt-get install openssh-server (scripts/test.sh does)")


def broken_access_lines(lab, tmp: Path, wrong_key: str, unknown_key: str) -> list[str]:
    """INI lines for every lab host, one of them offering a key sshd does not accept (wrong_key)
    and one verifying against an empty known_hosts (unknown_key)."""
    other_key, empty_known = tmp / "other_key", tmp / "empty_known_hosts"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True)
    empty_known.write_text("")
    lines = []
    for host in lab.hosts:
        key = other_key if host.name == wrong_key else lab.key_path
        known = empty_known if host.name == unknown_key else lab.known_hosts_path
        lines.append(f"{host.name} ansible_host={host.address} ansible_ssh_private_key_file={key} "
                     f"'ansible_ssh_common_args=-o UserKnownHostsFile={known}'")
    return lines


def lab_leftovers(lab) -> list[str]:
    """rstfleet processes still running inside the lab's hosts (probe, tcpdump, timeout)."""
    from rstfleet_lab import namespace_pids
    left = []
    for ns, pids in namespace_pids([h.namespace for h in lab.hosts]).items():
        for pid in pids:
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"sshd" in argv[0]:
                continue
            if GO_READER in argv:        # the probe's fixed reader (probe.GO_READER): its options matter
                argv[argv.index(GO_READER)] = b"<go reader>"
            left.append(f"{ns}:{pid}:{b' '.join(argv).decode(errors='replace')[:80]}")
    return left


def wait_until_clean(lab, bound_s: float) -> list[str]:
    """Poll until no rstfleet process is left in the lab (or the bound passes); return leftovers."""
    import time
    deadline = time.monotonic() + bound_s
    while True:
        left = lab_leftovers(lab)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


TCPDUMP = "/usr/bin/tcpdump"
RST_BPF = "tcp[tcpflags] & tcp-rst != 0"
_TCPDUMP_RESET = re.compile(r"IP6? (\S+)\.(\d+) > (\S+)\.(\d+): Flags \[([^\]]*)\], seq (\d+)")


def tcpdump_read(path, bpf: str = "") -> subprocess.CompletedProcess:
    """`tcpdump -nn -S -r PATH [BPF]`, text out: the oracle of the capture reader."""
    if not os.access(TCPDUMP, os.X_OK):
        pytest.fail("tcpdump is the oracle of the capture reader: apt-get install tcpdump")
    return subprocess.run([TCPDUMP, "-nn", "-S", "-r", str(path), *([bpf] if bpf else [])],
                          capture_output=True, text=True, timeout=60)


def tcpdump_resets(path, bpf: str = RST_BPF) -> tuple[list[tuple], str, int]:
    """tcpdump -r's own reading of a capture's resets: ([(src, sport, dst, dport, flags as tcpdump
    prints them, e.g. "R.", absolute seq)] per line, stderr, exit code)."""
    proc = tcpdump_read(path, bpf)
    rows = []
    for line in proc.stdout.splitlines():
        match = _TCPDUMP_RESET.search(line)
        assert match, f"tcpdump printed a line the oracle cannot read: {line!r}"
        src, sport, dst, dport, flags, seq = match.groups()
        rows.append((src, int(sport), dst, int(dport), flags, int(seq)))
    return rows, proc.stderr, proc.returncode


def reset_rows(packets) -> list[tuple]:
    """The reader's resets in tcpdump_resets' shape (flags: R, R. and so on as tcpdump prints them)."""
    def flags(value: int) -> str:
        return "".join(c for bit, c in ((0x01, "F"), (0x02, "S"), (0x04, "R"), (0x08, "P"), (0x20, "U"))
                       if value & bit) + ("." if value & 0x10 else "")
    return [(p.src, p.sport, p.dst, p.dport, flags(p.flags), p.seq) for p in packets]


ANSIBLE_INVENTORY = Path(sys.executable).parent / "ansible-inventory"


def ansible_inventory(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """The oracle, away from any ansible.cfg (an empty one, an empty working directory)."""
    assert ANSIBLE_INVENTORY.exists(), "ansible-core is a test dependency: pip install ansible-core"
    config = tmp_path / "ansible.cfg"
    config.write_text("")
    env = dict(os.environ, ANSIBLE_CONFIG=str(config), ANSIBLE_INVENTORY_UNPARSED_FAILED="1",
               ANSIBLE_DEPRECATION_WARNINGS="0", ANSIBLE_LOCAL_TEMP=str(tmp_path), ANSIBLE_HOME=str(tmp_path))
    return subprocess.run([str(ANSIBLE_INVENTORY), *args], capture_output=True, env=env, cwd=tmp_path,
                          timeout=120)


def plain(value):
    """ansible-inventory's ``{"__ansible_unsafe": text}`` as the text it stands for."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value
