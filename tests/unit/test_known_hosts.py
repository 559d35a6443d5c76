"""known_hosts read as OpenSSH reads it, with the real OpenSSH tools as the oracle: for every file
of the corpus (tests/fixtures/known_hosts/, made by generate.py there) and every name, rstfleet
finds the lines `ssh-keygen -l -F NAME -f FILE` finds (hashed, [host]:port, lists, wildcards,
negation, markers, CRLF), skips the lines OpenSSH skips, and judges keys as sshconnect.c does."""

from __future__ import annotations

import base64
import functools
import re
import shlex
import shutil
import socket
import subprocess
from pathlib import Path

import paramiko
import pytest

from helpers import FIXTURES
from rstfleet.inventory import Host
from rstfleet.transport import SSHSettings
from rstfleet.transport.host_keys import HostKeyGate, KnownHostsStore, known_hosts_paths, refusal
from rstfleet.transport.keyblob import _CURVES, _KINDS, kind_of, parse_key
from rstfleet.transport.known_hosts import KnownHosts, HostKeyVerdict, lookup_name, parse_text
from rstfleet.transport.ssh import HostKeyRefused, SSHTarget, VerifyHostKey, _preferring
from rstfleet.transport.target import resolve_target

CORPUS = FIXTURES / "known_hosts"
FILES = ("plain", "hashed", "patterns", "markers", "malformed", "crlf")
MARKER_WORD = {"": "", "@cert-authority": "CA", "@revoked": "REVOKED"}
EXTRA_NAMES = {
    "bad.example.com", "web1.example.com", "[web1.example.com]:2222", "[web1.example.com]:22",
    "[good.example.com]:2222", "198.18.0.1", "198.18.0.12", "198.18.1.10", "abc", "axbyc", "web1",
    "host1", "host9", "host-x", "nonexistent", "certhost", "x" * 1022 + "q", "mixed.a.example.com",
    "ab", "a", "upper.example.com", "gamma.example.com", "198.18.0.4", "indented.example.com"}


def load(name: str) -> tuple[KnownHosts, list[str]]:
    lines, problems = parse_text((CORPUS / name).read_bytes().decode("utf-8", "surrogateescape"), name)
    return KnownHosts(lines), problems


def corpus_names() -> list[str]:
    """Every plain name the corpus lists, and names that only wildcards or negations reach."""
    names = set(EXTRA_NAMES)
    for file in FILES:
        for raw in (CORPUS / file).read_text(errors="surrogateescape").splitlines():
            field = raw.lstrip(" \t").split()[:1]
            if field and not field[0].startswith(("#", "|", "@")):
                names.update(n.lstrip("!") for n in field[0].split(",")
                             if "*" not in n and "?" not in n and len(n) < 200)
    return sorted(n.lower() for n in names)


def keygen_finds(name: str, path: Path) -> list[tuple[int, str]]:
    """The lines `ssh-keygen -l -F` lists for a name (-l: keys loaded, as ssh loads them)."""
    out = subprocess.run(["ssh-keygen", "-l", "-F", name, "-f", str(path)], capture_output=True,
                         text=True, check=False).stdout
    return [(int(m.group(1)), m.group(2).strip())
            for m in re.finditer(r"^# Host .* found: line (\d+) ?(.*)$", out, re.M)]


corpus_finds = functools.lru_cache(maxsize=None)(keygen_finds)   # the corpus files never change


def key_of(known: KnownHosts, number: int):
    return next(l.key for l in known.lines if l.number == number)


@pytest.mark.parametrize("file", FILES)
def test_every_name_finds_the_lines_ssh_keygen_finds(file):
    known, _ = load(file)
    differences = []
    for name in corpus_names():
        ours = [(l.number, MARKER_WORD[l.marker.value]) for l in known.lookup(lookup_name(name))]
        theirs = corpus_finds(name, CORPUS / file)
        if ours != theirs:
            differences.append((name[:60], ours, theirs))
    assert differences == []


