"""Local mistakes are named as the user made them, before any host is touched.

Every case runs the real CLI against an inventory whose one host (198.18.255.254, in the lab's
range) nothing serves, with a 5 s connect timeout: an answer in under a second that names the
option, not the host, proves no connection was tried. Which files are private keys is decided by
OpenSSH's own ssh-keygen, the oracle, not by this test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import ROOT, run_cli
from rstfleet.plan import PlanError
from rstfleet.preflight_inputs import check_private_key

ADDRESS = "198.18.255.254"
# Root reads and writes through any mode bits; without these two capabilities it obeys them.
WITHOUT_DAC = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
               "--bounding-set=-dac_override,-dac_read_search", "--"]


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "hosts.ini"
    path.write_text(f"far ansible_host={ADDRESS}\n")
    return path


def keygen(path: Path, *options: str) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-N", "", "-C", "", "-f", str(path), *options],
                   check=True, capture_output=True)
    return path


def openssh_reads_a_private_key(path: Path) -> bool:
    """ssh-keygen -y derives the public key from a private one; a passphrase prompt means it is
    an encrypted private key (-P gives a wrong one, so it fails, saying so)."""
    done = subprocess.run(["ssh-keygen", "-y", "-P", "wrong", "-f", str(path)], capture_output=True, text=True)
    return done.returncode == 0 or "incorrect passphrase" in done.stderr


def refused(inventory: Path, *args: str, command: str = "sweep", prefix: list[str] | None = None) -> str:
    """Run the CLI; assert exit 2 with one line on stderr, nothing on stdout, before the 5 s connect
    timeout could have passed (measured ≈ 0.12 s on a quiet machine; the bound is loose on purpose:
    a loaded CI machine must not fail it, and any connection attempt would still exceed it)."""
    argv = [command, "-i", str(inventory), "--connect-timeout", "5", *args]
    started = time.monotonic()
    if prefix:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        done = subprocess.run(prefix + [sys.executable, "-m", "rstfleet", *argv], capture_output=True,
                              timeout=30, env=env, cwd=str(ROOT))
    else:
        done = run_cli(*argv, timeout=30)
    took = time.monotonic() - started
    stderr = done.stderr.decode()
    assert done.returncode == 2, (done.returncode, stderr)
    assert took < 4.0, took
    assert done.stdout == b""
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert ADDRESS not in stderr and "unreachable" not in stderr
    return stderr.strip()


def obeying_mode_bits() -> list[str] | None:
    """The prefix that makes this user obey file modes (only root needs one)."""
    return WITHOUT_DAC if os.geteuid() == 0 else None


# --- --private-key ---------------------------------------------------------------------------------

def test_a_missing_private_key_is_named_not_blamed_on_the_host(inventory, tmp_path):
    message = refused(inventory, "--private-key", str(tmp_path / "id_nope"))
    assert message == f"rstfleet: --private-key: {tmp_path / 'id_nope'}: No such file or directory"


def test_a_folder_given_as_private_key_is_refused(inventory, tmp_path):
    assert "--private-key: " in refused(inventory, "--private-key", str(tmp_path))
    assert "is a folder" in refused(inventory, "--private-key", str(tmp_path))


def test_a_public_key_given_as_private_key_says_which_file_to_give(inventory, tmp_path):
    key = keygen(tmp_path / "id_ed25519", "-t", "ed25519")
    public = Path(str(key) + ".pub")
    assert not openssh_reads_a_private_key(public)
    message = refused(inventory, "--private-key", str(public))
    assert message.startswith("rstfleet: --private-key: ") and "is a public key" in message
    assert "without .pub" in message


@pytest.mark.parametrize("content", [b"", b"hello\n", b"-----BEGIN CERTIFICATE-----\nMII\n", b"\x00\x01binary"])
def test_a_file_that_is_no_key_is_refused(inventory, tmp_path, content):
    path = tmp_path / "not-a-key"
    path.write_bytes(content)
    assert not openssh_reads_a_private_key(path)
    assert "is not an SSH private key" in refused(inventory, "--private-key", str(path))


def test_an_unreadable_private_key_is_refused(inventory, tmp_path):
    key = keygen(tmp_path / "id_rsa", "-t", "rsa", "-b", "1024")
    key.chmod(0)
    message = refused(inventory, "--private-key", str(key), prefix=obeying_mode_bits())
    assert message == f"rstfleet: --private-key: {key} cannot be read (Permission denied)"


@pytest.mark.parametrize("options", [
    ("-t", "ed25519"), ("-t", "rsa", "-b", "1024", "-m", "PEM"), ("-t", "ecdsa", "-m", "PKCS8"),
    ("-t", "ecdsa", "-b", "384"), ("-t", "ed25519", "-N", "passphrase"),
])
def test_every_private_key_openssh_reads_passes(tmp_path, options):
    path = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", "-N", "", "-C", "", "-f", str(path), *options], check=True,
                   capture_output=True)
    assert openssh_reads_a_private_key(path)
    check_private_key(str(path))                  # raises PlanError if refused


def test_a_fifo_given_as_private_key_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(PlanError, match="--private-key: .* is not a regular file"):
        check_private_key(str(fifo))


# --- --known-hosts and an inventory's UserKnownHostsFile -------------------------------------------

def test_a_folder_given_as_known_hosts_is_refused_once_not_per_host(inventory, tmp_path):
    message = refused(inventory, "--known-hosts", str(tmp_path))
    assert message == f"rstfleet: --known-hosts: {tmp_path} is a folder, not a known_hosts file"


def test_an_unreadable_known_hosts_is_refused(inventory, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text("")
    known.chmod(0)
    message = refused(inventory, "--known-hosts", str(known), prefix=obeying_mode_bits())
    assert message == f"rstfleet: --known-hosts: {known} cannot be read (Permission denied)"


def test_a_known_hosts_under_a_file_is_refused(inventory, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    message = refused(inventory, "--known-hosts", str(blocker / "known_hosts"), command="check")
    assert message == f"rstfleet: --known-hosts: {blocker / 'known_hosts'}: Not a directory"


def test_an_inventory_known_hosts_folder_is_refused_naming_the_host(tmp_path):
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(f"far ansible_host={ADDRESS} "
                         f"'ansible_ssh_common_args=-o UserKnownHostsFile={tmp_path}'\n")
    message = refused(inventory)
    assert message == f"rstfleet: far: UserKnownHostsFile: {tmp_path} is a folder, not a known_hosts file"


def test_a_missing_known_hosts_a_fifo_and_dev_null_pass_without_blocking(tmp_path):
    from rstfleet.preflight_inputs import check_known_hosts
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (tmp_path / "absent", fifo, Path("/dev/null")):
        check_known_hosts(str(path))               # raises PlanError if refused


# --- -o / --output ---------------------------------------------------------------------------------

def test_a_report_in_a_missing_folder_is_refused_before_the_sweep(inventory, tmp_path):
    target = tmp_path / "nope" / "x.json"
    message = refused(inventory, "--format", "json", "-o", str(target))
    assert message == f"rstfleet: --output: {target}: the folder {target.parent} does not exist"


def test_a_report_in_an_unwritable_folder_is_refused_and_leaves_nothing(inventory, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    message = refused(inventory, "-o", str(folder / "x.json"), prefix=obeying_mode_bits())
    assert message.startswith("rstfleet: --output: ") and "cannot be written (Permission denied)" in message
    assert list(folder.iterdir()) == []


def test_a_folder_given_as_report_file_is_refused(inventory, tmp_path):
    assert "is a folder" in refused(inventory, "-o", str(tmp_path))


def test_an_existing_report_that_would_be_overwritten_is_left_untouched_by_the_check(tmp_path):
    from rstfleet.preflight_inputs import check_report_file
    report = tmp_path / "old.json"
    report.write_text("yesterday's report")
    check_report_file(str(report))
    assert report.read_text() == "yesterday's report"


def test_a_playbook_gets_the_same_output_rule(inventory, tmp_path):
    book = tmp_path / "one.yml"
    book.write_text("- hosts: all\n  window: 1\n")
    target = tmp_path / "nope" / "gate.json"
    message = refused(inventory, "-o", str(target), str(book), command="run")
    assert message == f"rstfleet: --output: {target}: the folder {target.parent} does not exist"


# --- --run-dir -------------------------------------------------------------------------------------

def test_an_unwritable_run_folder_is_refused_before_a_triage(inventory, tmp_path):
    folder = tmp_path / "runs"
    folder.mkdir()
    folder.chmod(0o555)
    message = refused(inventory, "--run-dir", str(folder), command="triage", prefix=obeying_mode_bits())
    assert message == f"rstfleet: --run-dir: {folder} cannot be written: Permission denied"


def test_a_run_folder_under_a_file_is_refused(inventory, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    message = refused(inventory, "--capture", "60", "--run-dir", str(blocker / "runs"))
    assert message == f"rstfleet: --run-dir: {blocker / 'runs'}: {blocker} is a file, not a folder"


def test_a_missing_run_folder_is_fine_when_its_parent_is_writable(tmp_path):
    from rstfleet.preflight_inputs import check_run_folder
    check_run_folder(str(tmp_path / "a" / "b"))
    assert list(tmp_path.iterdir()) == []          # the check made nothing that stays


def test_re_rendering_saved_reports_gets_the_same_output_rule(tmp_path):
    target = tmp_path / "nope" / "week.html"
    done = run_cli("report", str(ROOT / "tests" / "fixtures" / "reports" / "lab-sweep.json"),
                   "--format", "html", "-o", str(target))
    assert done.returncode == 2
    assert done.stderr.decode().strip() == f"rstfleet: --output: {target}: the folder {target.parent} does not exist"
