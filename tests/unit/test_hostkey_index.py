"""The indexed known_hosts (transport/hostkey_index.py) answers as paramiko's HostKeys does, on a
file with plain names, comma lists, `[host]:port` and names hashed by the real `ssh-keygen -H`."""

from __future__ import annotations

import subprocess

import paramiko
import pytest

from rstfleet.transport.hostkey_index import HostKeyIndex

NAMES = ["web1", "192.0.2.7", "[192.0.2.7]:2222", "db1", "db2", "[hashed.example]:2200", "hashed2"]


@pytest.fixture
def known_hosts(tmp_path):
    keys = []
    for i, kind in enumerate(("ed25519", "ecdsa", "ed25519", "ed25519")):
        subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(tmp_path / f"k{i}")], check=True)
        keys.append(" ".join((tmp_path / f"k{i}.pub").read_text().split()[:2]))
    plain = tmp_path / "plain"
    plain.write_text(f"web1 {keys[0]}\n192.0.2.7 {keys[1]}\n[192.0.2.7]:2222 {keys[2]}\n"
                     f"# a comment\ndb1,db2 {keys[3]}\nweb1 {keys[1]}\n")
    hashed = tmp_path / "hashed"
    hashed.write_text(f"[hashed.example]:2200 {keys[0]}\nhashed2 {keys[2]}\n")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(hashed)], check=True, capture_output=True)
    assert "hashed.example" not in hashed.read_text()
    return [str(plain), str(hashed)]


def test_every_name_finds_what_paramiko_finds(known_hosts):
    reference = paramiko.HostKeys()
    for path in known_hosts:
        reference.load(path)
    index = HostKeyIndex(known_hosts)
    for name in NAMES + ["unknown", "[web1]:22"]:
        expected = reference.lookup(name)
        found = index.lookup(name)
        if expected is None:
            assert found is None, name
        else:
            assert {k: v.get_base64() for k, v in found.items()} == \
                {k: expected[k].get_base64() for k in expected.keys()}, name


def test_a_key_accepted_during_the_run_is_found_afterwards(known_hosts, tmp_path):
    index = HostKeyIndex(known_hosts)
    key = paramiko.Ed25519Key.from_private_key_file(str(tmp_path / "k0"))
    assert index.lookup("[new.example]:22") is None
    index.add("[new.example]:22", key)
    assert index.lookup("[new.example]:22")["ssh-ed25519"].get_base64() == key.get_base64()


def test_a_line_that_is_not_a_key_is_skipped_as_openssh_skips_it(known_hosts):
    with open(known_hosts[0], "a") as handle:
        handle.write("web3 ssh-ed25519 not-base64!\nweb4\n")
    assert HostKeyIndex(known_hosts).lookup("web1") is not None
    assert HostKeyIndex(known_hosts).lookup("web3") is None
