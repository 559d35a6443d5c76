"""OpenSSH parity with OpenSSH as the oracle: for every (file, host) of tests/fixtures/ssh_config/,
the connection plan rstfleet resolves equals what the real `ssh -G -F FILE HOST` prints for the same
fields, and the paths and ProxyCommand ssh really uses (read from `ssh -vvv` with a ProxyCommand
that never reaches the network) equal rstfleet's expansion.  Bad files are refused by both, and by
rstfleet's real command line with `file:line: problem` and exit 2 before any host is touched.

No network, no root: ssh -G only reads files; the -vvv runs use `ProxyCommand false` (or the
corpus's own `echo`).  HOME is a folder of the corpus for both ssh and rstfleet (Include reads
$HOME); `~` in paths is the passwd home for both, which the corpus only names, never writes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from helpers import FIXTURES, run_cli
from rstfleet.inventory import Host
from rstfleet.transport import SSHSettings
from rstfleet.transport import ssh_config as resolver_module
from rstfleet.transport.ssh_config import ConfigError, load_client_config
from rstfleet.transport.ssh_config_file import parse_hop
from rstfleet.transport.ssh_keywords import IGNORED, KEYWORDS, UNHONOURED, canonical, parse_ignored
from rstfleet.transport.target import preflight, resolve_target

SSH = shutil.which("ssh") or "/usr/bin/ssh"
CORPUS = FIXTURES / "ssh_config"
TEST_VAR = "from-the-environment"
FIELDS = ("hostname", "port", "user", "identityfile", "certificatefile", "identitiesonly",
          "userknownhostsfile", "globalknownhostsfile", "hostkeyalias", "stricthostkeychecking",
          "connecttimeout", "batchmode", "proxyjump", "proxycommand")

# OpenSSH's client is the oracle, a test dependency (apt-get install openssh-client): its absence
# fails these tests rather than skipping them.


def _cases(folder: Path = CORPUS) -> list[tuple[str, str]]:
    cases = []
    for path in sorted(folder.glob("*.conf")):
        hosts = path.read_text().splitlines()[0].removeprefix("# hosts:").split()
        cases += [(path.name, host) for host in hosts]
    return cases


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """The corpus copied with @DIR@ made absolute (files 0644, as ssh wants included files)."""
    where = tmp_path_factory.mktemp("ssh_config")
    shutil.copytree(CORPUS, where, dirs_exist_ok=True)
    for path in where.rglob("*"):
        if path.is_file():
            path.write_text(path.read_text().replace("@DIR@", str(where)))
            path.chmod(0o644)
    return where


@pytest.fixture
def env(corpus, monkeypatch) -> dict:
    monkeypatch.setenv("HOME", str(corpus / "home"))
    monkeypatch.setenv("RSTFLEET_TEST_VAR", TEST_VAR)
    return dict(os.environ)


def ssh_fields(argv: list[str], env: dict | None = None, only: tuple = FIELDS) -> dict[str, list[str]]:
    """`ssh -G …` output as {keyword: [values]} (a keyword printed several times keeps them all)."""
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=10)
    assert proc.returncode == 0, proc.stderr
    fields: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(" ")
        fields.setdefault(key, []).append(value)
    return {key: fields[key] for key in only if key in fields} if only else fields


def ssh_G(config: Path, host: str, env: dict) -> dict[str, list[str]]:
    return ssh_fields([SSH, "-G", "-F", str(config), host], env)


def as_ssh_prints(resolved) -> dict[str, list[str]]:
    """rstfleet's resolution in ssh -G's words (yes/no, 'none', one line for known-hosts files)."""
    yes_no = {True: "yes", False: "no"}
    fields = {"hostname": [resolved.hostname], "port": [str(resolved.port)], "user": [resolved.user],
              "identityfile": list(resolved.identity_files),
              "identitiesonly": [yes_no[resolved.identities_only]],
              "userknownhostsfile": [" ".join(resolved.user_known_hosts_files) or "none"],
              "globalknownhostsfile": [" ".join(resolved.global_known_hosts_files) or "none"],
              "stricthostkeychecking": [resolved.strict_host_key_checking],
              "connecttimeout": ["none" if resolved.connect_timeout is None else str(resolved.connect_timeout)],
              "batchmode": [yes_no[resolved.batch_mode]]}
    if resolved.certificate_files:
        fields["certificatefile"] = list(resolved.certificate_files)
    if resolved.host_key_alias:
        fields["hostkeyalias"] = [resolved.host_key_alias]
    if resolved.proxy_jump:
        *before, last = resolved.proxy_jump
        user, host, port = parse_hop(last)
        numeric = ":" in host or set(host) <= set("0123456789.")
        shown = (f"{user}@" if user else "") + (f"[{host}]" if numeric else host) + (f":{port}" if port else "")
        fields["proxyjump"] = [",".join(before + [shown])]
    elif resolved.proxy_command:
        fields["proxycommand"] = [resolved.proxy_command]
    return {key: fields[key] for key in FIELDS if key in fields}


def ssh_uses(config: Path, host: str, env: dict, own_proxy: bool) -> dict[str, list[str]]:
    """What ssh really opens and runs, from its -vvv log.  The ProxyCommand is `false` (nothing is
    reached) unless the corpus's own `echo` one is under test."""
    argv = [SSH, "-vvv", "-F", str(config), "-o", "BatchMode=yes"]
    argv += [] if own_proxy else ["-o", "ProxyCommand=false"]
    proc = subprocess.run(argv + [host, "true"], capture_output=True, text=True, env=env, timeout=10,
                          stdin=subprocess.DEVNULL)
    used: dict[str, list[str]] = {"identity": [], "certificate": [], "proxy": []}
    for line in proc.stderr.splitlines():
        for kind, marker in (("identity", "debug1: identity file "), ("certificate", "debug1: certificate file ")):
            if line.startswith(marker):
                path = line[len(marker):].rsplit(" type ", 1)[0]
                if not (kind == "identity" and used["identity"] and path == used["identity"][-1] + "-cert"):
                    used[kind].append(path)
        if line.startswith("debug1: Executing proxy command: "):
            used["proxy"].append(line.removeprefix("debug1: Executing proxy command: "))
    return used


