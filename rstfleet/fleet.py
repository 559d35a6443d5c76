"""What no single-host alert can see: the same peer hitting several hosts, the same port resetting
across a group, the causes summed over the fleet, and both ends of each reset paired (pairing.py).
Pure functions over ranked assessments."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from .analysis import Assessment
from .pairing import BothEnds, fleet_ends


@dataclass
class FleetSummary:
    hosts: int
    checked: int
    not_checked: int
    resets_sent_per_s_total: float
    worst: list[str]
    causes: dict[str, float]                 # cause -> resets/s across the fleet
    shared_peers: list[dict] = field(default_factory=list)   # {"peer", "hosts", "resets"}
    shared_ports: list[dict] = field(default_factory=list)   # {"port", "hosts", "groups", "listening"}
    both_ends: BothEnds = field(default_factory=lambda: BothEnds([]))   # received resets paired (pairing.py)


def _common_groups(assessments: list[Assessment]) -> list[str]:
    groups = [set(a.result.groups) for a in assessments]
    return sorted(set.intersection(*groups) - {"all", "ungrouped"}) if groups else []


def summarize_fleet(assessments: list[Assessment], top: int = 5) -> FleetSummary:
    checked = [a for a in assessments if a.rank is not None]
    causes: dict[str, float] = defaultdict(float)
    peer_hosts: dict[str, dict[str, int]] = defaultdict(dict)
    port_hosts: dict[int, list[Assessment]] = defaultdict(list)
    for a in checked:
        rate = a.resets_sent_per_s or 0.0
        if not a.evidence:
            continue
        for cause in a.evidence.causes:
            causes[cause.key] += rate * cause.share
        for peer, count in a.evidence.top_peers:
            peer_hosts[peer][a.host] = count
        for port in a.evidence.top_ports:
            port_hosts[port.port].append(a)
    shared_peers = [{"peer": peer, "hosts": sorted(hosts), "resets": sum(hosts.values())}
                    for peer, hosts in peer_hosts.items() if len(hosts) >= 2]
    shared_peers.sort(key=lambda p: (-len(p["hosts"]), -p["resets"], p["peer"]))
    shared_ports = []
    for port, members in port_hosts.items():
        if len(members) < 2:
            continue
        listening = {p.listening for a in members for p in a.evidence.top_ports if p.port == port}
        shared_ports.append({"port": port, "hosts": sorted(a.host for a in members),
                             "groups": _common_groups(members),
                             "listening": listening.pop() if len(listening) == 1 else None})
    shared_ports.sort(key=lambda p: (-len(p["hosts"]), p["port"]))
    return FleetSummary(
        hosts=len(assessments), checked=len(checked), not_checked=len(assessments) - len(checked),
        resets_sent_per_s_total=sum(a.resets_sent_per_s or 0.0 for a in checked),
        worst=[a.host for a in checked if (a.resets_sent_per_s or 0) > 0][:top],
        causes=dict(sorted(causes.items(), key=lambda kv: -kv[1])),
        shared_peers=shared_peers[:20], shared_ports=shared_ports[:20],
        both_ends=fleet_ends([(a.host, a.result.address, a.result.document) for a in checked]))
