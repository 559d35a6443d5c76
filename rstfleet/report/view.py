"""What every format says, worded once: headline, fleet findings, per-host detail lines.

These are plain, *unescaped* sentences built from the ranked assessments; each renderer escapes
them for its own sink (`escape.py`) and lays them out. Keeping the wording here means the table,
the Markdown, the HTML and the JUnit output tell the same story:

    198.18.0.9 got resets from 4 hosts: h01, h02, h07, h09 (1320 resets)
    port 8080 resets on 3 hosts of group web, nothing listens
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..analysis import Assessment, Thresholds
from ..evidence.causes import CAUSES, PortInfo
from ..evidence.next_steps import Suggestion, host_suggestions
from ..fleet import FleetSummary, summarize_fleet

UNATTRIBUTED = "unattributed"


def rate_text(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def verdict_text(a: Assessment) -> str:
    return a.verdict + (" (spike)" if a.spike else "")


def checked(assessments: list[Assessment]) -> list[Assessment]:
    return [a for a in assessments if a.rank is not None]


def not_checked(assessments: list[Assessment]) -> list[Assessment]:
    return [a for a in assessments if a.rank is None]


def by_rank(names: list[str], assessments: list[Assessment]) -> list[str]:
    """Host names worst first (the fleet summary lists them by name)."""
    rank = {a.host: (a.rank if a.rank is not None else 10**9) for a in assessments}
    return sorted(names, key=lambda name: (rank.get(name, 10**9), name))


def top_cause(a: Assessment) -> str:
    """'closed_port 100%' or '-'."""
    if not a.evidence or not a.evidence.causes:
        return "-"
    cause = a.evidence.causes[0]
    return f"{cause.key} {cause.share:.0%}"


def owner_text(owner: dict) -> str:
    """'nginx (pid 812, www-data)' from an owners entry."""
    extras = [f"pid {owner['pid']}"] if owner.get("pid") is not None else []
    if owner.get("user"):
        extras.append(str(owner["user"]))
    name = str(owner.get("command") or "?")
    return f"{name} ({', '.join(extras)})" if extras else name


def top_port(a: Assessment) -> str:
    """'8080 (nginx)', '9 (nothing listens)', '9' or '-'."""
    if not a.evidence or not a.evidence.top_ports:
        return "-"
    port = a.evidence.top_ports[0]
    if port.listening is False:
        return f"{port.port} (nothing listens)"
    if port.owners:
        return f"{port.port} ({port.owners[0].get('command') or '?'})"
    return str(port.port)


def port_line(port: PortInfo) -> str:
    """'9: 180 resets, nothing listens on 9' / '8080: 60 resets, owned by nginx (pid 812, www-data)'."""
    text = f"{port.port}: {port.resets} resets"
    if port.listening is False:
        return f"{text}, nothing listens on {port.port}"
    if port.owners:
        owners = ", ".join(owner_text(o) for o in port.owners[:3])
        more = f" and {len(port.owners) - 3} more" if len(port.owners) > 3 else ""
        return f"{text}, owned by {owners}{more}"
    if port.listening:
        return f"{text}, something listens (owner not visible)"
    return f"{text}, owner not looked up"


def cause_rates(a: Assessment) -> list[tuple[str, float]]:
    """(cause key, resets/s) for the host, plus what the causes leave unattributed."""
    rate = a.resets_sent_per_s or 0.0
    parts = [(c.key, rate * c.share) for c in (a.evidence.causes if a.evidence else [])]
    rest = rate - sum(value for _, value in parts)
    if rest > max(0.01, rate * 0.005):
        parts.append((UNATTRIBUTED, rest))
    return parts


def cause_title(key: str) -> str:
    if key == UNATTRIBUTED:
        return "Resets no evidence attributed"
    return CAUSES.get(key, (key,))[0]


def headline(assessments: list[Assessment], thresholds: Thresholds, meta: dict) -> str:
    window = meta.get("window_s")
    window_text = f"a {window:g} s window" if isinstance(window, (int, float)) else "the window"
    return (f"TCP resets sent over {window_text} — {len(checked(assessments))} host(s) checked, "
            f"{len(not_checked(assessments))} not checked (warn ≥ {thresholds.warn:g}/s, "
            f"crit ≥ {thresholds.crit:g}/s)")


def window_sentence(window: dict) -> str:
    """The fleet window's line in every report, from ``FleetWindow.as_dict()`` (sweep/window.py).

    >>> window_sentence({"hosts_measured": 3, "span_s": 10.4, "start_spread_s": 0.2,
    ...                  "overlap": True, "groups": 1, "split_reason": ""})
    'one window: 3 hosts measured within 10.4 s, starts 0.2 s apart, every window overlaps a common instant'
    """
    if not window.get("hosts_measured"):
        return "no window measured"
    text = (f"{window['hosts_measured']} host{'s' if window['hosts_measured'] != 1 else ''} measured "
            f"within {window['span_s']:.1f} s, starts {window['start_spread_s']:.1f} s apart")
    if window.get("groups", 1) > 1:
        return (f"split into {window['groups']} successive windows ({window.get('split_reason') or 'limits'}): "
                + text)
    if window.get("overlap"):
        return f"one window: {text}, every window overlaps a common instant"
    return f"windows do not all overlap (a host started after another had ended): {text}"


@dataclass
class FleetView:
    summary: FleetSummary
    lines: list[tuple[str, str]] = field(default_factory=list)   # (label, sentence)


def shared_peer_sentence(peer: dict, assessments: list[Assessment]) -> str:
    hosts = by_rank(list(peer["hosts"]), assessments)
    return f"{peer['peer']} got resets from {len(hosts)} hosts: {', '.join(hosts)} ({peer['resets']} resets)"


def shared_port_sentence(port: dict, assessments: list[Assessment]) -> str:
    hosts = by_rank(list(port["hosts"]), assessments)
    groups = port.get("groups") or []
    where = f" of group {', '.join(groups)}" if groups else ""
    listening = {False: ", nothing listens", True: ", something listens"}.get(port.get("listening"), "")
    return f"port {port['port']} resets on {len(hosts)} hosts{where}{listening}: {', '.join(hosts)}"


def fleet_view(assessments: list[Assessment]) -> FleetView:
    """The fleet summary and its sentences, in the order every format shows them."""
    summary = summarize_fleet(assessments)
    rate = {a.host: a.resets_sent_per_s or 0.0 for a in assessments}
    failed = summary.not_checked
    lines = [("hosts", f"{summary.hosts} host{'' if summary.hosts == 1 else 's'}: {summary.checked} checked, {failed} not checked"
                       + (" (see below)" if failed else "")),
             ("total", f"{summary.resets_sent_per_s_total:.1f} resets/s sent across the fleet")]
    if summary.worst:
        lines.append(("worst", ", ".join(f"{h} {rate[h]:.1f}/s" for h in summary.worst)))
    if summary.causes:
        total = sum(summary.causes.values()) or 1.0
        lines.append(("causes", ", ".join(f"{key} {value:.1f}/s ({value / total:.0%})"
                                          for key, value in summary.causes.items())))
    for peer in summary.shared_peers:
        lines.append(("shared peer", shared_peer_sentence(peer, assessments)))
    for port in summary.shared_ports:
        lines.append(("shared port", shared_port_sentence(port, assessments)))
    return FleetView(summary, lines)


def has_resets(a: Assessment) -> bool:
    return a.rank is not None and (a.resets_sent_per_s or 0.0) > 0.005


def host_detail(a: Assessment) -> list[tuple[str, str]]:
    """(label, line) pairs for one checked host: causes, ports, peers, evidence, next commands."""
    lines = [("rate", f"{rate_text(a.resets_sent_per_s)} resets/s sent "
                      f"(baseline {rate_text(a.baseline_per_s)}/s), {verdict_text(a)}"),
             ("score", a.score_explained or f"{a.score:.1f}")]
    evidence = a.evidence
    if evidence is None:
        return lines
    for cause in evidence.causes:
        lines.append(("cause", f"{cause.key} {cause.share:.0%} ({cause.resets} resets): {cause.title}"))
        lines.extend(("evidence", e) for e in cause.evidence)
    lines.extend(("port", port_line(p)) for p in evidence.top_ports[:5])
    if evidence.top_peers:
        lines.append(("peers", ", ".join(f"{peer} ({count})" for peer, count in evidence.top_peers[:5])))
    for suspect in evidence.scan_suspects[:3]:
        lines.append(("scan", ", ".join(f"{k} {v}" for k, v in suspect.items())))
    lines.append(("evidence used", f"tier {evidence.tier} ({', '.join(evidence.evidence_used) or 'none'})"))
    if evidence.capture_path:
        lines.append(("capture", evidence.capture_path))
    lines.extend(("note", note) for note in evidence.notes)
    lines.extend(("next", command) for command in next_commands(a))
    return lines


def suggestions(a: Assessment) -> list[Suggestion]:
    """The host's next commands, rebuilt from its evidence's validated ports and peers (never
    from text a saved report carries): evidence/next_steps.py says why they are safe to paste."""
    evidence = a.evidence
    if evidence is None:
        return []
    return host_suggestions(a.host, evidence.causes, evidence.top_ports, evidence.top_peers)


def next_commands(a: Assessment) -> list[str]:
    """Each suggestion as the line a person copies: command, then '# on HOST: why'."""
    return [s.line for s in suggestions(a)]
