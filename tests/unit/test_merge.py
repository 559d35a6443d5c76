"""rstfleet.saved: reports, Ansible host-result envelopes and directories merged into one ranking.

Fixtures in tests/fixtures/merge/ (regenerate with make_fixtures.py there): shard1-report.json is a
sweep report of h01..h03, ansible-run/ an Ansible run of h04..h06, and one file per error case.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers import hosts_by_name, run_cli
from rstfleet.saved import load_merged, load_results, merge_warnings
from rstfleet.results import Status

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "merge"
SHARD1 = str(FIX / "shard1-report.json")
RUN_DIR = str(FIX / "ansible-run")


def by_host(results):
    return {r.host: r for r in results}


def test_report_and_envelope_directory_merge_into_one_fleet():
    results, window = load_results([SHARD1, RUN_DIR])
    hosts = by_host(results)
    assert sorted(hosts) == ["h01", "h02", "h03", "h04", "h05", "h06"]
    assert {h: r.status for h, r in hosts.items()} == {
        "h01": "ok", "h02": "ok", "h03": "unreachable", "h04": "ok", "h05": "unreachable", "h06": "ok"}
    assert window == 10.0
    assert hosts["h04"].address == "198.18.0.5" and hosts["h04"].groups == ("lab",)
    assert hosts["h04"].probe["tcp"]["delta"]["OutRsts"] == 300
    assert "Connection refused" in hosts["h05"].reason and hosts["h05"].probe is None
    assert load_merged([SHARD1, RUN_DIR]).warnings == []


def test_directory_reads_only_json_files_in_name_order_and_skips_hidden(tmp_path):
    for name in ("h06.json", "h04.json", "h05.json"):
        shutil.copy(FIX / "ansible-run" / name, tmp_path / name)
    (tmp_path / "notes.txt").write_text("not a result")
    (tmp_path / ".h09.json.123.tmp").write_text("{half written")
    (tmp_path / ".hidden.json").write_text("{half written")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "h01.json").write_text("{}")  # not recursive
    merged = load_merged([str(tmp_path)])
    assert [r.host for r in merged.results] == ["h04", "h05", "h06"]
    assert merged.sources["h05"] == str(tmp_path / "h05.json")


def test_cli_report_ranks_merged_inputs_like_one_sweep(tmp_path):
    out = tmp_path / "merged.json"
    proc = run_cli("report", SHARD1, RUN_DIR, "--format", "json", "-o", str(out))
    assert proc.returncode == 12, proc.stderr.decode()  # warn hosts (4) + hosts not checked (8)
    report = json.loads(out.read_text())
    ranked = [h["host"] for h in report["hosts"] if h["rank"] is not None]
    assert ranked == ["h01", "h04", "h06", "h02"]
    assert [h["host"] for h in report["hosts"] if h["rank"] is None] == ["h03", "h05"]
    assert report["window_s"] == 10.0
    assert hosts_by_name(report)["h04"]["resets_sent_per_s"] == pytest.approx(30.0, rel=0.01)


def test_host_in_two_inputs_is_an_error_naming_both_files():
    dup = str(FIX / "dup-h02.json")
    with pytest.raises(ValueError) as err:
        load_results([SHARD1, dup])
    assert "'h02'" in str(err.value) and SHARD1 in str(err.value) and dup in str(err.value)
    assert "twice" in str(err.value)
    proc = run_cli("report", SHARD1, dup)
    assert proc.returncode == 2
    assert b"h02" in proc.stderr and b"dup-h02.json" in proc.stderr and b"shard1-report.json" in proc.stderr


def test_same_input_given_twice_is_an_error_not_a_double_count():
    with pytest.raises(ValueError, match=r"'h04' appears twice in .*h04\.json"):
        load_results([RUN_DIR, str(FIX / "ansible-run" / "h04.json")])


def test_host_twice_in_one_report_is_an_error(tmp_path):
    document = json.loads(Path(SHARD1).read_text())
    document["hosts"].append(dict(document["hosts"][0]))
    path = tmp_path / "twice.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match=r"appears twice in .*twice\.json"):
        load_results([str(path)])


@pytest.mark.parametrize("name, found, supported", [
    ("report-v2.json", "rstfleet.report/2", "rstfleet.report/1"),
    ("envelope-v9.json", "rstfleet.hostresult/9", "rstfleet.hostresult/1"),
])
def test_incompatible_schema_version_names_file_and_versions(name, found, supported):
    with pytest.raises(ValueError) as err:
        load_results([SHARD1, str(FIX / name)])
    message = str(err.value)
    assert name in message and found in message and supported in message


def test_foreign_or_broken_files_are_refused_with_their_name(tmp_path):
    with pytest.raises(ValueError, match="not-rstfleet.json.*not an rstfleet result"):
        load_results([str(FIX / "not-rstfleet.json")])
    bad = tmp_path / "cut.json"
    bad.write_text('{"schema": "rstfleet.hostresult/1", "host": ')
    with pytest.raises(ValueError, match=r"cut\.json: not JSON"):
        load_results([str(bad)])
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"host": "h\xe9"}')
    with pytest.raises(ValueError, match=r"latin\.json: not UTF-8"):
        load_results([str(latin)])
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(ValueError, match="not an rstfleet result"):
        load_results([str(listed)])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no \\*.json"):
        load_results([str(empty)])
    nameless = tmp_path / "nameless.json"
    nameless.write_text(json.dumps({"schema": "rstfleet.hostresult/1", "status": "ok"}))
    with pytest.raises(ValueError, match="no host name"):
        load_results([str(nameless)])


def test_unsupported_probe_schema_inside_an_envelope_makes_that_host_probe_error():
    results, _ = load_results([SHARD1, str(FIX / "probe-schema-2.json")])
    h07 = by_host(results)["h07"]
    assert h07.status == Status.PROBE_ERROR and h07.probe is None
    assert "probe schema 2" in h07.reason and "supported 1" in h07.reason
    assert by_host(results)["h01"].status == "ok"  # the others are untouched


@pytest.mark.parametrize("mutate, reason", [
    (lambda p: p["tcp"]["delta"].__setitem__("OutRsts", float("nan")), "tcp.delta.OutRsts is not an integer"),
    (lambda p: p["window"].__setitem__("measured_s", "ten"), "window.measured_s"),
    (lambda p: p.__setitem__("kind", "something-else"), "not an rstfleet probe document"),
    (lambda p: p.pop("tcp"), "field tcp is not an object"),
    (lambda p: p.__setitem__("deep", json.loads("[" * 40 + "]" * 40)), "deeper than 32"),
])
def test_envelope_probes_are_validated_like_live_probe_output(tmp_path, mutate, reason):
    envelope = json.loads((FIX / "ansible-run" / "h04.json").read_text())
    mutate(envelope["probe"])
    path = tmp_path / "h04.json"
    path.write_text(json.dumps(envelope))
    (result,), _ = load_results([str(path)])
    assert result.status == Status.PROBE_ERROR and reason in result.reason and result.probe is None


def test_report_hosts_are_validated_too(tmp_path):
    document = json.loads(Path(SHARD1).read_text())
    document["hosts"][0]["probe"]["schema"] = 3
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(document))
    results, _ = load_results([str(path)])
    assert by_host(results)["h01"].status == Status.PROBE_ERROR and "probe schema 3" in by_host(results)["h01"].reason


def test_ok_without_probe_and_unknown_status_become_probe_error(tmp_path):
    base = json.loads((FIX / "ansible-run" / "h05.json").read_text())
    (tmp_path / "a.json").write_text(json.dumps(dict(base, host="a1", status="ok", reason="")))
    (tmp_path / "b.json").write_text(json.dumps(dict(base, host="b1", status="exploded", reason="it blew up")))
    hosts = by_host(load_results([str(tmp_path)])[0])
    assert hosts["a1"].status == Status.PROBE_ERROR and "no probe document" in hosts["a1"].reason
    assert hosts["b1"].status == Status.PROBE_ERROR
    assert "unknown status 'exploded'" in hosts["b1"].reason and "it blew up" in hosts["b1"].reason


def test_inconsistent_windows_keep_going_with_the_most_common_and_warn():
    odd = str(FIX / "window-5s.json")
    merged = load_merged([SHARD1, RUN_DIR, odd])
    assert merged.window_s == 10.0 and len(merged.results) == 7
    (warning,) = merged.warnings
    assert "different windows" in warning and "5 s" in warning and "window-5s.json" in warning
    assert load_results([SHARD1, RUN_DIR, odd])[1] == 10.0
    assert merge_warnings([SHARD1, RUN_DIR, odd]) == merged.warnings


def test_window_of_an_envelope_comes_from_its_probe_else_the_envelope():
    assert load_results([str(FIX / "window-5s.json")])[1] == 5.0
    assert load_results([str(FIX / "ansible-run" / "h05.json")])[1] == 10.0  # unreachable: envelope's
    assert load_results([str(FIX / "probe-schema-2.json")])[1] == 10.0


def test_inputs_measured_hours_apart_warn_that_runs_may_be_mixed():
    merged = load_merged([RUN_DIR, str(FIX / "late-run.json")])
    assert any("180 min apart" in w and "late-run.json" in w for w in merged.warnings)
    assert len(merged.results) == 4


def test_report_of_a_merge_merges_again_unchanged(tmp_path):
    first = tmp_path / "first.json"
    assert run_cli("report", SHARD1, RUN_DIR, "--format", "json", "-o", str(first)).returncode == 12
    again, window = load_results([str(first)])
    original, _ = load_results([SHARD1, RUN_DIR])
    assert window == 10.0
    assert {r.host: (r.status, r.reason, r.probe) for r in again} == \
        {r.host: (r.status, r.reason, r.probe) for r in original}


def test_a_window_of_zero_or_none_is_unknown_not_a_window(tmp_path):
    document = json.loads(Path(SHARD1).read_text())
    document["window_s"] = 0.0  # what `report` writes when its inputs had no window
    document["hosts"] = [h for h in document["hosts"] if h["status"] != "ok"]
    path = tmp_path / "no-window.json"
    path.write_text(json.dumps(document))
    assert load_results([str(path)]) == (load_results([str(path)])[0], None)
    merged = load_merged([str(path), RUN_DIR])
    assert merged.window_s == 10.0 and merged.warnings == []