@pytest.mark.parametrize("name,host", _cases())
def test_resolved_plan_equals_what_ssh_G_prints(corpus, env, name, host):
    resolved = load_client_config(str(corpus / name)).resolve(host)
    assert as_ssh_prints(resolved) == ssh_G(corpus / name, host, env)


@pytest.mark.parametrize("name,host", _cases())
def test_key_paths_and_proxy_command_equal_what_ssh_opens_and_runs(corpus, env, name, host):
    resolved = load_client_config(str(corpus / name)).resolve(host)
    own_proxy = bool(resolved.proxy_command) and not resolved.proxy_jump
    if own_proxy:
        assert resolved.proxy_command.startswith("echo "), "the corpus's ProxyCommands only echo"
    used = ssh_uses(corpus / name, host, env, own_proxy)
    assert used["identity"] == list(resolved.identity_paths())
    assert used["certificate"] == list(resolved.certificate_paths())
    assert used["proxy"] == [f"exec {resolved.expanded_proxy_command()}" if own_proxy else "exec false"]


def test_the_corpus_covers_what_the_plan_needs():
    assert len(list(CORPUS.glob("*.conf"))) >= 15 and len(_cases()) >= 60
    text = "\n".join(p.read_text().lower() for p in CORPUS.rglob("*.conf"))
    for needed in ("match host", "match originalhost", "match user", "match localuser", "match all",
                   "match final", "match canonical", "!", "include", "%h", "%p", "%r", "%d", "%c",
                   "identitiesonly", "userknownhostsfile", "globalknownhostsfile", "hostkeyalias",
                   "stricthostkeychecking", "connecttimeout", "proxyjump", "proxycommand none",
                   "identityfile none", "=", '"', "ignoreunknown"):
        assert needed in text, needed


def test_docs_name_every_directive_rstfleet_refuses_or_leaves_alone():
    doc = (FIXTURES.parent.parent / "docs" / "ssh.md").read_text()
    named = set(UNHONOURED) | {k for k in IGNORED if KEYWORDS[k] is not parse_ignored}
    assert {k for k in named if k not in doc} == set()


def test_every_keyword_the_local_ssh_prints_is_known():
    proc = subprocess.run([SSH, "-G", "-F", "/dev/null", "x"], capture_output=True, text=True, timeout=10)
    keywords = {line.split(" ", 1)[0] for line in proc.stdout.splitlines()}
    assert len(keywords) > 50
    assert {k for k in keywords if canonical(k) is None} == set()


# --- bad configurations: refused by ssh, and by rstfleet before any host -------------------------

BAD = sorted(p.name for p in (CORPUS / "bad").glob("*.conf"))


