"""Suggested commands are safe to paste: hostile probe documents go through every format, each
suggestion is read back as a person would copy it, and a shell's own word splitting (shlex, then
real bash with stub tools) proves it is exactly the intended command and nothing else.

Hostile here: peers, ports, owners and host names carrying ; $( ) ` | & > newlines, quotes and
unicode. A peer or port that is not what it claims makes the whole probe document `probe_error`
(rstfleet/probe/schema.py); hosts and owners are text and may only ever show up escaped in a
comment. evidence/next_steps.py says how the lines are built.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

from rstfleet.analysis import Thresholds, assess
from rstfleet.evidence.causes import Cause, HostEvidence, PortInfo
from rstfleet.evidence.next_steps import host_label, valid_peer, valid_port
from rstfleet.report import FORMATS, render
from rstfleet.results import HostResult, Status
from rstfleet.sweep.pool import SweepSettings
from rstfleet.sweep.probe_run import classify
from rstfleet.transport import RunResult

from report_parsers import parse_prometheus

ALLOWED = {"lsof", "tcpdump", "ss", "head"}      # the only commands rstfleet ever suggests
RST = "tcp[tcpflags] & (tcp-rst) == (tcp-rst)"
FIND = ["tcpdump", "-i", "any", "-n", "-c", "200", RST]
INJECTIONS = ["198.18.0.1;touch pwned", "$(touch pwned)", "`touch pwned`", "198.18.0.1|touch pwned",
              "198.18.0.1&&touch pwned", "198.18.0.1\ntouch pwned", "198.18.0.1>pwned", "198.18.0.1'",
              '198.18.0.1"', "１９８.18.0.1", "fe80::1%eth0;touch pwned", "198.18.0.1 -w pwned",
              "-w/tmp/pwned", "198.18.0.1\u202e"]
HOSTILE_TEXT = "x;touch pwned $(touch pwned) `touch pwned` | & >pwned\n'\"ü\u202e\x1b[2J"


def _document(flows: list, out_rsts: int, owners: dict | None = None) -> dict:
    document = {"kind": "rstfleet-probe", "schema": 1, "window": {"measured_s": 1.0, "requested_s": 1.0},
                "tcp": {"delta": {"OutRsts": out_rsts}}, "tcpext_delta": {}, "sysctls": {},
                "facts": {"hostname": HOSTILE_TEXT, "addresses": ["198.18.0.2"]}}
    if flows:
        document["trace"] = {"available": True, "events": out_rsts, "flows": flows}
    if owners:
        document["owners"] = {"method": "lsof", "ports": owners}
    return document


OWNER = {"9": {"listening": True, "owners": [{"pid": 1, "command": HOSTILE_TEXT, "user": HOSTILE_TEXT}]}}
# (cause made by the document, document, the one command it must suggest) — every cause, and
# peers written the way a kernel may print them (upper case, IPv4-mapped): shown canonical.
CASES = [
    ("closed_port", _document([[9, "198.18.0.1", "NO_SOCKET", 100]], 100, OWNER),
     ["lsof", "-i:9", "-P", "-n"]),
    ("port_scan", _document([[30000 + i, "2001:DB8::1", "NO_SOCKET", 10] for i in range(12)], 120),
     ["tcpdump", "-i", "any", "-n", "host", "2001:db8::1"]),
    ("syn_reset_attack", _document([[25, f"198.18.1.{i}", "NO_SOCKET", 2] for i in range(1, 61)], 120),
     ["tcpdump", "-i", "any", "-n", "tcp[tcpflags] & tcp-syn != 0 and dst port 25"]),
    ("aborted_connection", _document([[8080, "::ffff:198.18.0.7", "TCP_ABORT_ON_CLOSE", 50]], 50),
     ["ss", "-tnp", "( sport = :8080 )"]),
    ("half_open", _document([[443, "::FFFF:198.18.0.8", "TCP_FLAGS", 40]], 40),
     ["tcpdump", "-i", "any", "-n", "host", "198.18.0.8"]),
    ("time_wait_assassination", _document([[443, "198.18.0.9", "TCP_TIMEWAIT_SOCKET", 40]], 40),
     ["ss", "-tan", "state", "time-wait", "( sport = :443 )"]),
    ("listen_queue_full", _document([[80, "198.18.0.5", "INVALID_SYN", 40]], 40),
     ["ss", "-ltn", "( sport = :80 )"]),
    ("buffer_overflow", _document([[80, "198.18.0.5", "TCP_ABORT_ON_MEMORY", 40]], 40),
     ["head", "/proc/net/sockstat", "/proc/sys/net/ipv4/tcp_mem"]),
    ("other", _document([[80, "198.18.0.5", "SOME_NEW_REASON", 40]], 40), FIND),
    ("closed_port", _document([], 40), FIND),                  # counters only: no port, no peer
    ("half_open", _document([[0, "198.18.0.3", "TCP_FLAGS", 40]], 40),   # port 0 is data, not a port
     ["tcpdump", "-i", "any", "-n", "host", "198.18.0.3"]),
]
REFUSED = ([("trace.flows[0][1]", _document([[9, peer, "NO_SOCKET", 50]], 50)) for peer in INJECTIONS]
           + [("trace.flows[0][0]", _document([[port, "198.18.0.1", "NO_SOCKET", 50]], 50))
              for port in (70000, -1, "9;touch pwned", True)]
           + [("owners.ports.", _document([[9, "198.18.0.1", "NO_SOCKET", 50]], 50, {key: {"listening": False}}))
              for key in ("9;touch pwned", "٩", "99999")])


def _name(index: int) -> str:
    """Distinct hostile inventory names (the inventory is local input, but still only ever data)."""
    return f"h{index:02d}{HOSTILE_TEXT}" if index % 2 else f"h{index:02d}"


def _results(documents: list[dict]) -> list[HostResult]:
    """What the sweep makes of each host's stdout: the pool's own classify() (schema included)."""
    results = []
    for index, document in enumerate(documents):
        status, reason, probe = classify(RunResult(0, json.dumps(document).encode(), b""), SweepSettings())
        results.append(HostResult(_name(index), f"198.18.2.{index + 1}", status, reason, probe, 1.0,
                                  ("web",)))
    return results


@pytest.fixture(scope="module")
def sweep():
    documents = [document for _, document, _ in CASES] + [document for _, document in REFUSED]
    assessments = assess(_results(documents), Thresholds())
    meta = {"window_s": 1.0, "wall_s": 1.2, "exit_code": 12}
    expected = {_name(i): argv for i, (_, _, argv) in enumerate(CASES)}
    return assessments, {fmt: render(fmt, assessments, Thresholds(), meta) for fmt in FORMATS}, expected


# --- reading each format back as a person copies from it ----------------------------------------

def _from_table(text: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"^  next {2,}(.*)$", text, re.M)]


def _from_markdown(text: str) -> list[str]:
    """The rendered text of each 'Next steps' bullet, which must be one code span (CommonMark)."""
    lines, taking = [], False
    for line in text.splitlines():
        if line == "Next steps:":
            taking = True
        elif taking and line.startswith("- "):
            span = re.fullmatch(r"- (`+)(.+?)\1", line)
            assert span and "`" * len(span.group(1)) not in span.group(2), line
            content = span.group(2)
            if content.startswith(" ") and content.endswith(" ") and content.strip():
                content = content[1:-1]
            lines.append(content)
        elif taking and line.startswith("#"):
            taking = False
    return lines


class _HTMLCommands(HTMLParser):
    """The text content of <span class="cmd"> in each <li> whose label is 'next'."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.commands, self.label, self.where, self.text = [], "", None, []

    def handle_starttag(self, tag, attrs):
        if tag == "span" and dict(attrs).get("class") in ("label", "cmd"):
            self.where, self.text = dict(attrs)["class"], []

    def handle_endtag(self, tag):
        if tag == "span" and self.where:
            if self.where == "label":
                self.label = "".join(self.text)
            elif self.label == "next":
                self.commands.append("".join(self.text))
            self.where = None

    def handle_data(self, data):
        if self.where:
            self.text.append(data)