@pytest.mark.parametrize("file", FILES)
def test_the_lines_skipped_are_the_lines_openssh_skips(file, tmp_path):
    """`ssh-keygen -R` names the lines it finds invalid without loading keys; the others OpenSSH
    skips only when it loads the key, which `ssh-keygen -l -F` does for a line's own name."""
    _, problems = load(file)
    ours = {int(p.split(":")[1]) for p in problems}
    copy = tmp_path / "copy"
    shutil.copy(CORPUS / file, copy)
    removed = subprocess.run(["ssh-keygen", "-R", "no-such-host.invalid", "-f", str(copy)],
                             capture_output=True, text=True, check=False).stderr
    invalid_by_format = {int(n) for n in re.findall(r":(\d+): invalid line", removed)}
    assert invalid_by_format <= ours
    lines = (CORPUS / file).read_text(errors="surrogateescape").split("\n")
    for number in sorted(ours - invalid_by_format):
        field = lines[number - 1].lstrip(" \t").split()[0]
        names = corpus_names() if field.startswith("|") else [field.lower()]   # a hash hides its name
        for name in names:
            assert number not in [n for n, _ in corpus_finds(name, CORPUS / file)], (number, name)
    assert bool(ours) is (file != "patterns")


def test_each_skipped_line_is_named_by_file_and_line_with_its_reason():
    _, problems = load("malformed")
    assert "malformed:1: malformed hashed host field" in problems
    assert "malformed:9: unknown key type 'ssh-foo'" in problems
    assert any(p.startswith("malformed:17: RSA modulus of 512 bits") for p in problems)
    assert all(re.match(r"malformed:\d+: \S", p) for p in problems)


def test_hashed_file_finds_what_the_plain_file_finds_and_names_are_lowercased_like_ssh():
    plain, _ = load("plain")
    hashed, _ = load("hashed")
    for name in ("alpha.example.com", "UPPER.Example.COM", "[gamma.example.com]:2222", "198.18.0.2"):
        assert [l.key for l in hashed.lookup(lookup_name(name))] == \
               [l.key for l in plain.lookup(lookup_name(name))] != []


def test_a_revoked_key_is_refused_even_where_another_line_trusts_it():
    known, _ = load("markers")
    a = key_of(known, 4)                                  # alpha.example.com, also @revoked on line 2
    check = known.verify("alpha.example.com", 22, a)
    assert (check.verdict, check.line.number) == (HostKeyVerdict.REVOKED, 2)
    rsa = key_of(known, 3)                                # @revoked * : every host
    assert known.verify("anything.example.net", 2222, rsa).verdict is HostKeyVerdict.REVOKED


def test_a_host_only_a_cert_authority_vouches_for_is_refused_and_others_are_not_affected():
    known, _ = load("markers")
    beta_type, beta_blob = (CORPUS / "plain").read_text().split("\n")[5].split()[1:3]
    other = parse_key(beta_type, base64.b64decode(beta_blob))
    check = known.verify("web.example.com", 22, other)
    assert (check.verdict, check.line.number) == (HostKeyVerdict.CA_ONLY, 1)
    assert known.verify("web.example.net", 22, other).verdict is HostKeyVerdict.UNKNOWN
    assert known.verify("alpha.example.com", 22, other).verdict is HostKeyVerdict.CHANGED


def test_changed_unknown_negation_ports_and_alias_follow_sshconnect():
    plain, _ = load("plain")
    a, c, b = key_of(plain, 4), key_of(plain, 5), key_of(plain, 6)
    assert plain.verify("Alpha.Example.com", 22, c).verdict is HostKeyVerdict.TRUSTED
    assert plain.verify("alpha.example.com", 22, b).verdict is HostKeyVerdict.CHANGED      # any other key
    assert plain.verify("beta", 2222, b).verdict is HostKeyVerdict.TRUSTED               # bare name fallback
    assert plain.verify("beta", 2222, a).verdict is HostKeyVerdict.UNKNOWN               # …trusts only
    assert plain.verify("gamma.example.com", 22, a).verdict is HostKeyVerdict.UNKNOWN     # only :2222 known
    assert plain.verify("198.18.9.9", 2222, a, alias="alpha.example.com").verdict is HostKeyVerdict.TRUSTED
    assert plain.verify("beta", 2222, b, alias="nobody").verdict is HostKeyVerdict.UNKNOWN  # no fallback
    patterns, _ = load("patterns")
    assert patterns.verify("bad.example.com", 22, b).verdict is HostKeyVerdict.CHANGED   # !bad excludes B
    assert patterns.verify("good.example.com", 22, b).verdict is HostKeyVerdict.TRUSTED