@pytest.mark.parametrize("name", BAD)
def test_bad_config_is_refused_by_ssh_and_by_rstfleet_with_file_line_and_exit_2(corpus, env, name):
    bad = corpus / "bad" / name
    expected = bad.read_text().splitlines()[0].removeprefix("# error: ")
    oracle = subprocess.run([SSH, "-G", "-F", str(bad), "h1"], capture_output=True, env=env, timeout=10)
    assert oracle.returncode == 255, "ssh itself accepts this file: it is not a bad-config case"
    started = time.monotonic()
    proc = run_cli("sweep", "-i", "h1,", "--ssh-config", str(bad), "--window", "0.1", timeout=20)
    elapsed = time.monotonic() - started
    stderr = proc.stderr.decode()
    assert proc.returncode == 2, stderr
    assert f"{bad}{expected}" in stderr or (expected in stderr and str(bad) in stderr), stderr
    assert "Traceback" not in stderr and proc.stdout == b""
    assert elapsed < 5.0, elapsed     # ~0.15 s idle; a generous bound on 2 shared, loaded cores


@pytest.mark.parametrize("name", BAD)
def test_bad_config_is_found_by_the_preflight_in_well_under_a_second(corpus, env, name):
    """The check Plan runs before any host (the CLI test above adds only Python's start-up)."""
    started = time.monotonic()
    with pytest.raises(ConfigError, match=str(corpus / "bad")):
        preflight(SSHSettings(ssh_config_path=str(corpus / "bad" / name)), [Host("h1", "h1")])
    assert time.monotonic() - started < 0.25


def test_an_explicit_ssh_config_that_does_not_exist_is_an_error_not_ignored():
    proc = run_cli("sweep", "-i", "h1,", "--ssh-config", "/nonexistent/ssh_config", "--window", "0.1")
    assert proc.returncode == 2
    assert b"--ssh-config: /nonexistent/ssh_config: no such file" in proc.stderr
    assert proc.stdout == b""


def test_an_included_file_writable_by_others_is_refused_as_ssh_refuses_it(corpus, env, tmp_path):
    included = tmp_path / "loose.conf"
    included.write_text("Port 2\n")
    included.chmod(0o666)
    config = tmp_path / "config"
    config.write_text(f"Include {included}\n")
    oracle = subprocess.run([SSH, "-G", "-F", str(config), "h1"], capture_output=True, env=env, timeout=10)
    assert oracle.returncode == 255 and b"Bad owner or permissions" in oracle.stderr
    with pytest.raises(ConfigError, match=f"{included}: bad owner or permissions"):
        load_client_config(str(config))


# --- OpenSSH's default files -------------------------------------------------------------------

def test_without_ssh_config_rstfleet_reads_the_same_default_files_as_ssh():
    """Whatever this machine's ~/.ssh/config and /etc/ssh/ssh_config hold, both agree."""
    env = dict(os.environ, HOME=resolver_module.user_home())
    config = load_client_config(None)
    for host in ("rstfleet-default-host", "198.18.0.7"):
        assert as_ssh_prints(config.resolve(host)) == ssh_fields([SSH, "-G", host], env)


def test_the_user_file_may_be_absent_and_the_system_file_is_read_after_it(tmp_path, monkeypatch):
    """A fake passwd home (the real one must not be written): the order is OpenSSH's."""
    system = tmp_path / "system_config"
    system.write_text("Port 2\nUser from-system\n")
    monkeypatch.setattr(resolver_module, "user_home", lambda: str(tmp_path))
    assert load_client_config(None, str(system)).resolve("h").port == 2
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text("Port 1\n")
    resolved = load_client_config(None, str(system)).resolve("h")
    assert (resolved.port, resolved.user) == (1, "from-system")
    explicit = tmp_path / "only"
    explicit.write_text("User only\n")
    resolved = load_client_config(str(explicit), str(system)).resolve("h")
    assert (resolved.port, resolved.user) == (22, "only")     # -F: the system file is not read


# --- what rstfleet does with it ------------------------------------------------------------------

