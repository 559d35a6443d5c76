"""Playbooks: the shipped ones load as documented; every malformed one is refused with file:line."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rstfleet.playbook import CaptureStep, Play, PlaybookError, load_playbook

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "playbooks"

# fixture -> (line the error must name, words the message must contain)
MALFORMED = {
    "syntax-error.yml": (5, "YAML syntax error: while parsing a flow sequence started on line 4"),
    "single-mapping.yml": (2, "a playbook is a list of plays, not a single mapping"),
    "unknown-key.yml": (4, "unknown key 'windw' (did you mean 'window'?)"),
    "string-as-number.yml": (3, "window must be a number, not a string ('10')"),
    "bool-as-number.yml": (4, "window must be a number, not a boolean (true)"),
    "window-zero.yml": (3, "window must be > 0 and <= 3600, got 0"),
    "window-negative.yml": (4, "window must be > 0 and <= 3600, got -5"),
    "window-too-long.yml": (5, "window must be > 0 and <= 3600, got 3601"),
    "capture-too-long.yml": (6, "capture.duration 600 s is over 300 s"),
    "unknown-step.yml": (5, "step must be one of sweep, capture, owners, not 'captur' (did you mean 'capture'?)"),
    "capture-without-step.yml": (4, "capture settings are given but 'capture' is not in steps"),
    "missing-hosts.yml": (5, "play 2 has no 'hosts'"),
    "empty-hosts.yml": (3, "hosts must not be empty"),
    "fail-on-bogus.yml": (5, "thresholds.fail_on must be one of warn, crit, never, not 'sometimes'"),
    "forks-zero.yml": (3, "forks must be >= 1, got 0"),
    "duplicate-key.yml": (4, "duplicate key 'window' (first given on line 3)"),
    "capture-key-outside-capture.yml": (4, "unknown key 'duration' (it belongs under 'capture:')"),
    "warn-above-crit.yml": (3, "thresholds.warn (200/s) is above thresholds.crit (100/s)"),
    "packets-not-whole.yml": (5, "capture.packets must be a whole number, not a decimal number (100.5)"),
    "bad-host-regex.yml": (2, "invalid host pattern '~(web'"),
    "hosts-as-list.yml": (3, "hosts must be a string, not a list"),
    "play-not-a-mapping.yml": (3, "play 2 must be a mapping"),
}
VALID_FIXTURES = {"multi-play.yml"}


def refusal(path: Path | str) -> str:
    with pytest.raises(PlaybookError) as caught:
        load_playbook(str(path))
    return str(caught.value)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "play.yml"
    path.write_text(text, encoding="utf-8")
    return path


# --- the shipped playbooks ------------------------------------------------------------------

def test_shipped_sweep_playbook_sweeps_every_host_for_ten_seconds_with_default_thresholds():
    (play,) = load_playbook(str(ROOT / "playbooks" / "sweep.yml")).plays
    assert (play.hosts, play.window, play.capture, play.owners) == ("all", 10.0, None, False)
    assert (play.warn, play.crit, play.spike_factor, play.fail_on) == (10.0, 100.0, 10.0, "warn")
    assert (play.forks, play.become) == (None, False)


def test_shipped_triage_playbook_captures_60s_and_finds_owners_on_every_alerting_host_up_to_20():
    (play,) = load_playbook(str(ROOT / "playbooks" / "triage.yml")).plays
    assert (play.hosts, play.window, play.owners) == ("all", 10.0, True)
    assert play.capture == CaptureStep(duration=60.0, packets=10000, bytes=8 * 1024 * 1024, top=20)
    assert play.fail_on == "warn"


def test_shipped_ci_gate_playbook_uses_a_short_window_and_fails_only_on_crit():
    (play,) = load_playbook(str(ROOT / "playbooks" / "ci-gate.yml")).plays
    assert play.hosts == "all" and play.window < 10 and play.fail_on == "crit"
    assert (play.capture, play.owners) == (None, False)
    assert (play.warn, play.crit) == (10.0, 100.0)


def test_every_shipped_playbook_is_documented():
    docs = (ROOT / "docs" / "playbooks.md").read_text()
    for shipped in sorted((ROOT / "playbooks").glob("*.yml")):
        assert f"playbooks/{shipped.name}" in docs


# --- malformed playbooks are refused before any host is touched -------------------------------

@pytest.mark.parametrize("fixture", sorted(MALFORMED))
def test_malformed_playbook_is_refused_naming_file_line_and_problem(fixture):
    line, words = MALFORMED[fixture]
    path = FIXTURES / fixture
    message = refusal(path)
    assert message.startswith(f"{path}:{line}: "), message
    assert words in message


def test_every_fixture_is_either_checked_as_malformed_or_known_valid():
    assert {p.name for p in FIXTURES.glob("*.yml")} == set(MALFORMED) | VALID_FIXTURES


def test_playbook_error_is_a_value_error_so_the_cli_reports_it_as_a_usage_error():
    assert issubclass(PlaybookError, ValueError)


@pytest.mark.parametrize("text, line, words", [
    ("", 1, "empty playbook"),
    ("# only a comment\n", 1, "empty playbook"),
    ("[]\n", 1, "the playbook has no plays"),
    ("just text\n", 1, "a playbook is a list of plays, not a string ('just text')"),
    ("- hosts: all\n  window: .nan\n", 2, "window must be > 0"),
    ("- hosts: all\n  window: .inf\n", 2, "window must be > 0"),
    ("- hosts: all\n  window: 1e3\n", 2, "window must be a number, not a string ('1e3')"),
    ("- hosts: all\n  forks: 4.0\n", 2, "forks must be a whole number"),
    ("- hosts: all\n  forks: !!int abc\n", 2, "forks must be a whole number, cannot read 'abc'"),
    ("- hosts: all\n  become: 1\n", 2, "become must be true or false, not an integer (1)"),
    ("- hosts: all\n  name: 2024-01-01\n", 2, "name must be a string, not a timestamp value"),
    ("- hosts: all\n  steps: sweep\n", 2, "steps must be a list"),
    ("- hosts: all\n  steps: [sweep, capture, capture]\n", 2, "step 'capture' is listed twice"),
    ("- hosts: all\n  steps: [capture]\n  capture: {duration: 0.5}\n", 3, "capture.duration must be >= 1"),
    ("- hosts: all\n  steps: [capture]\n  capture:\n    duration: 4000\n    force: true\n", 4,
     "capture.duration must be >= 1 and <= 3600"),
    ("- hosts: all\n  steps: [capture]\n  capture: {bytes: 16777216}\n", 3,
     "capture.bytes must be >= 1024 and <= 8388608"),
    ("- hosts: all\n  steps: [capture]\n  capture: {top: 0}\n", 3, "capture.top must be >= 1"),
    ("- hosts: all\n  thresholds: {crit: 5}\n", 2, "thresholds.warn (10/s) is above thresholds.crit (5/s)"),
    ("- hosts: all\n  thresholds: {warn: 0}\n", 2, "thresholds.warn must be > 0"),
    ("- hosts: all\n  thresholds: {spike_factor: 0.5}\n", 2, "thresholds.spike_factor must be >= 1"),
    ("- hosts: all\n  thresholds: {fail_on: crt}\n", 2, "(did you mean 'crit'?)"),
    ("- hosts: all\n  thresholds: 5\n", 2, "thresholds must be a mapping, not an integer (5)"),
    ("- hosts: ':&!'\n", 1, "names no hosts"),
    ("- hosts: web[" + "9" * 5000 + "]\n", 1, "invalid host pattern 'web[999"),
    ("- hosts: \"web\\x1b[2J\"\n", 1, "hosts must not contain control characters"),
    ("- hosts: all\n  tasks: []\n", 2, "unknown key 'tasks' (expected one of name, hosts, steps"),
    ("base: &base {window: 5}\n", 1, "not a single mapping"),
    ("- hosts: all\n  <<: {window: 5}\n", 2, "keys of play 1 must be plain strings"),
    ("- hosts: all\n  [a]: 1\n", 2, "keys of play 1 must be plain strings, not a list"),
    ("- hosts: all\n---\n- hosts: db\n", 2, "expected a single document"),
    ("- hosts: all\n\twindow: 5\n", 2, "YAML syntax error"),
    ("- hosts: a\x01\n", 1, "YAML syntax error: unacceptable character #x0001"),
    ("[" * 5000, 1, "YAML syntax error"),
])
def test_malformed_text_is_refused_naming_the_line(tmp_path, text, line, words):
    path = write(tmp_path, text)
    message = refusal(path)
    assert message.startswith(f"{path}:{line}: "), message
    assert words in message


def test_a_playbook_that_is_not_utf8_is_refused_naming_the_line(tmp_path):
    path = tmp_path / "latin1.yml"
    path.write_bytes(b"- hosts: all\n  name: caf\xe9\n")
    assert refusal(path) == f"{path}:2: not UTF-8 text"


def test_a_missing_playbook_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "nope.yml"
    assert refusal(path).startswith(f"{path}: cannot read playbook")


def test_error_messages_escape_control_characters_from_the_file(tmp_path):
    message = refusal(write(tmp_path, '- hosts: all\n  "windw\\e]0;owned\\a": 5\n'))
    assert "\x1b" not in message and "\x07" not in message
    assert "unknown key 'windw\\x1b]0;owned\\x07'" in message


# --- what a valid playbook means ---------------------------------------------------------------

def test_plays_keep_their_order_their_starting_line_and_their_settings():
    first, second = load_playbook(str(FIXTURES / "multi-play.yml")).plays
    assert first == Play(name="Quick look at the web tier", hosts="web*:&prod:!web03", window=5.0,
                         forks=50, become=True, line=2)
    assert second == Play(name="db", hosts="db", owners=True, warn=2.5, crit=20.0, spike_factor=4.0,
                          fail_on="never", line=8)


def test_capture_step_without_settings_uses_the_default_bounds(tmp_path):
    (play,) = load_playbook(str(write(tmp_path, "- hosts: all\n  steps: [capture]\n"))).plays
    assert play.capture == CaptureStep() and play.owners is False


def test_empty_capture_settings_mean_the_defaults(tmp_path):
    (play,) = load_playbook(str(write(tmp_path, "- hosts: all\n  steps: [capture]\n  capture:\n"))).plays
    assert play.capture == CaptureStep()


def test_forced_capture_may_run_past_five_minutes(tmp_path):
    text = "- hosts: all\n  steps: [sweep, capture]\n  capture: {duration: 900, force: true}\n"
    (play,) = load_playbook(str(write(tmp_path, text))).plays
    assert play.capture == CaptureStep(duration=900.0, force=True)


def test_whole_numbers_are_accepted_where_seconds_or_rates_are_expected(tmp_path):
    text = "- hosts: all\n  window: 30\n  thresholds: {warn: 1, crit: 2, spike_factor: 3}\n"
    (play,) = load_playbook(str(write(tmp_path, text))).plays
    assert (play.window, play.warn, play.crit, play.spike_factor) == (30.0, 1.0, 2.0, 3.0)
    assert all(isinstance(v, float) for v in (play.window, play.warn, play.crit, play.spike_factor))


def test_a_play_without_a_name_is_named_after_its_hosts(tmp_path):
    (play,) = load_playbook(str(write(tmp_path, "- hosts: web*:&prod\n"))).plays
    assert play.name == "web*:&prod" and play.line == 1


# --- whatever the file holds, the only failure is a PlaybookError naming file and line -----------

KEYS = ["name", "hosts", "steps", "window", "capture", "thresholds", "forks", "become", "duration",
        "packets", "bytes", "top", "force", "warn", "crit", "spike_factor", "fail_on", "windw", "<<"]
SCALARS = (st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True)
           | st.sampled_from(["all", "sweep", "capture", "owners", "warn", "crit", "never", "", "~(x"])
           | st.text(max_size=12))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=4),
                      max_leaves=12)
PLAYS = st.lists(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6), max_size=3)
TOKENS = ["- ", "hosts", "window", "steps", "capture", ": ", ":", "\n", "\n  ", "\n    ", "[", "]", "{",
          "}", ",", "'", '"', "#", "&a", "*a", "!!int ", "!x ", "<<", "|", ">", "?", "---", "\t", "10",
          "-1", "true", "all", "sweep", "~", "\x00", "\ufeff", "é", "\r", "\x85"]
SNIPPETS = st.lists(st.sampled_from(TOKENS), max_size=40).map("".join)
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_only_playbook_errors(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "random.yml"
        path.write_bytes(data)
        try:
            load_playbook(str(path))
        except PlaybookError as exc:
            assert re.match(rf"{re.escape(str(path))}:[0-9]+: \S", str(exc)), str(exc)


@PROPERTY
@given(st.text(max_size=300) | SNIPPETS)
def test_random_text_only_ever_raises_playbook_error_with_a_line(text):
    assert_only_playbook_errors(text.encode("utf-8", "surrogatepass"))


@PROPERTY
@given(st.binary(max_size=300))
def test_random_bytes_only_ever_raise_playbook_error_with_a_line(data):
    assert_only_playbook_errors(data)


@PROPERTY
@given(PLAYS | VALUES)
def test_random_yaml_documents_only_ever_raise_playbook_error_with_a_line(document):
    assert_only_playbook_errors(yaml.safe_dump(document, allow_unicode=True).encode("utf-8"))
