"""Local files a run needs, checked before the first connection: a mistake here is the user's to
fix, named as they wrote it, never blamed on the network after the sweep ran.

    check_local_inputs(plan)  ->  the plan, or PlanError("--private-key: ~/.ssh/id_ed25519.pub is a
                                  public key; give the private key (the same name without .pub)")

One rule set for every Plan, from the command line or a playbook's play: the key must be a
readable private key file; the report file (-o, and each play's numbered one) must be creatable
or writable; the run folder (captures only) must be a folder, or creatable, and writable; a
known_hosts file (--known-hosts, an inventory's UserKnownHostsFile) must be readable or absent.
Writability is tried, not guessed from mode bits (root, ACLs, read-only mounts): a file or folder
made for the test is removed at once; an existing report is opened for appending and left as is.
No check reads more than a key's first bytes: all of them take milliseconds.
"""

from __future__ import annotations

import os
import stat
import tempfile

from .plan import Plan, PlanError
from .transport.ssh_config_file import expand_home

KEY_READ_BYTES = 64 * 1024          # OpenSSH private keys are a few KiB
PUBLIC_KEY_PREFIXES = (b"ssh-", b"ecdsa-", b"sk-ssh-", b"sk-ecdsa-")


def _problem(exc: OSError) -> str:
    return exc.strerror or str(exc)


def check_private_key(path: str) -> None:
    """A private key file we can read: not missing, a folder, a device, a public key or text."""
    path = expand_home(path)                       # OpenSSH's ~ (passwd home), as the transport
    try:
        info = os.stat(path)
    except OSError as exc:
        raise PlanError(f"--private-key: {path}: {_problem(exc)}") from None
    if stat.S_ISDIR(info.st_mode):
        raise PlanError(f"--private-key: {path} is a folder, not a key file")
    if not stat.S_ISREG(info.st_mode):
        raise PlanError(f"--private-key: {path} is not a regular file")
    try:
        with open(path, "rb") as handle:
            head = handle.read(KEY_READ_BYTES)
    except OSError as exc:
        raise PlanError(f"--private-key: {path} cannot be read ({_problem(exc)})") from None
    text = head.lstrip()
    if text.startswith(PUBLIC_KEY_PREFIXES):
        raise PlanError(f"--private-key: {path} is a public key; give the private key "
                        f"(usually the same name without .pub)")
    if text.startswith(b"PuTTY-User-Key-File-"):
        raise PlanError(f"--private-key: {path} is a PuTTY key; convert it with "
                        f"`puttygen KEY -O private-openssh -o KEY.openssh`")
    if not (text.startswith(b"-----BEGIN ") and b"PRIVATE KEY-----" in text.split(b"\n", 1)[0]):
        raise PlanError(f"--private-key: {path} is not an SSH private key (no "
                        f"'-----BEGIN … PRIVATE KEY-----' first line)")


def check_known_hosts(path: str, flag: str = "--known-hosts") -> None:
    """A known_hosts file we can read, or none yet (it reads as empty; accept-new creates it): a
    folder or an unreadable file would otherwise fail every host. Opened without blocking (a FIFO)."""
    path = expand_home(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise PlanError(f"{flag}: {path}: {_problem(exc)}") from None
    if stat.S_ISDIR(info.st_mode):
        raise PlanError(f"{flag}: {path} is a folder, not a known_hosts file")
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
    except OSError as exc:
        raise PlanError(f"{flag}: {path} cannot be read ({_problem(exc)})") from None


def check_report_file(path: str, flag: str = "--output") -> None:
    """The report can be written there: an existing file opened for appending (left unchanged),
    else created and removed again in its folder."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise PlanError(f"{flag}: {path} is a folder; name a file in it")
    if not os.path.exists(path):
        if not os.path.isdir(folder):
            what = "is not a folder" if os.path.exists(folder) else "does not exist"
            raise PlanError(f"{flag}: {path}: the folder {folder} {what}")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    else:
        flags = os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK    # a FIFO without reader: ENXIO, no wait
    try:
        os.close(os.open(path, flags, 0o600))
    except OSError as exc:
        raise PlanError(f"{flag}: {path} cannot be written ({_problem(exc)})") from None
    if flags & os.O_EXCL:
        os.unlink(path)


def check_run_folder(path: str) -> None:
    """Captures can be stored under ``path``: it is a folder we can write in, or its nearest
    existing parent is (make_run_dir creates the missing ones)."""
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise PlanError(f"--run-dir: {path}: {existing} is a file, not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".rstfleet-check-", dir=existing))
    except OSError as exc:
        where = "" if existing == os.path.abspath(path) else f" (in {existing}, where it would be made)"
        raise PlanError(f"--run-dir: {path} cannot be written{where}: {_problem(exc)}") from None


def check_local_inputs(plan: Plan) -> Plan:
    """Every local input of one plan, or PlanError naming its option."""
    if plan.ssh.key_file:
        check_private_key(plan.ssh.key_file)
    for path in plan.ssh.known_hosts_files:
        check_known_hosts(path)
    for path, host in {h.known_hosts_file: h for h in plan.hosts if h.known_hosts_file}.items():
        check_known_hosts(path, f"{host.name}: UserKnownHostsFile")
    if plan.outputs.path:
        check_report_file(plan.outputs.path)
    captures = plan.phase2 is not None or "--capture" in plan.sweep.probe_options
    if captures:
        check_run_folder(plan.outputs.run_dir)
    return plan