def test_known_key_types_are_offered_first_and_revoked_ones_are_not():
    plain, _ = load("plain")
    assert plain.known_kinds("alpha.example.com", 22) == {("ed25519", None), ("ecdsa", "nistp256")}
    markers, _ = load("markers")
    assert markers.known_kinds("alpha.example.com", 22) == set()
    store, path = KnownHostsStore(), str(CORPUS / "plain")
    gate = HostKeyGate(store, SSHTarget("alpha.example.com", 22, "root", [], [path]), False)
    left, right = socket.socketpair()
    transport = _preferring(gate)(left)
    try:
        offered = transport.get_security_options().key_types
    finally:
        transport.close()
        right.close()
    assert set(offered[:2]) == {"ssh-ed25519", "ecdsa-sha2-nistp256"}
    assert [*offered] == gate.algorithms(paramiko.Transport._preferred_keys)
    rsa_host = HostKeyGate(store, SSHTarget("gamma.example.com", 2222, "root", [], [path]), False)   # RSA
    assert rsa_host.algorithms(paramiko.Transport._preferred_keys)[:2] == ["rsa-sha2-512", "rsa-sha2-256"]


def ssh_G_known_hosts(*options: str) -> str:
    shown = subprocess.run(["ssh", "-G", "-F", "none", *options, "db1.example"], capture_output=True,
                           text=True, check=True).stdout
    fields = dict(line.split(" ", 1) for line in shown.splitlines())
    return fields["userknownhostsfile"] + " " + fields["globalknownhostsfile"]


def test_the_files_read_are_those_ssh_G_names_and_known_hosts_keeps_the_global_ones():
    """--known-hosts is ssh's -o UserKnownHostsFile: the global files are still read."""
    default = resolve_target(Host("db1", "db1.example"), SSHSettings(user="u"), None)
    assert " ".join(known_hosts_paths(default)) == ssh_G_known_hosts()
    explicit = resolve_target(Host("db1", "db1.example"), SSHSettings(user="u", known_hosts_files=("/x/kh",)), None)
    assert " ".join(known_hosts_paths(explicit)) == ssh_G_known_hosts("-o", "UserKnownHostsFile=/x/kh")


def test_a_key_in_the_global_file_trusts_the_host(tmp_path):
    user, system = tmp_path / "user", tmp_path / "global"
    system.write_text((CORPUS / "plain").read_text())
    known = KnownHostsStore().known_hosts((str(user), str(system)))
    plain, _ = load("plain")
    assert known.verify("beta", 22, key_of(plain, 6)).verdict is HostKeyVerdict.TRUSTED


def test_a_bad_line_is_warned_once_per_run_however_many_hosts_meet_it(tmp_path, caplog):
    path = tmp_path / "kh"
    path.write_text((CORPUS / "markers").read_text())
    store = KnownHostsStore()
    with caplog.at_level("WARNING", logger="rstfleet.ssh"):
        for _ in range(3):
            known = store.known_hosts((str(path),))
            for host in ("alpha.example.com", "web.example.com", "x"):
                known.lookup(host)
        KnownHostsStore().known_hosts((str(path),))                      # a second store, same run
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 6 and len(set(warned)) == 6
    assert all(re.search(rf"{re.escape(str(path))}:\d+: .*; line skipped", w) for w in warned)


def test_accept_new_writes_the_line_ssh_writes_and_ssh_keygen_finds_it(tmp_path):
    path = tmp_path / "kh"
    corpus = (CORPUS / "plain").read_text().split("\n")
    path.write_text("other " + " ".join(corpus[3].split()[1:3]))          # no final newline
    rsa_type, rsa_blob = corpus[6].split()[1:3]                             # line 7: an RSA key
    blob = base64.b64decode(rsa_blob)
    store = KnownHostsStore()
    paths = (str(path),)
    store.known_hosts(paths)
    first = store.record(paths, "Web.Example.com", 2222, rsa_type, blob)
    again = store.record(paths, "web.example.com", 2222, rsa_type, blob)
    hashed = store.record(paths, "db", 22, rsa_type, blob, hashed=True)
    lines = path.read_text().split("\n")
    assert lines[1].startswith("[web.example.com]:2222 ssh-rsa AAAA") and len(lines) == 4   # newline repaired
    assert (first.verdict, again.verdict, first.line.number, hashed.line.number) == (HostKeyVerdict.TRUSTED,) * 2 + (2, 3)
    assert keygen_finds("[web.example.com]:2222", path) == [(2, "")]
    assert keygen_finds("db", path) == [(3, "")] and lines[2].startswith("|1|")
    assert store.known_hosts(paths).verify("db", 22, parse_key(rsa_type, blob)).verdict is HostKeyVerdict.TRUSTED


