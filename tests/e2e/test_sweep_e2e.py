"""The end-to-end sweep, for real: the CLI, SSH to real sshds in namespace hosts, the real probe,
the real kernel counters, the ranked report and the exit code."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from rstfleet_lab import inject_closed_port

from helpers import hosts_by_name, json_report, run_cli

pytestmark = pytest.mark.lab

WINDOW = 5.0


def test_local_sweep_needs_no_inventory_and_reports_this_host(tmp_path):
    out = tmp_path / "local.json"
    proc = run_cli("sweep", "--window", "1", "--format", "json", "-o", str(out))
    assert proc.returncode in (0, 4), proc.stderr.decode()
    report = json_report(out)
    assert [h["host"] for h in report["hosts"]] == ["localhost"]
    assert report["hosts"][0]["status"] == "ok"
    assert report["hosts"][0]["resets_sent_per_s"] >= 0
    assert b"localhost" in proc.stdout and b"resets sent/s" in proc.stdout


def test_injected_rates_come_back_ranked_and_within_20_percent(lab5, tmp_path):
    rates = {"h02": 80.0, "h04": 30.0}
    out = tmp_path / "sweep.json"
    injectors = [inject_closed_port(lab5.host(name).address, rate, duration=WINDOW + 12)
                 for name, rate in rates.items()]
    try:
        time.sleep(1.0)  # the injectors reach their steady rate before the window opens
        started = time.monotonic()
        proc = run_cli("sweep", "-i", str(lab5.inventory_path), "--window", str(WINDOW),
                       "--format", "json", "-o", str(out))
        wall = time.monotonic() - started
    finally:
        for injector in injectors:
            injector.stop()
    report = json_report(out)
    assert proc.returncode == 4, proc.stderr.decode()     # h02 is over the warn threshold
    assert report["exit_code"] == 4
    ranked = [h["host"] for h in report["hosts"]]
    assert ranked[:2] == ["h02", "h04"], ranked
    by_name = hosts_by_name(report)
    for name, rate in rates.items():
        measured = by_name[name]["resets_sent_per_s"]
        assert abs(measured - rate) <= 0.2 * rate, (name, measured, rate)
    for quiet in ("h01", "h03", "h05"):
        assert by_name[quiet]["status"] == "ok"
        assert by_name[quiet]["resets_sent_per_s"] < 1.0, by_name[quiet]
    assert by_name["h02"]["verdict"] == "warn"
    assert [h["rank"] for h in report["hosts"]] == [1, 2, 3, 4, 5]
    assert wall < WINDOW + 10, wall
    table = proc.stdout.decode()
    assert table.index("h02") < table.index("h04") < table.index("h01")


def test_stopped_sshd_is_unreachable_and_the_sweep_still_finishes(lab5, tmp_path):
    out = tmp_path / "down.json"
    lab5.stop_sshd("h03")
    try:
        started = time.monotonic()
        proc = run_cli("sweep", "-i", str(lab5.inventory_path), "--window", "1",
                       "--format", "json", "-o", str(out))
        wall = time.monotonic() - started
    finally:
        lab5.start_sshd("h03")
    assert proc.returncode == 8, proc.stderr.decode()
    by_name = hosts_by_name(json_report(out))
    assert by_name["h03"]["status"] == "unreachable"
    assert "refused" in by_name["h03"]["reason"].lower()
    assert by_name["h03"]["rank"] is None
    assert all(by_name[h]["status"] == "ok" for h in ("h01", "h02", "h04", "h05"))
    assert json_report(out)["hosts"][-1]["host"] == "h03"   # unchecked hosts come after the ranking
    assert "Not checked" in proc.stdout.decode()
    assert wall < 15, wall


@pytest.mark.parametrize("engine", ["paramiko", "asyncssh"])
def test_changed_host_key_is_refused_by_default(lab5, tmp_path, engine):
    out = tmp_path / "key.json"
    lab5.regenerate_host_key("h05")
    try:
        proc = run_cli("sweep", "-i", str(lab5.inventory_path), "--window", "1", "--ssh-engine", engine,
                       "--format", "json", "-o", str(out), "--accept-new-host-keys")
    finally:
        lab5.trust_current_host_key("h05")
    by_name = hosts_by_name(json_report(out))
    assert proc.returncode == 8
    assert by_name["h05"]["status"] == "host_key_rejected"
    assert "CHANGED" in by_name["h05"]["reason"]
    assert by_name["h01"]["status"] == "ok"


@pytest.mark.parametrize("engine", ["paramiko", "asyncssh"])
def test_unknown_host_key_is_refused_then_accepted_only_when_asked(lab5, tmp_path, engine):
    host = lab5.host("h01")
    inventory = tmp_path / "inv.ini"
    inventory.write_text(f"h01 ansible_host={host.address} ansible_user=root "
                         f"ansible_ssh_private_key_file={lab5.key_path}\n")
    known = tmp_path / "known_hosts"
    known.write_text("")
    args = ["sweep", "-i", str(inventory), "--window", "0.5", "--known-hosts", str(known),
            "--format", "json", "--ssh-engine", engine]
    refused = run_cli(*args, "-o", str(tmp_path / "a.json"))
    entry = json_report(tmp_path / "a.json")["hosts"][0]
    assert refused.returncode == 8
    assert entry["status"] == "host_key_rejected"
    assert "ssh-keyscan" in entry["reason"] and "--accept-new-host-keys" in entry["reason"]
    assert known.read_text() == ""

    accepted = run_cli(*args, "--accept-new-host-keys", "-o", str(tmp_path / "b.json"))
    assert accepted.returncode == 0, accepted.stderr.decode()
    assert json_report(tmp_path / "b.json")["hosts"][0]["status"] == "ok"
    assert host.address in known.read_text()
    again = run_cli(*args, "-o", str(tmp_path / "c.json"))   # now known: verified, no flag needed
    assert again.returncode == 0


def test_a_tarpit_host_times_out_without_delaying_the_others(lab5, tmp_path):
    """A listener on loopback that accepts TCP and never sends an SSH banner."""
    tarpit = socket.socket()
    tarpit.bind(("127.0.0.1", 0))
    tarpit.listen(8)
    held = []
    stop = threading.Event()

    def hold():
        tarpit.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(tarpit.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    port = tarpit.getsockname()[1]
    inventory = tmp_path / "inv.yml"
    inventory.write_text(
        "all:\n  hosts:\n"
        f"    tarpit: {{ansible_host: 127.0.0.1, ansible_port: {port}}}\n"
        f"    h01: {{ansible_host: {lab5.host('h01').address}}}\n"
        "  vars:\n    ansible_user: root\n"
        f"    ansible_ssh_private_key_file: {lab5.key_path}\n"
        f"    ansible_ssh_common_args: -o UserKnownHostsFile={lab5.known_hosts_path}\n")
    out = tmp_path / "tarpit.json"
    try:
        started = time.monotonic()
        proc = run_cli("sweep", "-i", str(inventory), "--window", "1", "--connect-timeout", "2",
                       "--format", "json", "-o", str(out))
        wall = time.monotonic() - started
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        tarpit.close()
    by_name = hosts_by_name(json_report(out))
    assert by_name["tarpit"]["status"] == "timeout", by_name["tarpit"]["reason"]
    assert "banner" in by_name["tarpit"]["reason"]
    assert by_name["h01"]["status"] == "ok"
    assert by_name["h01"]["elapsed_s"] < 5
    assert proc.returncode == 8
    assert wall < 10, wall


def test_ssh_config_alias_user_and_identity_are_honoured(lab5, tmp_path):
    host = lab5.host("h04")
    config = tmp_path / "ssh_config"
    config.write_text(f"Host fourth\n  HostName {host.address}\n  User root\n"
                      f"  IdentityFile {lab5.key_path}\n  UserKnownHostsFile {lab5.known_hosts_path}\n")
    out = tmp_path / "alias.json"
    proc = run_cli("sweep", "-i", "fourth,", "--ssh-config", str(config), "--window", "0.5",
                   "--format", "json", "-o", str(out))
    entry = json_report(out)["hosts"][0]
    assert (entry["host"], entry["status"]) == ("fourth", "ok"), entry["reason"]
    assert proc.returncode == 0


def test_limit_pattern_selects_hosts_and_forks_bound_handshakes_not_windows(lab5, tmp_path):
    out = tmp_path / "limit.json"
    proc = run_cli("sweep", "-i", str(lab5.inventory_path), "-l", "h0*:!h05:!h01", "-f", "1",
                   "--window", "2", "--format", "json", "-o", str(out))
    report = json_report(out)
    assert proc.returncode == 0, proc.stderr.decode()
    assert sorted(h["host"] for h in report["hosts"]) == ["h02", "h03", "h04"]
    # One handshake at a time, yet one window: not three windows back to back.
    windows = [(h["probe"]["window"]["started_at"], h["probe"]["window"]["measured_s"]) for h in report["hosts"]]
    assert max(s for s, _ in windows) < min(s + m for s, m in windows), windows
    assert report["fleet_window"]["overlap"] and report["fleet_window"]["groups"] == 1


def test_no_matching_hosts_is_a_usage_error(lab5):
    proc = run_cli("sweep", "-i", str(lab5.inventory_path), "-l", "nosuchhost", "--window", "0.1")
    assert proc.returncode == 2
    assert b"match" in proc.stderr


def test_probe_command_prints_this_hosts_json():
    proc = run_cli("probe", "--window", "0.2")
    assert proc.returncode == 0, proc.stderr.decode()
    import json
    document = json.loads(proc.stdout)
    assert document["kind"] == "rstfleet-probe" and document["schema"] == 1
    assert "OutRsts" in document["tcp"]["delta"]
    assert set(document["sysctls"]) >= {"net.ipv4.tcp_syn_retries", "net.core.somaxconn"}


def test_two_shards_merged_equal_one_full_sweep_and_a_double_count_is_refused(lab5, tmp_path):
    import subprocess, sys, os
    from helpers import ROOT
    inv = str(lab5.inventory_path)
    with inject_closed_port(lab5.host("h03").address, 60.0, duration=WINDOW + 12):
        time.sleep(1.0)
        procs = [subprocess.Popen([sys.executable, "-m", "rstfleet", "sweep", "-i", inv, *args,
                                   "--window", str(WINDOW), "--format", "json", "-o", str(tmp_path / name), "-q"],
                                  cwd=str(ROOT), env=dict(os.environ, PYTHONPATH=str(ROOT)))
                 for name, args in (("s1.json", ["--shard", "1/2"]), ("s2.json", ["--shard", "2/2"]),
                                    ("full.json", []))]
        for proc in procs:
            proc.wait(timeout=60)
    shard_hosts = [{h["host"] for h in json_report(tmp_path / n)["hosts"]} for n in ("s1.json", "s2.json")]
    assert shard_hosts[0].isdisjoint(shard_hosts[1])
    assert shard_hosts[0] | shard_hosts[1] == {"h01", "h02", "h03", "h04", "h05"}
    merged = run_cli("report", str(tmp_path / "s1.json"), str(tmp_path / "s2.json"),
                     "--format", "json", "-o", str(tmp_path / "merged.json"), "-q")
    assert merged.returncode == 4, merged.stderr.decode()
    merged_report, full = json_report(tmp_path / "merged.json"), json_report(tmp_path / "full.json")
    assert [h["host"] for h in merged_report["hosts"]][0] == "h03" == full["hosts"][0]["host"]
    assert sorted((h["host"], h["status"]) for h in merged_report["hosts"]) == \
        sorted((h["host"], h["status"]) for h in full["hosts"])
    assert abs(merged_report["hosts"][0]["resets_sent_per_s"] - 60.0) <= 12.0
    twice = run_cli("report", str(tmp_path / "s1.json"), str(tmp_path / "s1.json"))
    assert twice.returncode == 2
    assert b"refus" in twice.stderr or b"twice" in twice.stderr or b"also" in twice.stderr


def test_playbooks_run_against_the_lab_and_a_bad_one_touches_no_host(lab5, tmp_path):
    out = tmp_path / "gate.json"
    proc = run_cli("run", "playbooks/ci-gate.yml", "-i", str(lab5.inventory_path), "--format", "json",
                   "-o", str(out), "-q")
    assert proc.returncode == 0, proc.stderr.decode()
    assert sorted(h["host"] for h in json_report(out)["hosts"]) == ["h01", "h02", "h03", "h04", "h05"]
    bad = tmp_path / "bad.yml"
    bad.write_text("- hosts: all\n  windw: 3\n")
    started = time.monotonic()
    proc = run_cli("run", str(bad), "-i", str(lab5.inventory_path))
    assert proc.returncode == 2
    assert f"{bad}:2:" in proc.stderr.decode() and "window" in proc.stderr.decode()
    assert time.monotonic() - started < 3          # rejected before any host was touched
