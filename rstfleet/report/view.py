"""What every format says, worded once: headline, fleet findings, per-host detail lines.

These are plain, *unescaped* sentences built from the ranked assessments; each renderer escapes
them for its own sink (`escape.py`) and lays them out. Keeping the wording here means the table,
the Markdown, the HTML and the JUnit output tell the same story:

    198.18.0.9 got resets from 4 hosts: h01, h02, h07, h09 (1320 resets)
    port 8080 resets on 3 hosts of group web, nothing listens
"""

from __future__ import annotations

import time
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
    expected = expected_fleet_line(assessments)
    if expected:
        lines.insert(2, expected)
    return FleetView(summary, lines)


def has_resets(a: Assessment) -> bool:
    return a.rank is not None and (a.resets_sent_per_s or 0.0) > 0.005


SPARK = "▁▂▃▄▅▆▇█"


def sparkline(history: list, width: int = 24) -> str:
    """'▁▁▁▁▅██▇' — OutRsts/s over time in ``width`` buckets (each its highest point, so a short
    burst still shows), scaled to the highest point; '' without history."""
    if not history:
        return ""
    buckets = [[] for _ in range(min(width, len(history)))]
    for i, (_, value) in enumerate(history):
        buckets[i * len(buckets) // len(history)].append(value)
    peak = max(max(b) for b in buckets)
    if peak <= 0:
        return SPARK[0] * len(buckets)
    return "".join(SPARK[min(len(SPARK) - 1, int(max(b) / peak * (len(SPARK) - 1) + 0.5))] for b in buckets)


def clock_text(epoch: float | None) -> str:
    return "-" if epoch is None else time.strftime("%H:%M:%SZ", time.gmtime(epoch))


def rule_text(a: Assessment) -> str:
    """Which rule produced the verdict: 'netdata agent', 'Netdata rule, exact', 'lifetime baseline'."""
    return str(a.rule) if a.rank is not None else "-"


def shows_netdata(assessments: list[Assessment]) -> bool:
    """True when some host has Netdata's view (an agent that answered, the exact rule) or a history:
    the formats then add the Netdata, lifetime and history columns."""
    return any(a.episode is not None or (a.netdata is not None and (a.netdata.status or a.netdata.source == "exact"))
               for a in checked(assessments))


def netdata_text(a: Assessment) -> str:
    """Netdata's verdict: the agent's status ('WARNING'), 'warn (exact)', or '-'."""
    view = a.netdata
    if view is None:
        return "-"
    if view.source == "exact":
        return f"{view.verdict} (exact)" if view.verdict else "-"
    return view.status or "-"


def lifetime_text(a: Assessment) -> str:
    return str(a.lifetime_verdict) if a.lifetime_verdict is not None else "-"


def episode_text(a: Assessment) -> str:
    """'over 10/s since 14:02:05Z, peak 80.0/s at 14:02:30Z, still going' (the latest run)."""
    e = a.episode
    if e is None:
        return "-"
    span = f"in the {e.last_at - e.first_at:.0f} s of history"
    if e.started_at is None:
        return f"never ≥ {e.line:g}/s {span}; peak {e.peak_per_s:.1f}/s at {clock_text(e.peak_at)}"
    since = ("before " if e.started_before_history else "") + clock_text(e.started_at)
    going = "still going" if e.still_going else f"ended by {clock_text(e.last_at)}"
    return f"≥ {e.line:g}/s since {since}, peak {e.peak_per_s:.1f}/s at {clock_text(e.peak_at)}, {going}"


def alert_lines(a: Assessment) -> list[tuple[str, str]]:
    """(label, line) pairs saying which rule produced the verdict and what Netdata says."""
    if a.rank is None:
        return []
    lines = []
    view = a.netdata
    if view is not None and view.verdict is not None and view.line is not None:
        since = f" since {clock_text(view.since)}" if view.since else ""
        status = f" {view.status}{since}" if view.status else ""
        lines.append(("rule", f"{a.verdict} by the {a.rule}: {view.alarm}{status}, "
                              f"{rate_text(view.value, 1)}/s vs line {view.line:.1f}/s = max(1m "
                              f"{rate_text(view.baseline_1m, 1)}/s, 5) × {view.line / max(view.baseline_1m or 0, 5):g}"))
    elif view is not None and view.verdict is not None:
        lines.append(("rule", f"{a.verdict} by the {a.rule}: {view.alarm} {view.status or ''}".rstrip()))
    else:
        lines.append(("rule", f"{a.verdict} by the {a.rule} (rate vs --warn/--crit, spike over lifetime average)"))
    if a.rule != "lifetime baseline" and a.lifetime_verdict is not None:
        agree = "agrees" if a.lifetime_verdict == a.verdict else "DISAGREES"
        lines.append(("lifetime", f"the lifetime baseline says {a.lifetime_verdict} "
                                  f"(baseline {rate_text(a.baseline_per_s)}/s): {agree}"))
    if view is not None and view.source == "agent":
        if view.status:
            extra = f", received {view.received_status}" if view.received_status else ""
            lines.append(("netdata", f"agent {view.version or '?'}: {view.alarm} {view.status}{extra}"
                                     + (f" — no verdict: {view.reason}" if view.reason else "")))
        else:
            lines.append(("netdata", view.reason))
    if a.episode is not None:
        lines.append(("resets", f"{episode_text(a)} ({a.episode.source}) {sparkline(a.episode.history)}"))
    lines.extend(("netdata note", note) for note in (view.notes if view is not None else ()))
    return lines


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


# --- expected resets (expected.py) and phase 2's coverage (sweep/coverage.py) -------------------

FLEET_LEFT_OUT_SHOWN = 20      # left-out hosts listed with their command in the fleet block


def expected_rate_text(a: Assessment) -> str:
    """'42.00' or '-' (no rule matched this host)."""
    return rate_text(a.expected_per_s) if a.expected_per_s > 0 else "-"


def any_expected(assessments: list[Assessment]) -> bool:
    return any(a.evidence is not None and a.evidence.expected is not None for a in assessments)


def expected_detail(a: Assessment) -> list[tuple[str, str]]:
    """One host's expected resets: how much its rules excuse, by rule, and rules it could not check."""
    expected = a.evidence.expected if a.evidence else None
    if expected is None:
        return []
    rate = a.resets_sent_per_s or 0.0
    lines = []
    if expected.matches:
        parts = [f"{m.described} {rate * m.share:.1f}/s ({m.resets} reset{'' if m.resets == 1 else 's'}; "
                 f"{m.rule.get('source')})"
                 for m in expected.matches]
        lines.append(("expected", f"{a.expected_per_s:.1f} of {rate:.1f} resets/s expected, left out of "
                                  f"verdict, score and exit code: " + "; ".join(parts)))
    elif not expected.unchecked:
        lines.append(("expected", f"0 of {rate:.1f} resets/s expected: no declared rule matched"))
    lines.extend(("expected", text) for text in expected.unchecked)
    return lines


def expected_fleet_line(assessments: list[Assessment]) -> tuple[str, str] | None:
    """'42.0 of 60.0 resets/s expected fleet-wide: LB health check on 8080 42.0/s (h1, h2)'."""
    if not any_expected(assessments):
        return None
    total = sum(a.resets_sent_per_s or 0.0 for a in checked(assessments))
    by_rule: dict[str, list] = {}
    for a in checked(assessments):
        expected = a.evidence.expected if a.evidence else None
        for m in expected.matches if expected else []:
            entry = by_rule.setdefault(m.described, [0.0, []])
            entry[0] += (a.resets_sent_per_s or 0.0) * m.share
            entry[1].append(a.host)
    excluded = sum(a.expected_per_s for a in checked(assessments))
    rules = "; ".join(f"{described} {rate:.1f}/s ({', '.join(hosts[:5])}"
                      f"{f' and {len(hosts) - 5} more' if len(hosts) > 5 else ''})"
                      for described, (rate, hosts) in sorted(by_rule.items(), key=lambda kv: -kv[1][0]))
    return ("expected", f"{excluded:.1f} of {total:.1f} resets/s expected fleet-wide, left out of verdicts"
                        + (f": {rules}" if rules else ": no declared rule matched"))


def left_out(meta: dict) -> list:
    """Triage's hosts phase 2 did not dig into (coverage.LeftOut), in rank order."""
    return list(meta.get("phase2_left_out") or [])


def phase2_fleet_lines(meta: dict) -> list[tuple[str, str]]:
    """The fleet block's phase-2 coverage: who was dug into, who was not, why, and the commands."""
    if meta.get("phase2_hosts") is None:
        return []
    dug = meta["phase2_hosts"]
    lines = [("phase 2", ("capture and owners on " + ", ".join(dug)) if dug else "dug into no host")]
    notes = left_out(meta)
    if notes:
        lines.append(("phase 2", f"{len(notes)} host(s) not dug into (bound --top "
                                 f"{meta.get('phase2_bound', '?')}): each with why and the command to dig"))
    for note in notes[:FLEET_LEFT_OUT_SHOWN]:
        lines.append(("not dug", f"{note.host}: {note.why}"))
        if note.line:
            lines.append(("dig", note.line))
    if len(notes) > FLEET_LEFT_OUT_SHOWN:
        lines.append(("not dug", f"and {len(notes) - FLEET_LEFT_OUT_SHOWN} more: each host's section and "
                                 f"the JSON report have their commands"))
    return lines


def phase2_host_lines(a: Assessment, meta: dict) -> list[tuple[str, str]]:
    """A left-out host's own note and dig command, for its section."""
    lines = []
    for note in left_out(meta):
        if note.host == a.host:
            lines.append(("phase 2", f"not dug into: {note.why}"))
            if note.line:
                lines.append(("dig", note.line))
    return lines


def host_lines(a: Assessment, meta: dict) -> list[tuple[str, str]]:
    """Everything a host's section shows: its detail, expected resets and phase-2 coverage."""
    detail = host_detail(a)
    detail = detail[:2] + alert_lines(a) + detail[2:]          # Netdata's verdict beside the rate
    at = next((i for i, (label, _) in enumerate(detail) if label == "score"), len(detail) - 1) + 1
    return detail[:at] + expected_detail(a) + detail[at:] + phase2_host_lines(a, meta)
