"""Playbooks: sweeps and triages written down once, reviewed like code, checked before any host.

A playbook is an Ansible-like YAML list of plays: which hosts (an Ansible pattern), which steps
(sweep; then capture and owners on the worst hosts), which window and thresholds. The YAML is
composed into nodes rather than loaded, so every problem names the line the operator must edit:

    playbooks/nightly.yml:7: unknown key 'windw' (did you mean 'window'?)

Values are typed as YAML types them: ``window: "10"`` and ``window: true`` are errors, not
silent coercions. The format is described in docs/playbooks.md.
"""
from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .expected import INVENTORY_VAR, MAX_RULES, RULE_KEYS, Expectation, rule_from_mapping
from .inventory.model import Inventory
from .probe.host.limits import (CAPTURE_BYTES, CAPTURE_PACKETS, CAPTURE_S, CRIT, FAIL_ON, FAIL_ON_DEFAULT,
                               MAX_CAPTURE_BYTES, MAX_CAPTURE_PACKETS, MAX_CAPTURE_S, MAX_WINDOW_S,
                               MIN_CAPTURE_BYTES, PHASE2_TOP, SPIKE_FACTOR, WARN, WINDOW_S)
from .textsafe import printable

MAX_FILE_BYTES = 1024 * 1024            # a playbook is a page of YAML; refuse megabytes early
STEPS = ("sweep", "capture", "owners")
_PLAY_KEYS = ("name", "hosts", "steps", "window", "capture", "thresholds", "forks", "become",
              "expected_resets")
_CAPTURE_KEYS = ("duration", "packets", "bytes", "top", "force")
_THRESHOLD_KEYS = ("warn", "crit", "spike_factor", "fail_on")
_SECTION_OF = {**{k: "capture" for k in _CAPTURE_KEYS}, **{k: "thresholds" for k in _THRESHOLD_KEYS}}
_NUMBERS = {  # setting: (type, lowest, highest or None, lowest itself excluded)
    "window": (float, 0.0, MAX_WINDOW_S, True),
    "forks": (int, 1, None, False),
    "capture.duration": (float, 1.0, MAX_WINDOW_S, False),  # over MAX_CAPTURE_S needs force
    "capture.packets": (int, 1, MAX_CAPTURE_PACKETS, False),
    "capture.bytes": (int, MIN_CAPTURE_BYTES, MAX_CAPTURE_BYTES, False),
    "capture.top": (int, 1, None, False),
    "thresholds.warn": (float, 0.0, None, True),
    "thresholds.crit": (float, 0.0, None, True),
    "thresholds.spike_factor": (float, 1.0, None, False),
}
_BOOLEANS = ("become", "capture.force")
_TAG = "tag:yaml.org,2002:"


class PlaybookError(ValueError):
    """Names the file, the line (1-based) and the problem, e.g.
    'playbooks/x.yml:7: unknown key 'windw' (did you mean 'window'?)'."""


@dataclass(frozen=True)
class CaptureStep:
    """Phase 2: a bounded tcpdump of RSTs on the ``top`` worst hosts (bounds as in the probe)."""

    duration: float = CAPTURE_S
    packets: int = CAPTURE_PACKETS
    bytes: int = CAPTURE_BYTES
    top: int = PHASE2_TOP
    force: bool = False


@dataclass(frozen=True)
class Play:
    """One validated play; ``line`` is where it starts in the playbook, for later messages."""

    name: str
    hosts: str
    window: float = WINDOW_S
    capture: CaptureStep | None = None
    owners: bool = False
    warn: float = WARN
    crit: float = CRIT
    spike_factor: float = SPIKE_FACTOR
    fail_on: str = FAIL_ON_DEFAULT
    forks: int | None = None
    become: bool = False
    expected_resets: tuple[Expectation, ...] = ()
    line: int = 0


@dataclass(frozen=True)
class Playbook:
    path: str
    plays: tuple[Play, ...]