def _from_html(text: str) -> list[str]:
    parser = _HTMLCommands()
    parser.feed(text)
    return parser.commands


def _from_junit(text: str) -> list[str]:
    root = ET.fromstring(text.encode("utf-8"))
    texts = [e.text or "" for e in root.iter() if e.tag in ("failure", "system-out")]
    return [line[len("next: "):] for t in texts for line in t.split("\n") if line.startswith("next: ")]


def _from_json(text: str) -> list[str]:
    document = json.loads(text)
    lines = []
    for host in document["hosts"]:
        for command in host["next_commands"]:
            assert shlex.split(command["line"], comments=True) == command["argv"]
            lines.append(command["line"])
        lines += [c["next_step"] for c in (host["evidence"] or {"causes": []})["causes"] if c["next_step"]]
    return lines


READERS = {"table": _from_table, "markdown": _from_markdown, "html": _from_html, "junit": _from_junit,
           "json": _from_json}


# --- how a shell reads a line --------------------------------------------------------------------

def shell_words(line: str, comments: bool = True) -> list[str]:
    """POSIX word splitting with the shell's operators as tokens of their own, so a separator
    (; & | && > < ( )) shows up as a token instead of hiding inside a word."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    if not comments:
        lexer.commenters = ""
    return list(lexer)


def _commented_host(line: str) -> str:
    """The host a line names: its comment is '# on HOST: why'."""
    comment = shell_words(line, comments=False)[len(shell_words(line)):]
    assert comment[:2] == ["#", "on"] and comment[2].endswith(":"), comment
    return comment[2][:-1]


@pytest.mark.parametrize("fmt", sorted(READERS))
def test_every_suggestion_parses_into_exactly_the_intended_command_and_names_its_host(sweep, fmt):
    assessments, outputs, expected = sweep
    lines = READERS[fmt](outputs[fmt])
    wanted = dict(expected)
    # json: next_commands and each cause's next_step; junit: the failure text and system-out
    copies = 2 if fmt in ("json", "junit") else 1
    assert len(lines) == copies * len(wanted), lines
    seen = {}
    for line in lines:
        argv = shell_words(line)
        assert argv[0] in ALLOWED, line
        host = next(h for h in wanted if _commented_host(line) == host_label(h))
        assert argv == wanted[host], (host, line)
        # A shell that does not treat '#' as a comment (zsh by default) still sees no operator.
        assert all(not re.fullmatch(r"[();<>|&]+", word) for word in shell_words(line, comments=False)), line
        seen[host] = argv
    assert seen == wanted


def test_prometheus_carries_no_command(sweep):
    _, outputs, _ = sweep
    parse_prometheus(outputs["prometheus"])
    assert not any(re.search(rf"\b{command}\b", outputs["prometheus"]) for command in ALLOWED)


def test_a_peer_port_or_owner_port_that_is_not_one_makes_the_document_refused(sweep):
    assessments, outputs, _ = sweep
    refused = {a.host: a for a in assessments if a.result.status == Status.PROBE_ERROR}
    assert len(refused) == len(REFUSED)
    for index, (field, _) in enumerate(REFUSED, start=len(CASES)):
        assert field in refused[_name(index)].result.reason, refused[_name(index)].result.reason
    lines = _from_table(outputs["table"])
    assert not any(host_label(name) in " ".join(lines) for name in refused)


def test_lines_stay_short_enough_that_no_renderer_cuts_them(sweep):
    _, outputs, _ = sweep
    assert max(len(line) for line in _from_json(outputs["json"])) < 250     # renderers cut at 300


# --- the builder does not rely on the schema: hostile evidence built by hand --------------------

def _hand_built(peer: object, port: object, key: str = "port_scan"):
    """Evidence as no live run can produce it (the schema refuses such documents): proves the
    command builder validates on its own, for saved reports and future evidence sources."""
    result = HostResult(HOSTILE_TEXT, "198.18.0.2", Status.OK, "", _document([], 100), 1.0, ())
    evidence = HostEvidence("tracepoint", ["tracepoint"], [Cause(key, "t", 100, 1.0, [], [port], [peer])],
                            [PortInfo(port, 100)], [(peer, 100)], [])
    assessment = assess([result], Thresholds())[0]
    assessment.evidence = evidence
    return assessment


@pytest.mark.parametrize("key", ["port_scan", "closed_port"])       # one needs a peer, one a port
@pytest.mark.parametrize("peer", INJECTIONS)
@pytest.mark.parametrize("fmt", sorted(READERS))
def test_a_hostile_peer_or_port_in_evidence_is_never_pasted(peer, fmt, key):
    assessment = _hand_built(peer, "9;touch pwned", key)
    text = render(fmt, [assessment], Thresholds(), {"window_s": 1.0, "exit_code": 4})
    lines = READERS[fmt](text)
    assert lines
    for line in lines:
        assert shell_words(line) == FIND


@pytest.mark.parametrize("value, shown", [
    ("198.18.0.1", "198.18.0.1"), ("2001:DB8::1", "2001:db8::1"), ("::ffff:198.18.0.1", "198.18.0.1"),
    ("0.0.0.0", None), ("::", None), ("", None), (None, None), (1, None), ("fe80::1%eth0", None),
    *[(peer, None) for peer in INJECTIONS]])
def test_a_peer_is_used_only_when_it_parses_as_an_address(value, shown):
    assert valid_peer(value) == shown


@pytest.mark.parametrize("value, used", [(9, 9), (65535, 65535), (0, None), (65536, None), (-1, None),
                                         (True, None), ("9", None), (9.0, None)])
def test_a_port_is_used_only_when_it_is_an_integer_1_to_65535(value, used):
    assert valid_port(value) == used


# --- real bash: syntax, then a run with stub tools that record their argv ----------------------

STUB = '#!/bin/sh\nprintf "%s\\0" "${0##*/}" "$@" >> "$RECORD"\nprintf "\\n" >> "$RECORD"\n'
STUBS = sorted(ALLOWED | {"ssh", "touch", "id", "reboot", "rm", "sh", "bash", "curl", "cat"})


@pytest.fixture(scope="module")
def stub_shell(tmp_path_factory):
    """bash with PATH = a folder of stubs: every command a line could run, intended or injected,
    records its argv and does nothing else (nothing real runs)."""
    root = tmp_path_factory.mktemp("stubs")
    bin_dir = root / "bin"
    bin_dir.mkdir()
    for name in STUBS:
        (bin_dir / name).write_text(STUB)
        (bin_dir / name).chmod(0o755)

    def run(line: str) -> tuple[list[list[str]], subprocess.CompletedProcess, list[str]]:
        work, record = root / "work", root / "record"
        work.mkdir(exist_ok=True)
        record.write_bytes(b"")
        env = {"PATH": str(bin_dir), "RECORD": str(record), "HOME": str(work)}
        proc = subprocess.run(["/bin/bash", "--norc", "--noprofile", "-c", line], cwd=work, env=env,
                              capture_output=True, timeout=10)
        calls = [entry.split("\0")[:-1] for entry in record.read_text().split("\n") if entry]
        created = sorted(p.name for p in work.iterdir())
        for path in work.iterdir():
            path.unlink()
        return calls, proc, created
    return run


def test_stub_shell_would_see_an_injection(stub_shell):
    """The oracle can fail: the line the issue reported runs a second command and makes a file."""
    calls, _, created = stub_shell("tcpdump -i any -n host 198.18.0.1;touch pwned >made")
    assert calls == [["tcpdump", "-i", "any", "-n", "host", "198.18.0.1"], ["touch", "pwned"]]
    assert created == ["made"]


def test_every_suggestion_is_valid_bash_and_runs_exactly_its_argv(sweep, stub_shell):
    _, outputs, expected = sweep
    lines = {line for fmt, read in READERS.items() for line in read(outputs[fmt])}
    hand_built = [[_hand_built(peer, 9, "half_open")] for peer in INJECTIONS]
    lines |= {line for assessments in hand_built for fmt, read in READERS.items()
              for line in read(render(fmt, assessments, Thresholds(), {"window_s": 1.0}))}
    assert len(lines) >= len(expected)
    for line in sorted(lines):
        syntax = subprocess.run(["/bin/bash", "-n", "-c", line], capture_output=True, timeout=10)
        assert syntax.returncode == 0, (line, syntax.stderr)
        calls, proc, created = stub_shell(line)
        assert proc.returncode == 0 and proc.stderr == b"", (line, proc.stderr)
        assert calls == [shell_words(line)] and calls[0][0] in ALLOWED, (line, calls)
        assert created == [], (line, created)