def test_inventory_wins_over_command_line_which_wins_over_ssh_config(tmp_path):
    key, cli_key, inv_key = (tmp_path / n for n in ("config_key", "cli_key", "inv_key"))
    for path in (key, cli_key, inv_key):
        path.write_text("not a real key")
    config = tmp_path / "config"
    config.write_text(f"Host *\n  Port 2200\n  User cfg\n  IdentityFile {key}\n  IdentityFile {tmp_path}/absent\n"
                      f"  UserKnownHostsFile {tmp_path}/kh_cfg\n  ConnectTimeout 3\n  ProxyJump jump\n")
    loaded = load_client_config(str(config))
    plain = resolve_target(Host("h", "h"), SSHSettings(), loaded)
    assert (plain.port, plain.user, plain.key_files, plain.known_hosts_files, plain.connect_timeout) == \
        (2200, "cfg", [str(key)], [f"{tmp_path}/kh_cfg"], 3.0)
    cli = SSHSettings(user="cli", key_file=str(cli_key), known_hosts_files=(f"{tmp_path}/kh_cli",),
                      connect_timeout=7.0, connect_timeout_given=True)
    from_cli = resolve_target(Host("h", "h"), cli, loaded)
    assert (from_cli.user, from_cli.key_files[0], from_cli.known_hosts_files, from_cli.connect_timeout) == \
        ("cli", str(cli_key), [f"{tmp_path}/kh_cli"], 7.0)
    inventory = Host("h", "h", port=2300, user="inv", key_file=str(inv_key),
                     known_hosts_file=f"{tmp_path}/kh_inv", proxy_command="nc %h %p")
    from_inventory = resolve_target(inventory, cli, loaded)
    assert (from_inventory.port, from_inventory.user, from_inventory.key_files[:2]) == \
        (2300, "inv", [str(inv_key), str(cli_key)])
    assert from_inventory.known_hosts_files == [f"{tmp_path}/kh_inv", f"{tmp_path}/kh_cli"]
    assert (from_inventory.proxy_command, from_inventory.proxy_jump) == ("nc h 2300", ())


def test_proxyjump_hops_are_resolved_before_any_host_like_the_hosts_themselves(tmp_path, monkeypatch):
    """The hops stay hops (jump.py carries them over SSH channels, no local ssh); each jump host's
    own block is resolved in the preflight: its unfollowed directives join the run's one warning,
    and a path it cannot expand stops the run before any connection (exit 2)."""
    monkeypatch.delenv("RSTFLEET_UNSET_VAR", raising=False)
    config = tmp_path / "config"
    config.write_text("Host target\n  ProxyJump first,ann@second:2222\nHost second\n  ForwardAgent yes\n")
    settings = SSHSettings(ssh_config_path=str(config))
    target = resolve_target(Host("t", "target"), settings, load_client_config(str(config)))
    assert (target.proxy_jump, target.proxy_command) == (("first", "ann@second:2222"), None)
    warnings = preflight(settings, [Host("t", "target")])
    assert len(warnings) == 1 and f"ForwardAgent yes ({config}:4)" in warnings[0]
    config.write_text("Host target\n  ProxyJump first\nHost first\n  IdentityFile ${RSTFLEET_UNSET_VAR}/key\n")
    with pytest.raises(ConfigError, match=r"config:4: IdentityFile .*RSTFLEET_UNSET_VAR"):
        preflight(settings, [Host("t", "target")])


def test_match_exec_is_never_run_and_is_named_in_the_warning(tmp_path):
    marker = tmp_path / "ran"
    config = tmp_path / "config"
    config.write_text(f'Match exec "touch {marker}"\n  Port 2\nHost *\n  ForwardAgent yes\n'
                      f"  ForwardAgent no\n  ControlMaster no\n  LocalForward 8080 localhost:80\n")
    warnings = preflight(SSHSettings(ssh_config_path=str(config)), [Host("a", "a"), Host("b", "b")])
    assert not marker.exists()
    assert len(warnings) == 1
    assert f"Match exec ({config}:1: not run" in warnings[0]
    assert f"ForwardAgent yes ({config}:4)" in warnings[0]
    assert f"LocalForward 8080 localhost:80 ({config}:7)" in warnings[0]
    assert "ControlMaster" not in warnings[0]     # `no` is what rstfleet does anyway
    assert load_client_config(str(config)).resolve("a").port == 22


def test_unhonoured_directives_are_warned_once_per_run_by_the_real_cli(tmp_path):
    config = tmp_path / "config"
    config.write_text("Host *\n  ForwardAgent yes\n  CanonicalizeHostname yes\n  ProxyCommand false\n")
    proc = run_cli("sweep", "-i", "h1,h2,h3,", "--ssh-config", str(config), "--window", "0.1",
                   "--connect-timeout", "0.3", timeout=60)
    stderr = proc.stderr.decode()
    assert stderr.count("ssh_config directives rstfleet does not follow") == 1, stderr
    assert f"ForwardAgent yes ({config}:2)" in stderr and f"CanonicalizeHostname yes ({config}:3)" in stderr
    assert proc.returncode == 8      # the hosts were tried (through `false`) and not checked
