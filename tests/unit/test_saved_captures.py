"""`rstfleet report` on saved results: the capture files are read back by evidence/captures.py
(analysis reads no files), and a capture that has moved is said, not silently dropped."""

from __future__ import annotations

import json
import shutil

from helpers import FIXTURES, hosts_by_name, run_cli

REPORT = FIXTURES / "reports" / "lab-sweep.json"
PCAP = FIXTURES / "pcap" / "real_any_linux_sll.pcap"


def _report_with_captures_at(tmp_path, pcap_path) -> str:
    document = json.loads(REPORT.read_text())
    for host in document["hosts"]:
        capture = (host.get("probe") or {}).get("capture")
        if capture and "path" in capture:
            capture["path"] = str(pcap_path)
    saved = tmp_path / "saved.json"
    saved.write_text(json.dumps(document))
    return str(saved)


def _rerendered(tmp_path, saved: str) -> dict:
    out = tmp_path / "again.json"
    proc = run_cli("report", saved, "--format", "json", "-o", str(out), "-q")
    assert proc.returncode in (0, 4, 8, 12), proc.stderr
    return hosts_by_name(json.loads(out.read_text()))


def test_a_saved_report_whose_pcaps_are_gone_says_so_in_the_hosts_notes(tmp_path):
    hosts = _rerendered(tmp_path, _report_with_captures_at(tmp_path, tmp_path / "moved" / "h02.pcap"))
    notes = hosts["h02"]["evidence"]["notes"]
    assert any("moved/h02.pcap is unavailable" in note and "missing from this report" in note
               for note in notes), notes
    assert "capture" not in hosts["h02"]["evidence"]["evidence_used"]


def test_a_saved_report_whose_pcaps_are_present_reads_them_back(tmp_path):
    pcap = tmp_path / "runs" / "h02.pcap"
    pcap.parent.mkdir()
    shutil.copyfile(PCAP, pcap)
    hosts = _rerendered(tmp_path, _report_with_captures_at(tmp_path, pcap))
    evidence = hosts["h02"]["evidence"]
    assert "capture" in evidence["evidence_used"]
    assert not any("unavailable" in note for note in evidence["notes"])


def test_a_run_folder_that_cannot_be_made_after_the_sweep_keeps_the_evidence_and_says_so(tmp_path):
    """The sweep already ran: a full disk or a folder gone read-only loses the pcap file, never
    the hosts' results (preflight_inputs.py catches the usual cases before the sweep)."""
    import base64
    from rstfleet.evidence.captures import store_captures
    from rstfleet.results import HostResult, Status
    pcap = PCAP.read_bytes()
    result = HostResult("web1", "192.0.2.1", Status.OK, "", {"capture": {"pcap_b64": base64.b64encode(pcap).decode()}})
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert store_captures([result], blocker / "runs", "20260101T000000Z") is None
    assert result.pcap == pcap and "pcap_b64" not in result.probe["capture"]
    assert result.capture_note.startswith(f"capture not saved: the run folder {blocker / 'runs'}/20260101T000000Z")
