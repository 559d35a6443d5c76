"""Expected resets: the ones a team sends on purpose, declared so they stop deciding verdicts.

A load balancer's health check that resets after the handshake, an application that closes with
SO_LINGER 0, the company's own scanner. Declared as rules (the inventory variable
``rstfleet_expected_resets`` on a host or group, a file given with ``--expected``, a play's
``expected_resets``), they are still counted and shown, marked expected with the user's reason,
but excluded from verdicts, scores, ranking and exit codes:

    rstfleet_expected_resets:
      - {port: 8080, peers: 198.51.100.0/24, cause: aborted_connection, reason: LB health check}

A rule matches a reset when every field it gives matches: ``port`` the local port, ``peers`` the
peer's address (addresses or CIDR ranges), ``cause`` the cause key (evidence/causes.py CAUSES),
and, in a file, ``hosts`` an Ansible host pattern. Matching needs the evidence the rule names:
port and peer come from the tracepoint or a capture, the cause from the tracepoint or the
counters; a rule the host's evidence cannot check is said so, never silently applied.

Pure: rules in, shares out. Files are read by expected_file.py, inventories by inventory/.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Mapping, Optional, Union

from .evidence.causes import CAUSES, WILDCARD_PEERS, Cause
from .inventory.model import Host, Inventory

INVENTORY_VAR = "rstfleet_expected_resets"
RULE_KEYS = ("port", "peers", "cause", "reason", "hosts")
MAX_RULES = 1000               # in one file, play or variable: a page of YAML, not a database
MAX_PEERS = 256                # ranges in one rule
MAX_REASON = 200               # characters; it is shown in every report

Where = Callable[[Optional[str]], str]     # a key (None: the rule itself) -> 'file:line' for errors
Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


class ExpectedError(ValueError):
    """A rule that cannot be used, named where it was written: 'expected.yml:4: port must be …'."""


@dataclass(frozen=True)
class Expectation:
    """One declared rule; ``source`` says where it was declared (shown in every report)."""

    reason: str
    port: int | None = None
    peers: tuple[Network, ...] = ()
    cause: str | None = None
    hosts: str | None = None           # files and plays only; None: every host of the run
    source: str = ""

    def matches(self, cause: str | None, port: int | None, peer: str | None) -> bool:
        """Every field given matches; an unknown value (None) never matches a field given."""
        if self.port is not None and port != self.port:
            return False
        if self.cause is not None and cause != self.cause:
            return False
        if self.peers:
            address = _address(peer)
            return address is not None and any(address.version == net.version and address in net
                                               for net in self.peers)
        return True

    @property
    def needs_flows(self) -> bool:
        return self.port is not None or bool(self.peers)

    def describe(self) -> str:
        """'LB health check on 8080 from 198.51.100.0/24 (aborted_connection)'."""
        text = self.reason
        if self.port is not None:
            text += f" on {self.port}"
        if self.peers:
            shown = ", ".join(str(net) for net in self.peers[:3])
            text += f" from {shown}" + (f" and {len(self.peers) - 3} more" if len(self.peers) > 3 else "")
        return text + (f" ({self.cause})" if self.cause else "")

    def to_json(self) -> dict:
        """The rule as it reads back (``rule_from_mapping``): saved reports keep their rules."""
        rule: dict = {"reason": self.reason}
        if self.port is not None:
            rule["port"] = self.port
        if self.peers:
            rule["peers"] = [str(net) for net in self.peers]
        if self.cause:
            rule["cause"] = self.cause
        if self.hosts:
            rule["hosts"] = self.hosts
        rule["source"] = self.source
        return rule


# --- reading rules ------------------------------------------------------------------------------

def _address(peer: object):
    if not isinstance(peer, str) or peer in WILDCARD_PEERS or "%" in peer:
        return None
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return None
    return address.ipv4_mapped if address.version == 6 and address.ipv4_mapped else address


def _suggest(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "…"


def _port(value: object, at: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        hint = " (one port per rule: write a rule for each)" if isinstance(value, list) else ""
        raise ExpectedError(f"{at}: port must be a whole number 1..65535, not {_shown(value)}{hint}")
    return value


def _peers(value: object, at: str) -> tuple[Network, ...]:
    items = value if isinstance(value, list) else [value]
    if not items or len(items) > MAX_PEERS:
        raise ExpectedError(f"{at}: peers must list 1..{MAX_PEERS} addresses or CIDR ranges")
    networks = []
    for item in items:
        if not isinstance(item, str):
            raise ExpectedError(f"{at}: peers must be addresses or CIDR ranges such as "
                                f"198.51.100.0/24, not {_shown(item)}")
        try:
            networks.append(ipaddress.ip_network(item.strip(), strict=True))
        except ValueError as exc:
            loose = None
            try:
                loose = ipaddress.ip_network(item.strip(), strict=False)
            except ValueError:
                pass
            hint = f" (did you mean {loose}?)" if loose is not None else f": {exc}"
            raise ExpectedError(f"{at}: peers: {_shown(item)} is no address or CIDR range{hint}") from None
    return tuple(networks)


def _text(value: object, at: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ExpectedError(f"{at}: {what} must be a non-empty string, not {_shown(value)}")
    if re.search(r"[\x00-\x1f\x7f-\x9f]", value):
        raise ExpectedError(f"{at}: {what} must not contain control characters")
    if len(value) > MAX_REASON:
        raise ExpectedError(f"{at}: {what} is longer than {MAX_REASON} characters")
    return value.strip()


def _pattern(value: object, at: str) -> str:
    """An Ansible host pattern, checked by the inventory's own matcher (a bad ~regex fails here)."""
    pattern = _text(value, at, "hosts")
    try:
        Inventory("expected", {}, {}).select(pattern)
    except ValueError as exc:
        raise ExpectedError(f"{at}: invalid host pattern {_shown(pattern)}: "
                            f"{str(exc).rsplit(': ', 1)[-1][:80]}") from None
    return pattern


