"""Both ends of every reset, on the real kernel, through the real CLI (`sweep --trace` of a lab).

(a) h02 connects to a closed port of h01: h01's kernel sends (NO_SOCKET), h02 receives; the
    report pairs them by 4-tuple and names h01's cause.
(b) a real `iptables … -j REJECT --reject-with tcp-reset` in h01's namespace: h02 receives
    resets "from h01" that h01's TCP stack never sent (its OutRsts does not move, tcp_send_reset
    does not fire: DESIGN.md) — the report names a firewall or middlebox in front of h01.
(c) 4,000 resets in one window on one host (the probe used to keep 2,000 events): the counts
    per port equal OutRsts (± what the kernel says it lost), the sample is said to be a sample.

Run alone, under the machine's lab lock:
    flock /tmp/rstfleet-e2e.lock python -m pytest -q -p no:cacheprovider tests/e2e/test_both_ends_e2e.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from rstfleet_lab import inject_closed_port, lab_context

from helpers import ROOT, hosts_by_name, json_report, lab_leftovers, require_root_lab, wait_until_clean

pytestmark = pytest.mark.lab

WINDOW_S = 6
PORT = 21000 + os.getpid() % 1000         # closed on h01; this run's own (other labs may share the kernel)
FIREWALLED = 8443
REJECT = ["INPUT", "-p", "tcp", "--dport", str(FIREWALLED), "-j", "REJECT", "--reject-with", "tcp-reset"]


@pytest.fixture(scope="module")
def lab2():
    require_root_lab()
    with lab_context(2, "be" + str(os.getpid() % 10000)) as lab:
        yield lab


def sweep_while(lab, tmp_path, inject):
    """`rstfleet sweep --trace` of the whole lab; ``inject()`` runs once every host's probe is in its
    window. Returns (JSON report, the table printed on stdout)."""
    out = tmp_path / "report.json"
    proc = subprocess.Popen([sys.executable, "-m", "rstfleet", "sweep", "-i", str(lab.inventory_path), "--trace",
                             "--window", str(WINDOW_S), "--format", "json", "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(ROOT),
                            env=dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="300"))
    try:
        deadline = time.monotonic() + 20
        while {line.split(":")[0] for line in lab_leftovers(lab) if "--window" in line} != \
                {h.namespace for h in lab.hosts}:
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail("the probes did not start: " + proc.stderr.read().decode()[-500:])
            time.sleep(0.05)
        time.sleep(1.0)                       # python start, tracefs instance, first counter snapshot
        inject()
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode in (0, 4), stderr.decode()
    assert wait_until_clean(lab, 3.0) == []
    return json_report(out), stdout.decode()


def attempts_from_h02(lab, port, rate, duration):
    with inject_closed_port(lab.host("h01").address, rate=rate, duration=duration, port=port,
                            source_namespace=lab.host("h02").namespace) as injector:
        return injector.wait()


def pairs(report, verdict=None):
    return [p for p in report["fleet"]["both_ends"]["pairs"] if verdict in (None, p["verdict"])]


def test_a_closed_port_is_paired_with_the_senders_kernel_and_its_cause(lab2, tmp_path):
    sent = []
    report, table = sweep_while(lab2, tmp_path, lambda: sent.append(attempts_from_h02(lab2, PORT, 100.0, 0.5)))
    n = sent[0]
    hosts = hosts_by_name(report)
    h01, h02 = hosts["h01"], hosts["h02"]
    assert h01["probe"]["tcp"]["delta"]["OutRsts"] == n == h01["probe"]["trace"]["events"]
    assert h02["evidence"]["received"]["tier"] == "tracepoint"
    assert h02["evidence"]["received"]["resets"] == n == h02["probe"]["tcp"]["delta"]["AttemptFails"]
    assert h02["evidence"]["received"]["peers"] == [[lab2.host("h01").address, n]]
    [pair] = [p for p in pairs(report, "paired") if p["sender_port"] == PORT]
    assert (pair["receiver"], pair["sender"], pair["received"], pair["sent"]) == ("h02", "h01", n, n)
    assert pair["reasons"] == {"NO_SOCKET": n} and pair["cause"] == "closed_port"
    assert pair["matched_sample"] == n                     # every one paired by its exact 4-tuple
    assert -1000 < pair["delay_us"][0] <= pair["delay_us"][1] < 1000   # one kernel, one clock (measured: µs)
    assert f"h02's connections to h01:{PORT} are reset by h01's kernel: nothing listens on {PORT}" in table


def test_a_reject_rule_makes_resets_no_kernel_sent_and_the_report_names_a_firewall(lab2, tmp_path):
    h01 = lab2.host("h01")
    subprocess.run(["ip", "netns", "exec", h01.namespace, "iptables", "-A", *REJECT], check=True, timeout=30)
    try:
        sent = []
        report, table = sweep_while(lab2, tmp_path,
                                    lambda: sent.append(attempts_from_h02(lab2, FIREWALLED, 100.0, 0.5)))
    finally:
        subprocess.run(["ip", "netns", "exec", h01.namespace, "iptables", "-D", *REJECT], check=True, timeout=30)
    n = sent[0]
    hosts = hosts_by_name(report)
    assert n > 0 and hosts["h01"]["probe"]["tcp"]["delta"]["OutRsts"] == 0      # h01's TCP stack sent none
    assert hosts["h01"]["probe"]["trace"]["events"] == 0
    assert hosts["h02"]["evidence"]["received"]["resets"] == n                   # h02 got every one "from h01"
    [pair] = pairs(report, "not_sent_by_kernel")
    assert (pair["receiver"], pair["sender"], pair["sender_port"], pair["received"], pair["sent"]) == \
        ("h02", "h01", FIREWALLED, n, 0)
    assert "h01's OutRsts +0" in pair["evidence"][0]
    assert (f"h02's connections to h01:{FIREWALLED} are reset by something between or in front of h01 "
            f"(a firewall REJECT rule, a middlebox or spoofing), not by h01's TCP stack") in table


def test_four_thousand_resets_in_one_window_are_all_counted_and_the_sample_says_so(lab2, tmp_path):
    sent = []
    report, table = sweep_while(lab2, tmp_path, lambda: sent.append(attempts_from_h02(lab2, PORT + 1, 2000.0, 2.0)))
    n = sent[0]          # 4,000 unless the shared machine starves the injector (bounded by wall time)
    h01 = hosts_by_name(report)["h01"]
    trace, out_rsts = h01["probe"]["trace"], h01["probe"]["tcp"]["delta"]["OutRsts"]
    assert n > 2000 and out_rsts == n, (n, out_rsts)
    counted = {(port, reason): count for port, _, reason, count in trace["flows"]}[(PORT + 1, "NO_SOCKET")]
    assert out_rsts - trace["dropped"] <= counted <= out_rsts       # exact, but for what the kernel says it lost
    # Every event is in a counted flow; on a loaded machine one stray event of another flow (a
    # segment to a closed port answered by no reset the counter sees) was measured once: 4,001
    # events, 4,000 OutRsts, all 4,000 of the injected flow counted.
    assert trace["events"] == sum(flow[3] for flow in trace["flows"]) and trace["flows_cut"] == 0
    assert trace["events"] - counted <= 1, (trace["events"], counted, trace["flows"][:5])
    cause = h01["evidence"]["causes"][0]
    assert (cause["key"], cause["resets"], cause["share"]) == ("closed_port", out_rsts, 1.0)   # lost: from counters
    assert h01["evidence"]["top_ports"][0]["port"] == PORT + 1 and h01["evidence"]["top_ports"][0]["resets"] == counted
    assert trace["kept_sample"] == 1000 and len(trace["sample"]["sent"]) == 1000
    assert f"sample: 1,000 of {counted:,} traced resets sent kept" in table
    assert f"closed_port 100% ({out_rsts} resets)" in table
    if trace["dropped"]:
        assert f"the kernel's trace buffer lost {trace['dropped']:,} events" in table
    [pair] = [p for p in pairs(report) if p["sender_port"] == PORT + 1]
    assert pair["sent"] == counted and pair["matched_sample"] >= 500
    if trace["dropped"] == 0 and hosts_by_name(report)["h02"]["probe"]["trace"]["dropped"] == 0:
        assert pair["verdict"] == "paired" and pair["received"] == n and pair["matched_sample"] == 1000