def load_playbook(path: str) -> Playbook:
    """Read and validate every play; any problem raises PlaybookError, so nothing half-runs."""
    reader, root = _compose(str(path), "playbook")
    if root is None or _kind(root) == "null":
        raise reader.error(1, "empty playbook: expected a list of plays, e.g. '- hosts: all'")
    if isinstance(root, MappingNode):
        raise reader.error(root, "a playbook is a list of plays, not a single mapping: "
                                 "start each play with '- ' (as in Ansible)")
    if not isinstance(root, SequenceNode):
        raise reader.error(root, f"a playbook is a list of plays, not {_kind(root)}")
    if not root.value:
        raise reader.error(root, "the playbook has no plays")
    return Playbook(str(path), tuple(reader.play(node, number) for number, node in enumerate(root.value, 1)))


def load_expected(path: str) -> tuple[Expectation, ...]:
    """An expected-resets file (``--expected FILE``): a list of rules, or a group_vars-style
    mapping holding ``rstfleet_expected_resets:``; every problem names its line."""
    reader, root = _compose(str(path), "expected-resets file")
    if root is None or _kind(root) == "null":
        raise reader.error(1, "empty file: expected a list of rules, e.g. '- {port: 8080, reason: LB "
                              "health check}'")
    if isinstance(root, MappingNode):
        entries = reader.mapping(root, "an expected-resets file", (INVENTORY_VAR,))
        if INVENTORY_VAR not in entries:
            raise reader.error(root, f"the file's mapping has no {INVENTORY_VAR}")
        root = entries[INVENTORY_VAR]
    return reader.expected_rules(root)