def rule_from_mapping(value: object, where: Where, source: str, allow_hosts: bool = True) -> Expectation:
    """One rule from plain data (YAML or JSON), every field checked; ExpectedError names where.

    where(key) is the place of that key's value (where(None): of the rule); source is what the
    reports show as the rule's origin.
    """
    if not isinstance(value, Mapping):
        raise ExpectedError(f"{where(None)}: a rule must be a mapping such as {{port: 8080, "
                            f"reason: LB health check}}, not {_shown(value)}")
    allowed = RULE_KEYS if allow_hosts else tuple(k for k in RULE_KEYS if k != "hosts")
    for key in value:
        if key not in allowed:
            hint = (" (an inventory variable applies to its own host or group)" if key == "hosts"
                    else _suggest(str(key), allowed) or f" (expected {', '.join(allowed)})")
            raise ExpectedError(f"{where(key)}: unknown key {_shown(key)}{hint}")
    if "reason" not in value:
        raise ExpectedError(f"{where(None)}: a rule needs a reason (shown in every report), e.g. "
                            f"reason: LB health check")
    if not any(key in value for key in ("port", "peers", "cause")):
        raise ExpectedError(f"{where(None)}: a rule needs port, peers or cause: without them it would "
                            f"excuse every reset of its hosts (leave such hosts out with --limit)")
    cause = value.get("cause")
    if "cause" in value and cause not in CAUSES:
        raise ExpectedError(f"{where('cause')}: cause must be one of {', '.join(CAUSES)}, not "
                            f"{_shown(cause)}{_suggest(str(cause), CAUSES)}")
    return Expectation(
        reason=_text(value["reason"], where("reason"), "reason"),
        port=_port(value["port"], where("port")) if "port" in value else None,
        peers=_peers(value["peers"], where("peers")) if "peers" in value else (),
        cause=cause,
        hosts=_pattern(value["hosts"], where("hosts")) if value.get("hosts") is not None else None,
        source=source)


def rules_from_variable(host: Host) -> tuple[Expectation, ...]:
    """The host's ``rstfleet_expected_resets`` (merged as Ansible merges: a host's own value
    replaces its groups'), named by the inventory file and line that set it."""
    if INVENTORY_VAR not in host.vars or host.vars[INVENTORY_VAR] is None:
        return ()
    value = host.vars[INVENTORY_VAR]
    place = host.places.get(INVENTORY_VAR) or "inventory"
    at = f"{place}: host {host.name}: {INVENTORY_VAR}"
    if not isinstance(value, list):
        raise ExpectedError(f"{at}: must be a list of rules such as [{{port: 8080, reason: LB health "
                            f"check}}], not {_shown(value)}")
    if len(value) > MAX_RULES:
        raise ExpectedError(f"{at}: more than {MAX_RULES} rules")
    return tuple(rule_from_mapping(item, lambda key, i=i: f"{at}[{i}]" + (f".{key}" if key else ""),
                                   f"{place} ({INVENTORY_VAR})", allow_hosts=False)
                 for i, item in enumerate(value))


