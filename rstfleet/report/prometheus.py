"""Prometheus text format for node_exporter's textfile collector.

    # HELP rstfleet_resets_sent_per_second TCP resets sent per second over the window (Tcp OutRsts).
    # TYPE rstfleet_resets_sent_per_second gauge
    rstfleet_resets_sent_per_second{host="h02"} 59.99

Write it atomically into the collector's directory (the collector may read a half-written file):
``rstfleet sweep -q --format prometheus -o DIR/rstfleet.prom.tmp && mv DIR/rstfleet.prom.tmp
DIR/rstfleet.prom``. Hosts that could not be checked have ``rstfleet_host_up 0`` and no rate
(absent, not 0: "no data" must not read as "no resets"). ``rstfleet_verdict`` is a state set:
one series per verdict, 1 for the host's current one. Label values pass `escape.prometheus_label`.
"""

from __future__ import annotations

import time

from ..analysis import VERDICT_ORDER, Assessment, Thresholds
from ..fleet import summarize_fleet
from ..pairing import PairVerdict
from . import view
from .escape import prometheus_label

METRICS = {
    "rstfleet_resets_sent_per_second":
        "TCP resets sent per second over the window (growth of Tcp OutRsts).",
    "rstfleet_baseline_resets_per_second":
        "Lifetime average of TCP resets sent per second (Tcp OutRsts / uptime).",
    "rstfleet_host_up": "1 if the host was checked, 0 if it could not be (status says why).",
    "rstfleet_cause_resets_per_second": "TCP resets sent per second attributed to each cause.",
    "rstfleet_score": "Ranking score: resets/s weighted by spike and cause severity.",
    "rstfleet_verdict": "1 for the host's verdict (ok, warn, crit, unknown), 0 for the others.",
    "rstfleet_resets_received_per_second":
        "TCP resets received per second over the window (tcp:tcp_receive_reset, else the capture).",
    "rstfleet_resets_not_sent_by_kernel":
        "Resets a host received from a fleet host whose kernel sent none of them (firewall, middlebox).",
    "rstfleet_expected_resets_per_second": "TCP resets sent per second that declared expected-reset "
                                           "rules excuse (still in resets_sent; left out of verdict and score).",
    "rstfleet_phase2_covered": "triage: 1 if phase 2 dug into the host, 0 if it was left out "
                               "(the other reports say why and give the command).",
    "rstfleet_verdict_rule": "1 for the rule that produced the host's verdict (netdata agent, "
                             "Netdata rule, exact, lifetime baseline).",
    "rstfleet_last_run_timestamp_seconds": "Unix time at which this report was written.",
}


def _labels(host: str, **labels: object) -> str:
    """host is already escaped (see host_labels); the other values are escaped here."""
    return "{" + ",".join([f'host="{host}"'] + [f'{key}="{prometheus_label(value, 200)}"'
                                                 for key, value in labels.items()]) + "}"


def host_labels(assessments: list[Assessment]) -> dict[int, str]:
    """Each host's label value; two names that escape or cut to the same text get " (2)" added,
    as duplicate series make node_exporter reject the whole file."""
    seen: set[str] = set()
    labels = {}
    for index, a in enumerate(assessments):
        label, n = prometheus_label(a.host, 200), 1
        while label in seen:
            n += 1
            label = f"{prometheus_label(a.host, 200)} ({n})"
        seen.add(label)
        labels[index] = label
    return labels


def _value(number: float) -> str:
    """'1', '0.166590', '1795598536.607979': integers bare, the rest to the microunit."""
    number = round(float(number), 6)
    return str(int(number)) if number.is_integer() and abs(number) < 1e15 else repr(number)


def render_prometheus(assessments: list[Assessment], thresholds: Thresholds, meta: dict) -> str:
    samples: dict[str, list[str]] = {name: [] for name in METRICS}

    def add(name: str, labels: str, number: float) -> None:
        samples[name].append(f"{name}{labels} {_value(number)}")

    names = host_labels(assessments)
    covered = {**{name: 1 for name in meta.get("phase2_hosts") or ()},
               **{note.host: 0 for note in view.left_out(meta)}}
    for index, a in enumerate(assessments):
        host = _labels(names[index])
        add("rstfleet_host_up", _labels(names[index], status=a.result.status), 1 if a.rank is not None else 0)
        for verdict in VERDICT_ORDER:
            add("rstfleet_verdict", _labels(names[index], verdict=verdict), 1 if a.verdict == verdict else 0)
        if a.host in covered:
            add("rstfleet_phase2_covered", host, covered[a.host])
        if a.rank is None:
            continue
        if a.resets_sent_per_s is not None:
            add("rstfleet_resets_sent_per_second", host, a.resets_sent_per_s)
        if a.baseline_per_s is not None:
            add("rstfleet_baseline_resets_per_second", host, a.baseline_per_s)
        add("rstfleet_score", host, a.score)
        add("rstfleet_verdict_rule", _labels(names[index], rule=a.rule), 1)
        for cause, rate in view.cause_rates(a):
            add("rstfleet_cause_resets_per_second", _labels(names[index], cause=cause), rate)
        if a.evidence is not None and a.evidence.expected is not None:
            add("rstfleet_expected_resets_per_second", host, a.expected_per_s)
    label_of = {a.host: names[index] for index, a in enumerate(assessments)}
    for a in view.checked(assessments):
        received = a.evidence.received if a.evidence else None
        if received is not None and received.resets is not None and a.window_s:
            add("rstfleet_resets_received_per_second", _labels(label_of[a.host]), received.resets / a.window_s)
    not_sent: dict[tuple[str, str], int] = {}
    for pair in summarize_fleet(assessments).both_ends.pairs:
        if pair.verdict == PairVerdict.NOT_SENT:
            key = (pair.receiver, pair.sender)
            not_sent[key] = not_sent.get(key, 0) + pair.received
    for (receiver, sender), count in sorted(not_sent.items()):
        add("rstfleet_resets_not_sent_by_kernel", _labels(label_of[receiver], sender=sender), count)
    add("rstfleet_last_run_timestamp_seconds", "", time.time())
    lines = []
    for name, help_text in METRICS.items():
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"] + samples[name]
    return "\n".join(lines) + "\n"