def _compose(path: str, what: str) -> tuple["_Reader", Node | None]:
    """The file's YAML as nodes (lines kept); size, encoding and syntax errors name the line."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise PlaybookError(f"{printable(path)}: cannot read {what}: {exc.strerror or exc}") from None
    reader = _Reader(path)
    if len(data) > MAX_FILE_BYTES:
        raise reader.error(1, f"{what} is larger than {MAX_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise reader.error(data[: exc.start].count(b"\n") + 1, "not UTF-8 text") from None
    try:
        return reader, yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise reader.error(*_syntax_error(exc, text)) from None
    except RecursionError:
        raise reader.error(1, "YAML syntax error: lists or mappings nest too deeply") from None


@dataclass(frozen=True)
class _Reader:
    """Typed readers over composed nodes; each error names ``path`` and the node's line."""

    path: str

    def error(self, where: Node | int, problem: str) -> PlaybookError:
        line = where if isinstance(where, int) else _line(where)
        return PlaybookError(f"{printable(self.path)}:{line}: {problem}")

    def play(self, node: Node, number: int) -> Play:
        if not isinstance(node, MappingNode):
            raise self.error(node, f"play {number} must be a mapping (hosts: ..., steps: [...]), "
                                   f"not {_kind(node)}")
        entries = self.mapping(node, f"play {number}", _PLAY_KEYS)
        if "hosts" not in entries:
            raise self.error(node, f"play {number} has no 'hosts': give an Ansible host pattern "
                                   "such as 'all' or 'web*:&prod'")
        hosts = self.pattern(entries["hosts"])
        steps = self.steps(entries["steps"]) if "steps" in entries else {"sweep"}
        fields = self.settings(entries, "")
        fields.update(hosts=hosts, line=_line(node), owners="owners" in steps,
                      name=self.text(entries["name"], "name") if "name" in entries else hosts)
        if "capture" in entries and "capture" not in steps:
            raise self.error(entries["capture"], "capture settings are given but 'capture' is not "
                                                 "in steps (use steps: [sweep, capture])")
        if "capture" in steps:
            fields["capture"] = self.capture(entries.get("capture"))
        if "thresholds" in entries:
            fields.update(self.thresholds(entries["thresholds"]))
        if "expected_resets" in entries:
            fields["expected_resets"] = self.expected_rules(entries["expected_resets"])
        return Play(**fields)

    def expected_rules(self, node: Node) -> tuple[Expectation, ...]:
        """Expected-reset rules (expected.py checks each field), every error at its own line."""
        if not isinstance(node, SequenceNode):
            raise self.error(node, f"expected resets must be a list of rules such as '- {{port: 8080, "
                                   f"reason: LB health check}}', not {_kind(node)}")
        if len(node.value) > MAX_RULES:
            raise self.error(node, f"more than {MAX_RULES} expected-reset rules")
        rules = []
        for item in node.value:
            entries = self.mapping(item, "an expected-reset rule", RULE_KEYS)
            try:
                value = {key: SafeConstructor().construct_object(value, deep=True)
                         for key, value in entries.items()}
            except Exception:  # e.g. '!!int abc'
                raise self.error(item, "an expected-reset rule holds a value YAML cannot read") from None
            rules.append(rule_from_mapping(
                value, lambda key, item=item, entries=entries: f"{printable(self.path)}:"
                f"{_line(entries[key]) if key in entries else _line(item)}",
                f"{printable(self.path)}:{_line(item)}"))
        return tuple(rules)

    def mapping(self, node: Node, what: str, allowed: tuple[str, ...]) -> dict[str, Node]:
        """``{key: value node}``; unknown, duplicate, merge (``<<``) and non-string keys are errors."""
        if not isinstance(node, MappingNode):
            raise self.error(node, f"{what} must be a mapping, not {_kind(node)}")
        entries: dict[str, Node] = {}
        key_lines: dict[str, int] = {}
        for key, value in node.value:
            if not isinstance(key, ScalarNode) or key.tag == _TAG + "merge":  # '<<' merges are not read
                raise self.error(key, f"keys of {what} must be plain strings, not {_kind(key)}")
            name = key.value
            if name in key_lines:
                raise self.error(key, f"duplicate key {_quote(name)} (first given on line {key_lines[name]})")
            if name not in allowed:
                hint = (f" (it belongs under '{_SECTION_OF[name]}:')" if what.startswith("play")
                        and name in _SECTION_OF else _suggest(name, allowed)
                        or f" (expected one of {', '.join(allowed)})")
                raise self.error(key, f"unknown key {_quote(name)}{hint}")
            entries[name], key_lines[name] = value, _line(key)
        return entries

    def settings(self, entries: dict[str, Node], section: str) -> dict:
        """The numbers and booleans of one mapping, typed and bounded as ``_NUMBERS`` says."""
        fields = {}
        for key, node in entries.items():
            what = f"{section}.{key}" if section else key
            if what in _NUMBERS:
                fields[key] = self.number(node, what, *_NUMBERS[what])
            elif what in _BOOLEANS:
                fields[key] = self.scalar(node, what, ("bool",), "true or false")
        return fields

    def capture(self, node: Node | None) -> CaptureStep:
        entries = {} if node is None or _kind(node) == "null" else self.mapping(node, "capture", _CAPTURE_KEYS)
        fields = self.settings(entries, "capture")
        if fields.get("duration", 0) > MAX_CAPTURE_S and not fields.get("force"):
            raise self.error(entries["duration"], f"capture.duration {_num(fields['duration'])} s is "
                             f"over {_num(MAX_CAPTURE_S)} s (the guide's 5 minutes); add 'force: true' "
                             "under capture if you mean it")
        return CaptureStep(**fields)

    def thresholds(self, node: Node) -> dict:
        entries = self.mapping(node, "thresholds", _THRESHOLD_KEYS)
        fields = self.settings(entries, "thresholds")
        if "fail_on" in entries:
            fields["fail_on"] = self.choice(entries["fail_on"], "thresholds.fail_on", FAIL_ON)
        warn, crit = fields.get("warn", Play.warn), fields.get("crit", Play.crit)
        if warn > crit:
            raise self.error(entries.get("warn") or entries["crit"], f"thresholds.warn ({_num(warn)}/s) "
                             f"is above thresholds.crit ({_num(crit)}/s)")
        return fields

    def steps(self, node: Node) -> set[str]:
        if not isinstance(node, SequenceNode):
            raise self.error(node, f"steps must be a list such as [sweep, capture, owners], not {_kind(node)}")
        steps: set[str] = set()
        for item in node.value:
            step = self.choice(item, "step", STEPS)
            if step in steps:
                raise self.error(item, f"step {_quote(step)} is listed twice")
            steps.add(step)
        return steps | {"sweep"}

    def pattern(self, node: Node) -> str:
        """A host pattern, checked by the inventory's own matcher (a bad ``~regex`` fails here)."""
        hosts = self.text(node, "hosts")
        if not re.sub(r"[\s,:&!]", "", hosts):
            raise self.error(node, f"hosts {_quote(hosts)} names no hosts; 'all' means every host")
        try:
            Inventory("playbook", {}, {}).select(hosts)
        except ValueError as exc:  # InventoryError for a bad ~regex; int() of a 5000-digit web[i]
            detail = printable(str(exc).rsplit(": ", 1)[-1], 80)
            raise self.error(node, f"invalid host pattern {_quote(hosts)}: {detail}") from None
        return hosts

    def text(self, node: Node, what: str) -> str:
        value = self.scalar(node, what, ("str",), "a string")
        if not value.strip():
            raise self.error(node, f"{what} must not be empty")
        if re.search(r"[\x00-\x1f\x7f-\x9f]", value):
            raise self.error(node, f"{what} must not contain control characters")
        return value

    def choice(self, node: Node, what: str, options: tuple[str, ...]) -> str:
        value = self.scalar(node, what, ("str",), f"one of {', '.join(options)}")
        if value not in options:
            raise self.error(node, f"{what} must be one of {', '.join(options)}, not "
                                   f"{_quote(value)}{_suggest(value, options)}")
        return value

    def number(self, node: Node, what: str, kind: type, low: float, high: float | None,
               above: bool) -> float:
        raw = self.scalar(node, what, ("int",) if kind is int else ("int", "float"),
                          "a whole number" if kind is int else "a number")
        value = raw if kind is int else float(raw) if abs(raw) < 1e300 else math.inf
        if not low <= value <= (high or math.inf) or value == math.inf or (above and value == low):
            bounds = f"{'>' if above else '>='} {_num(low)}" + (f" and <= {_num(high)}" if high else "")
            raise self.error(node, f"{what} must be {bounds}, got {printable(node.value, 40)}")
        return value

    def scalar(self, node: Node, what: str, tags: tuple[str, ...], expected: str):
        """The value of a scalar that YAML typed as one of ``tags`` (``"10"`` is a string, never 10)."""
        if not isinstance(node, ScalarNode) or node.tag not in {_TAG + t for t in tags}:
            raise self.error(node, f"{what} must be {expected}, not {_kind(node)}")
        try:
            return SafeConstructor().construct_object(node)
        except Exception:  # e.g. '!!int abc', or an integer of 5000 digits
            raise self.error(node, f"{what} must be {expected}, cannot read {_quote(node.value)}") from None


