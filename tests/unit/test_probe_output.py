"""The probe's stdout is untrusted: only a valid probe document passes, everything else is a clear error."""

import json

import pytest
from hypothesis import given, settings, strategies as st

from rstfleet.sweep.pool import SweepSettings
from rstfleet.sweep.probe_run import classify
from rstfleet.results import ProbeOutputError, parse_probe_output
from rstfleet.transport import RunResult

GOOD = {"kind": "rstfleet-probe", "schema": 1, "window": {"measured_s": 10.0},
        "tcp": {"delta": {"OutRsts": 3}}}


def test_a_valid_document_passes():
    assert parse_probe_output(json.dumps(GOOD).encode())["tcp"]["delta"]["OutRsts"] == 3


@pytest.mark.parametrize("raw, message", [
    (b"", "printed nothing"),
    (b"not json", "not JSON"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b'{"a": "\x00"}', "NUL"),
    (b"[" * 100000 + b"]" * 100000, "far more JSON items"),
    (b"[[]]," * 1000000, "far more JSON items"),
    (json.dumps({"kind": "x"}).encode(), "not an rstfleet probe"),
    (json.dumps(dict(GOOD, schema=99)).encode(), "schema"),
    (json.dumps(dict(GOOD, window={"measured_s": "10"})).encode(), "finite number"),
    (json.dumps(dict(GOOD, tcp={"delta": {"OutRsts": 1e400}})).encode().replace(b"Infinity", b"1e999"), "integer"),
    (json.dumps(dict(GOOD, trace=1.5)).encode(), "field trace is not an object"),
    (json.dumps(dict(GOOD, trace={"available": True, "flows": [[1]]})).encode(), r"trace.flows\[0\]"),
    (json.dumps(dict(GOOD, tcpext_delta={"TCPAbortOnClose": "5"})).encode(), "TCPAbortOnClose"),
    (json.dumps(dict(GOOD, owners={"ports": {"80": {"owners": [1]}}})).encode(), "owners"),
])
def test_broken_or_hostile_output_is_refused_with_a_reason(raw, message):
    with pytest.raises(ProbeOutputError, match=message):
        parse_probe_output(raw)


def test_a_capture_path_sent_by_a_host_is_dropped_never_opened():
    """The controller alone names capture files; a host's "path" (/dev/zero, an fd number) is data."""
    doc = parse_probe_output(json.dumps(dict(GOOD, capture={"path": "/dev/zero"})).encode())
    assert "path" not in doc["capture"]
    kept = parse_probe_output(json.dumps(dict(GOOD, capture={"path": "/x.pcap"})).encode(), trusted_paths=True)
    assert kept["capture"]["path"] == "/x.pcap"


def test_every_fuzzer_regression_is_refused_or_harmless():
    """Replays fuzz/regressions: each minimal input that once crashed the controller."""
    import subprocess, sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    cases = sorted(str(p) for p in (root / "fuzz" / "regressions").glob("*.json"))
    assert cases
    proc = subprocess.run([sys.executable, str(root / "fuzz" / "reproduce.py"), "-q", *cases],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_deeply_nested_but_valid_json_is_refused():
    doc = dict(GOOD, extra=json.loads("[" * 50 + "]" * 50))
    with pytest.raises(ProbeOutputError, match="nests"):
        parse_probe_output(json.dumps(doc).encode())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_only_ever_raise_probe_output_error(raw):
    try:
        parse_probe_output(raw)
    except ProbeOutputError:
        pass


@pytest.mark.parametrize("run, status, words", [
    (RunResult(127, b"", b"bash: line 1: python3: command not found\n"), "no_python", "python3"),
    (RunResult(1, b"", b"sudo: a password is required\n"), "become_failed", "-K"),
    (RunResult(None, b"", b"", timed_out=True), "timeout", "deadline"),
    (RunResult(0, b"x" * 10, b"", truncated=True), "probe_error", "--max-output"),
    (RunResult(3, b"", b"Traceback...\nValueError: \x1b[31mboom\n"), "probe_error", "\\x1b"),
])
def test_failed_runs_are_classified_with_a_reason_that_says_what_to_do(run, status, words):
    got_status, reason, probe = classify(run, SweepSettings())
    assert (got_status, probe) == (status, None)
    assert words in reason
    assert "\x1b" not in reason