def test_paramiko_keys_are_read_as_their_public_lines(tmp_path):
    for kind, bits in (("ed25519", "256"), ("ecdsa", "384"), ("ecdsa", "521"), ("rsa", "2048")):
        key_file = tmp_path / f"{kind}{bits}"
        subprocess.run(["ssh-keygen", "-q", "-t", kind, "-b", bits, "-N", "", "-f", str(key_file)], check=True)
        loaded = paramiko.PKey.from_path(str(key_file))
        line_type, line_blob = key_file.with_suffix(".pub").read_text().split()[:2]
        assert parse_key(loaded.get_name(), loaded.asbytes()).identity == \
               parse_key(line_type, base64.b64decode(line_blob)).identity


def test_curve_constants_are_openssls():
    for openssl_name, curve in (("prime256v1", "nistp256"), ("secp384r1", "nistp384"), ("secp521r1", "nistp521")):
        text = subprocess.run(["openssl", "ecparam", "-name", openssl_name, "-param_enc", "explicit",
                               "-text", "-noout"], capture_output=True, text=True, check=True).stdout
        fields = {name: int(re.sub(r"[\s:]", "", value), 16) for name, value in
                  re.findall(r"^(Prime|B|Order):\s*\n((?:\s+[0-9a-f:]+\n)+)", text, re.M)}
        assert (fields["Prime"], fields["B"], fields["Order"]) == _CURVES[curve]


def test_the_policy_refuses_with_the_reason_and_trusts_silently(tmp_path):
    path = tmp_path / "kh"
    path.write_text((CORPUS / "markers").read_text())
    key_file = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key_file)], check=True)
    presented = paramiko.PKey.from_path(str(key_file))
    store = KnownHostsStore()
    target = SSHTarget("web.example.com", 22, "root", [], [str(path)])
    with pytest.raises(HostKeyRefused, match="cannot verify host certificates"):
        VerifyHostKey(store, target, accept_new=True).missing_host_key(None, "web.example.com", presented)
    with pytest.raises(HostKeyRefused, match="not in known_hosts.*--accept-new-host-keys"):
        VerifyHostKey(store, SSHTarget("new.example.net", 22, "root", [], [str(path)]), False) \
            .missing_host_key(None, "new.example.net", presented)
    VerifyHostKey(store, SSHTarget("new.example.net", 22, "root", [], [str(path)]), True) \
        .missing_host_key(None, "new.example.net", presented)
    assert path.read_text().rstrip().endswith(presented.get_base64())


def test_refusal_suggestions_are_paste_safe():
    known, _ = load("markers")
    check = known.verify("x;touch /tmp/p", 2200, key_of(known, 4))
    reason = refusal(check, "ssh-ed25519 SHA256:x", "x;touch /tmp/p", 2200, "/k h/known")
    command = reason.split("to trust it: ")[1].split(" (after")[0]
    assert shlex.split(command) == ["ssh-keyscan", "-p", "2200", "x;touch /tmp/p", ">>", "/k h/known"]
    # Behind a jump host the scan runs there: the remote shell parses its command once more.
    behind = refusal(check, "ssh-ed25519 SHA256:x", "x;touch /tmp/p", 2200, "/k h/known", via="o p@jump:2222")
    argv = shlex.split(behind.split("to trust it: ")[1].split(" (after")[0])
    assert argv[:4] == ["ssh", "-p", "2222", "o p@jump"] and argv[5:] == [">>", "/k h/known"]
    assert shlex.split(argv[4]) == ["ssh-keyscan", "-p", "2200", "x;touch /tmp/p"]


def test_every_key_type_this_openssh_knows_is_known():
    listed = subprocess.run(["ssh", "-Q", "HostKeyAlgorithms"], capture_output=True, text=True,
                            check=True).stdout.split()
    assert [name for name in listed if kind_of(name) is None or name not in _KINDS] == []


def test_a_key_that_cannot_be_recorded_is_trusted_for_this_run_with_one_warning(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")
    paths = (str(blocker / "known_hosts"),)
    rsa_type, rsa_blob = (CORPUS / "plain").read_text().split("\n")[6].split()[1:3]
    store = KnownHostsStore()
    with caplog.at_level("WARNING", logger="rstfleet.ssh"):
        check = store.record(paths, "db", 22, rsa_type, base64.b64decode(rsa_blob))
    assert check.verdict is HostKeyVerdict.TRUSTED
    assert [r.getMessage() for r in caplog.records] == [
        f"known_hosts: {paths[0]}: cannot read (Not a directory); file skipped",
        f"known_hosts: {paths[0]}: cannot record new host keys (Not a directory); they are trusted for this run only"]
    assert store.known_hosts(paths).verify("db", 22, check.line.key).verdict is HostKeyVerdict.TRUSTED