def _suggest(word: str, options: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _quote(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:60] + "…")


def _kind(node: Node) -> str:
    """How YAML typed a node, with the text for scalars: "a string ('10')", "a boolean (true)"."""
    if not isinstance(node, ScalarNode):
        return "a mapping" if isinstance(node, MappingNode) else "a list"
    tag = node.tag[len(_TAG):] if node.tag.startswith(_TAG) else printable(node.tag, 40)
    name = {"str": "a string", "int": "an integer", "float": "a decimal number", "bool": "a boolean"}
    shown = _quote(node.value) if tag == "str" else printable(node.value, 40)
    return "null" if tag == "null" else f"{name.get(tag, f'a {tag} value')} ({shown})"


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _syntax_error(exc: yaml.YAMLError, text: str) -> tuple[int, str]:
    """(line, message): PyYAML's mark when it has one; reader errors only know a character offset."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    position = getattr(exc, "position", None)
    line = mark.line + 1 if mark else text[:position].count("\n") + 1 if isinstance(position, int) else 1
    context, started = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    context = f"{context} started on line {started.line + 1}," if context and started else context
    problem = " ".join(part for part in (context, getattr(exc, "problem", None)) if part)
    return line, f"YAML syntax error: {printable(problem or (str(exc).splitlines() or ['?'])[0])}"
