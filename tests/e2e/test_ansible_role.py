"""The Ansible role ansible/roles/rstfleet_probe: same probe, same ranking as `rstfleet sweep`.

Without a lab (fast): the committed module is what `python -m tools.ansible_module` generates
from the current probe sources (a probe change without regeneration fails here), it embeds the
probe's exact bytes and runs them in-process, it works through Ansible's own module machinery
(`ansible -m rstfleet_probe` on localhost), and the role's envelopes classify Ansible's outcomes
into rstfleet's statuses.

With a lab (root, `-m lab`): ansible-playbook with the role on 5 lab hosts while two of them are
made to send resets, next to a native `rstfleet sweep` of the same hosts at the same time; then
`rstfleet report DIR` must give the same hosts, statuses, rank order of the injected hosts and
rates within ±20 %. Ansible's -vvv log must show one pipelined Python exec per host and no file
transfer, mkdir or rm; nothing may be left in the shared filesystem's ~/.ansible/tmp, /tmp or
/dev/shm. A host whose sshd is down is in the merged report as unreachable, not missing.

ansible-core is a test dependency: its absence is a failure, not a skip.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from helpers import ROOT, hosts_by_name, require_root_lab, run_cli
from tools import ansible_module
from rstfleet.saved import ENVELOPE_FAMILY, ENVELOPE_VERSION, load_results
from rstfleet.probe import probe_script
from rstfleet.results import Status, STATUSES, parse_probe_output

ANSIBLE_DIR = ROOT / "ansible"
ROLE = ANSIBLE_DIR / "roles" / "rstfleet_probe"
MODULE = ROLE / "library" / "rstfleet_probe.py"
ACTION = ROLE / "action_plugins" / "rstfleet_result.py"
BIN = Path(sys.executable).parent
WINDOW = 4.0
INJECTED = {"h02": 60.0, "h04": 20.0}  # resets/s, for the whole run


def ansible_tool(name: str) -> Path:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is missing: ansible-core is a test dependency "
                    f"({sys.executable} -m pip install ansible-core; scripts/test.sh installs the [test] extras)")
    return path


def ansible_env(tmp_path: Path, **extra: str) -> dict:
    """Only our ansible.cfg, controller state under tmp_path, nothing from the user's ANSIBLE_* env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    home = tmp_path / "ansible-home"
    env.update(ANSIBLE_CONFIG=str(ANSIBLE_DIR / "ansible.cfg"), ANSIBLE_PIPELINING="True",
               ANSIBLE_HOST_KEY_CHECKING="True",  # the lab inventory carries its known_hosts
               ANSIBLE_HOME=str(home), ANSIBLE_LOCAL_TEMP=str(home / "tmp"),
               ANSIBLE_SSH_CONTROL_PATH_DIR=str(tmp_path / "cp"), ANSIBLE_NOCOLOR="1",
               PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", PYTHONPATH=str(ROOT))
    env.update(extra)
    return env


def load_file_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the generated module --------------------------------------------------------------------

def test_committed_module_is_generated_from_the_current_probe_sources():
    assert MODULE.read_text(encoding="utf-8") == ansible_module.render(), (
        f"{MODULE.relative_to(ROOT)} is stale: the probe changed; run `{ansible_module.REGENERATE}`")
    check = subprocess.run([sys.executable, "-m", "tools.ansible_module", "--check"], cwd=ROOT,
                           capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert check.returncode == 0, check.stderr


def test_module_embeds_the_exact_probe_bytes_and_runs_them_in_process():
    ansible_tool("ansible")
    module = load_file_module(MODULE, "rstfleet_probe_module")
    assert module.PROBE_SCRIPT.encode("utf-8") == probe_script()
    import hashlib
    assert module.PROBE_SHA256 == hashlib.sha256(probe_script()).hexdigest()
    # run_probe installs signal handlers and an alarm: run it in a child, as Ansible would.
    code = ("import importlib.util, json, sys\n"
            f"spec = importlib.util.spec_from_file_location('m', {str(MODULE)!r})\n"
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
            "print(json.dumps([m.run_probe(['--window', '0.2']), m.run_probe(['--window', '-1'])]))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    (rc, out, err), (bad_rc, _, bad_err) = json.loads(proc.stdout)
    assert rc == 0 and err == ""
    document = parse_probe_output(out.encode())
    assert document["window"]["requested_s"] == 0.2
    assert bad_rc == 2 and "--window must be between" in bad_err


def test_module_runs_through_ansible_on_localhost(tmp_path):
    ansible = ansible_tool("ansible")
    env = ansible_env(tmp_path)
    args = [str(ansible), "localhost", "-i", "localhost,", "-c", "local", "-M", str(MODULE.parent),
            "-m", "rstfleet_probe", "-e", "ansible_python_interpreter=/usr/bin/python3"]
    good = subprocess.run(args + ["-a", "window=0.3"], capture_output=True, text=True, env=env, timeout=60)
    assert good.returncode == 0, good.stdout + good.stderr
    result = json.loads(good.stdout.split("=>", 1)[1])
    assert result["changed"] is False and result["rc"] == 0
    assert result["probe_sha256"] == load_file_module(MODULE, "m2").PROBE_SHA256
    parse_probe_output(json.dumps(result["probe"]).encode())
    bad = subprocess.run(args + ["-a", "window=-1"], capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode != 0 and "window must be between 0 and 3600" in bad.stdout


# --- envelopes: Ansible outcomes -> rstfleet statuses ------------------------------------------

@pytest.fixture(scope="module")
def plugin():
    ansible_tool("ansible")
    return load_file_module(ACTION, "rstfleet_result_action")


def test_envelope_schema_and_statuses_are_rstfleets(plugin):
    assert plugin.ENVELOPE_SCHEMA == f"{ENVELOPE_FAMILY}/{ENVELOPE_VERSION}"
    assert set(plugin.STATUSES) == set(STATUSES) - {Status.CANCELLED}


@pytest.mark.parametrize("result, status, reason", [
    ({"unreachable": True, "msg": "Task failed: Failed to connect to the host via ssh: ssh: connect to "
      "host 198.18.0.6 port 22: Connection refused"}, "unreachable", "Failed to connect to the host via ssh"),
    ({"unreachable": True, "msg": "Failed to connect to the host via ssh: Host key verification failed."},
     "host_key_rejected", "Host key verification failed"),
    ({"unreachable": True, "msg": "Failed to connect to the host via ssh: root@198.18.0.3: Permission "
      "denied (publickey)."}, "auth_failed", "Permission denied"),
    ({"unreachable": True, "msg": "Failed to connect to the host via ssh: Connection timed out during "
      "banner exchange"}, "timeout", "banner exchange"),
    ({"failed": True, "msg": "Missing sudo password"}, "become_failed", "Missing sudo password"),
    ({"failed": True, "msg": "Task failed: Module failed: MODULE FAILURE", "rc": 127,
      "module_stderr": "/bin/sh: 1: /usr/bin/python3: not found\n"}, "no_python", "not found"),
    ({"failed": True, "msg": "The task action timed out after 55 seconds.", "timedout": {"period": 55}},
     "timeout", "task timeout"),
    ({"failed": True, "msg": "probe exited 125: rstprobe: stopped early (signal 14); cleaned up", "rc": 125},
     "probe_error", "stopped early"),
    ({"skipped": True, "skip_reason": "Conditional result was False"}, "probe_error", "skipped"),
    ({}, "probe_error", "no result recorded"),
    (None, "probe_error", "no result recorded"),
    ({"changed": False}, "probe_error", "no probe document"),
])
def test_envelope_maps_ansible_outcomes_to_rstfleet_statuses(plugin, result, status, reason):
    envelope = plugin.rstfleet_envelope(result, "h01", "198.18.0.2", ["lab"], "2.19.0", "10")
    assert envelope["status"] == status and reason in envelope["reason"]
    assert envelope["probe"] is None and envelope["window_s"] == 10.0
    assert envelope["host"] == "h01" and envelope["groups"] == ["lab"]


def test_envelope_of_a_good_run_carries_the_probe_and_reason_is_bounded(plugin):
    probe = {"schema": 1, "kind": "rstfleet-probe"}
    envelope = plugin.rstfleet_envelope({"probe": probe, "elapsed_s": 4.01, "probe_sha256": "ab"}, "h01")
    assert envelope["status"] == "ok" and envelope["probe"] == probe and envelope["reason"] == ""
    assert envelope["address"] == "h01" and envelope["elapsed_s"] == 4.01
    assert envelope["collected_by"]["probe_sha256"] == "ab"
    long = plugin.rstfleet_envelope({"failed": True, "msg": "x\n" * 5000}, "h01")
    assert len(long["reason"]) <= plugin.MAX_REASON and "\n" not in long["reason"]


def test_result_file_names_are_safe_and_distinct(plugin):
    names = ["h01", "web-01.example.org", "a/b", "a_b", "../etc/passwd", ".hidden", "ünïcode", "a b"]
    files = [plugin.rstfleet_result_filename(n) for n in names]
    assert files[:3] == ["h01.json", "web-01.example.org.json", files[2]]
    assert len(set(files)) == len(files)
    assert all(re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]*\.json", f) for f in files)


# --- the lab: ansible-playbook vs rstfleet sweep -------------------------------------------------

def base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if not number:
            return out


@pytest.fixture(scope="module")
def ansible_lab():
    require_root_lab()
    ansible_tool("ansible-playbook")
    from rstfleet_lab import fleet as labmod
    with labmod.lab_context(5, "a" + base36(os.getpid())) as lab:
        yield lab


ROOT_HOME = Path(pwd.getpwnam("root").pw_dir)
WATCHED = (ROOT_HOME / ".ansible" / "tmp", Path("/tmp"), Path("/dev/shm"))


def ours(path: str) -> bool:
    """What this module or its AnsiballZ payload would be called on a host's disk."""
    return "rstfleet_probe" in path or "rstfleet-probe" in path


def listing() -> set[str]:
    """~/.ansible/tmp in full; /tmp and /dev/shm two levels deep (other tests' files are in there)."""
    seen = set()
    for top in WATCHED:
        depth = 99 if top.name == "tmp" and top.parent.name == ".ansible" else 2
        for dirpath, dirnames, filenames in os.walk(top):
            level = len(Path(dirpath).relative_to(top).parts)
            if level >= depth:
                dirnames[:] = []
            seen.update(os.path.join(dirpath, n) for n in dirnames + filenames)
    return seen


class Watcher(threading.Thread):
    """Polls /tmp and /dev/shm while a play runs: where does AnsiballZ put its payload, if anywhere?"""

    def __init__(self):
        super().__init__(daemon=True)
        self.seen: set[str] = set()
        self.stop = threading.Event()

    def run(self):
        while not self.stop.wait(0.05):
            for top in WATCHED[1:]:
                try:
                    self.seen.update(str(top / n) for n in os.listdir(top) if ours(n))
                except OSError:
                    pass


def playbook(lab, tmp_path: Path, out_dir: Path, window: float, *extra: str, env_extra=None):
    argv = [str(ansible_tool("ansible-playbook")), "-vvv", "-i", str(lab.inventory_path),
            str(ANSIBLE_DIR / "site.yml"), "-e", f"rstfleet_out_dir={out_dir}",
            "-e", f"rstfleet_window={window:g}", *extra]
    log = open(tmp_path / f"{out_dir.name}.log", "w")
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
                            env=ansible_env(tmp_path, **(env_extra or {}))), log


def exec_lines(log_text: str, address: str) -> list[str]:
    return [line for line in log_text.splitlines() if line.startswith(f"<{address}> ")]


def assert_one_pipelined_python_run(log_text: str, hosts, become: bool = False) -> None:
    """-vvv evidence: per host, one exec of Python (the module on stdin) and no file work at all."""
    for host in hosts:
        lines = exec_lines(log_text, host.address)
        execs = [line for line in lines if "SSH: EXEC" in line]
        assert execs, f"{host.name}: no ssh exec in the log"
        python = [line for line in execs if "python3" in line and "command -v" not in line]
        assert len(python) == 1, f"{host.name}: {len(python)} python execs: {python}"
        assert "TMPDIR=/dev/shm" in python[0] and "&& sleep 0" in python[0]
        assert ("BECOME-SUCCESS" in python[0] and "sudo" in python[0]) == become, python[0][-300:]
        for line in lines:
            assert not re.search(r"\bPUT\b|\bFETCH\b|mkdir|rm -f|chmod|AnsiballZ_|sftp|scp", line), \
                f"{host.name}: Ansible touched the host's disk: {line[:300]}"


def report_of(out_dir: Path, tmp_path: Path, expect_code: int) -> dict:
    out = tmp_path / f"{out_dir.name}-report.json"
    proc = run_cli("report", str(out_dir), "--format", "json", "-o", str(out))
    assert proc.returncode == expect_code, proc.stderr.decode()
    return json.loads(out.read_text())


@pytest.mark.lab
def test_role_gives_the_same_ranking_as_a_native_sweep_and_leaves_nothing(ansible_lab, tmp_path):
    from rstfleet_lab import inject_closed_port
    lab = ansible_lab
    before = listing()
    out_dir = tmp_path / "results"
    watcher = Watcher()
    play = sweep = None
    injectors = [inject_closed_port(lab.host(name).address, rate, 25.0) for name, rate in INJECTED.items()]
    try:
        time.sleep(1.0)  # injectors running before either window opens
        watcher.start()
        play, log = playbook(lab, tmp_path, out_dir, WINDOW)
        sweep = subprocess.Popen([sys.executable, "-m", "rstfleet", "sweep", "-i", str(lab.inventory_path),
                                  "--window", f"{WINDOW:g}", "--format", "json", "-o",
                                  str(tmp_path / "sweep.json"), "-q"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                                 env=dict(os.environ, PYTHONPATH=str(ROOT)))
        sweep_out, sweep_err = sweep.communicate(timeout=60)
        play.wait(timeout=90)
        log.close()
    finally:
        watcher.stop.set()
        for injector in injectors:
            injector.stop()
        for injector in injectors:
            injector.wait()
        for proc in (play, sweep):
            if proc is not None and proc.poll() is None:
                proc.kill()
    log_text = (tmp_path / "results.log").read_text()
    assert play.returncode == 0, log_text[-3000:]
    assert sweep.returncode == 4, sweep_err.decode()  # injected hosts over warn, everyone checked

    # One envelope per host, merged into the same report as the native sweep.
    assert sorted(p.name for p in out_dir.iterdir()) == [f"{h.name}.json" for h in lab.hosts]
    via_ansible = report_of(out_dir, tmp_path, expect_code=4)
    native = json.loads((tmp_path / "sweep.json").read_text())
    a_hosts, n_hosts = hosts_by_name(via_ansible), hosts_by_name(native)
    assert sorted(a_hosts) == sorted(n_hosts) == [h.name for h in lab.hosts]
    assert {h: e["status"] for h, e in a_hosts.items()} == {h: e["status"] for h, e in n_hosts.items()}
    assert all(e["status"] == "ok" for e in a_hosts.values())
    worst_first = sorted(INJECTED, key=INJECTED.get, reverse=True)
    for report in (via_ansible, native):
        assert [h["host"] for h in report["hosts"][:len(INJECTED)]] == worst_first
        assert report["window_s"] == WINDOW
    for name in lab.hosts:
        a_rate, n_rate = a_hosts[name.name]["resets_sent_per_s"], n_hosts[name.name]["resets_sent_per_s"]
        if name.name in INJECTED:
            assert a_rate == pytest.approx(n_rate, rel=0.2), (name.name, a_rate, n_rate)
            assert a_rate == pytest.approx(INJECTED[name.name], rel=0.2)
        else:
            assert a_rate < 1.0 and n_rate < 1.0, (name.name, a_rate, n_rate)
    envelope = json.loads((out_dir / "h02.json").read_text())
    assert envelope["schema"] == "rstfleet.hostresult/1" and envelope["address"] == lab.host("h02").address
    assert envelope["groups"] == ["lab"] and envelope["collected_by"]["engine"] == "ansible"
    assert envelope["probe"]["window"]["requested_s"] == WINDOW
    assert envelope["probe"]["probe_version"] == n_hosts["h02"]["probe"]["probe_version"]

    # Nothing copied, nothing made, nothing left on the hosts (they share this filesystem).
    assert_one_pipelined_python_run(log_text, lab.hosts)
    assert not [p for p in watcher.seen if p.startswith("/tmp/")], watcher.seen  # payload went to RAM
    left = sorted(p for p in listing() - before if ours(p))
    assert left == [], f"left on the hosts' filesystem: {left}"
    print(f"AnsiballZ payload seen during the run (removed after): {sorted(watcher.seen)}")


@pytest.mark.lab
def test_host_with_sshd_down_is_reported_unreachable_not_missing_with_become(ansible_lab, tmp_path):
    lab = ansible_lab
    out_dir = tmp_path / "down"
    lab.stop_sshd("h05")
    play = None
    try:
        play, log = playbook(lab, tmp_path, out_dir, 1.0, "--become",
                             env_extra={"ANSIBLE_BECOME_ALLOW_SAME_USER": "True"})  # root -> root via sudo
        play.wait(timeout=90)
        log.close()
    finally:
        if play is not None and play.poll() is None:
            play.kill()
        lab.start_sshd("h05")
    log_text = (tmp_path / "down.log").read_text()
    assert play.returncode == 0, log_text[-3000:]
    report = report_of(out_dir, tmp_path, expect_code=8)  # a host not checked
    hosts = hosts_by_name(report)
    assert sorted(hosts) == [h.name for h in lab.hosts]
    assert hosts["h05"]["status"] == "unreachable" and hosts["h05"]["rank"] is None
    assert "Connection refused" in hosts["h05"]["reason"] and lab.host("h05").address in hosts["h05"]["reason"]
    assert all(hosts[h.name]["status"] == "ok" for h in lab.hosts if h.name != "h05")
    results, window = load_results([str(out_dir)])
    assert window == 1.0 and len(results) == 5
    assert_one_pipelined_python_run(log_text, [h for h in lab.hosts if h.name != "h05"], become=True)