def rules_for_hosts(hosts: Iterable[Host], declared: tuple[Expectation, ...]) -> tuple[dict, list[str]]:
    """({host name: its rules}, warnings): each host's own variable, then the declared rules
    (file, play) whose host pattern selects it among the run's hosts. Errors raise ExpectedError."""
    hosts = list(hosts)
    groups: dict[str, list[str]] = {"all": [h.name for h in hosts]}
    for host in hosts:
        for group in host.groups:
            groups.setdefault(group, []).append(host.name)
    run = Inventory("run", {h.name: h for h in hosts}, groups)
    rules = {h.name: list(rules_from_variable(h)) for h in hosts}
    warnings = []
    for rule in declared:
        chosen = run.select(rule.hosts) if rule.hosts else hosts
        if rule.hosts and not chosen:
            warnings.append(f"{rule.source}: expected-reset rule {rule.reason!r}: hosts {rule.hosts!r} "
                            f"matches none of the {len(hosts)} host(s) of this run")
        for host in chosen:
            rules[host.name].append(rule)
    return {name: tuple(found) for name, found in rules.items() if found}, warnings


# --- matching -----------------------------------------------------------------------------------

@dataclass
class RuleMatch:
    rule: dict                     # Expectation.to_json()
    described: str                 # 'LB health check on 8080'
    resets: int
    share: float                   # of the host's attributed resets


@dataclass
class ExpectedResets:
    """How much of one host's evidence its rules excuse."""

    resets: int = 0                # expected, out of total
    total: int = 0                 # resets the evidence attributes (the share's denominator)
    share: float = 0.0
    matches: list[RuleMatch] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)      # rules this evidence cannot check, and why
    by_cause: dict[str, int] = field(default_factory=dict)  # expected resets per cause key


Piece = tuple   # (cause key or None, local port or None, peer or None, resets)


def match_expected(pieces: list[Piece], rules: tuple[Expectation, ...]) -> ExpectedResets:
    """Each piece of evidence is claimed by the first rule (in declared order) that matches it.

    pieces are the evidence at its finest: traced flows (cause, port, peer), a capture's (None,
    port, peer), counters' (cause, None, None).
    """
    total = sum(piece[3] for piece in pieces)
    found = ExpectedResets(total=total)
    if not rules:
        return found
    claimed: Counter = Counter()
    by_cause: Counter = Counter()
    for cause, port, peer, count in pieces:
        rule = next((r for r in rules if r.matches(cause, port, peer)), None)
        if rule is not None and count > 0:
            claimed[rule] += count
            if cause is not None:
                by_cause[cause] += count
    with_port = any(piece[1] is not None for piece in pieces)
    with_cause = any(piece[0] is not None for piece in pieces)
    for rule in rules:
        if rule in claimed:
            found.matches.append(RuleMatch(rule.to_json(), rule.describe(), claimed[rule],
                                           claimed[rule] / total))
        elif total and rule.needs_flows and not with_port:
            found.unchecked.append(f"rule {rule.describe()!r} ({rule.source}) not checked: this host's "
                                   f"evidence gives no port or peer (counters only); run with --trace "
                                   f"or triage")
        elif total and rule.cause and not with_cause:
            found.unchecked.append(f"rule {rule.describe()!r} ({rule.source}) not checked: a capture "
                                   f"without the tracepoint gives no cause per reset")
    found.resets = sum(claimed.values())
    found.share = found.resets / total if total else 0.0
    found.by_cause = dict(by_cause)
    return found


def evidence_pieces(rows: list[tuple], causes: list[Cause]) -> list[Piece]:
    """Traced rows (cause, port, peer, reason, count) plus what each cause holds beyond them
    (the resets the tracepoint did not keep, attributed from counters)."""
    traced: Counter = Counter()
    pieces: list[Piece] = []
    for cause, port, peer, _, count in rows:
        pieces.append((cause, port, None if peer in WILDCARD_PEERS else peer, count))
        traced[cause] += count
    for cause in causes:
        rest = cause.resets - traced[cause.key]
        if rest > 0:
            pieces.append((cause.key, None, None, rest))
    return pieces


def unexpected_causes(causes: list[Cause], expected: ExpectedResets | None) -> list[Cause]:
    """The causes with their expected resets taken out (for the severity the score weighs)."""
    if not expected or not expected.by_cause:
        return causes
    left = [replace(c, resets=c.resets - expected.by_cause.get(c.key, 0)) for c in causes]
    left = [c for c in left if c.resets > 0]
    total = sum(c.resets for c in left)
    return [replace(c, share=c.resets / total) for c in left] if total else []
