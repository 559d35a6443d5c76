"""Which hosts a person-facing report shows in full, and what it says about the rest (pure).

A table of 10,000 rows is not read, and the HTML of 10,000 detail sections does not open: past
REPORT_WHOLE_UP_TO hosts the terminal table and the HTML show the worst REPORT_TOP checked hosts
and REPORT_TOP unchecked ones in full, and the others as counts, with a line that says the JSON
report has every host. Markdown, JUnit, Prometheus and JSON stay whole (machines read them).

    … and 9,972 more checked hosts, not listed: 9,950 ok, 22 warn
    … and 7 more hosts not checked, not listed: 5 timeout, 2 auth_failed
    every host in full: the JSON report (--format json -o FILE)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ..analysis import Assessment
from ..probe.host.limits import REPORT_TOP, REPORT_WHOLE_UP_TO
from . import view

JSON_HINT = "every host in full: the JSON report (--format json -o FILE)"


@dataclass
class Shown:
    ranked: list[Assessment]                     # checked hosts listed, worst first
    missed: list[Assessment]                     # hosts not checked listed, by status then name
    hidden_verdicts: Counter = field(default_factory=Counter)   # checked hosts left out, by verdict
    hidden_statuses: Counter = field(default_factory=Counter)   # unchecked hosts left out, by status
    missed_statuses: Counter = field(default_factory=Counter)   # summarised: every unchecked host, by status

    @property
    def summarised(self) -> bool:
        return bool(self.hidden_verdicts or self.hidden_statuses)

    @property
    def detailed(self) -> list[Assessment]:
        """Listed hosts that sent resets: the ones given a detail section."""
        return [a for a in self.ranked if view.has_resets(a)]


def _counts(counter: Counter) -> str:
    return ", ".join(f"{count:,} {name}" for name, count in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


def shown(assessments: list[Assessment], whole_up_to: int = REPORT_WHOLE_UP_TO,
          top: int = REPORT_TOP) -> Shown:
    """Everything for a fleet of up to `whole_up_to` hosts; else the worst `top` of each kind.
    Unchecked hosts are listed with the most common status first: at scale one fault (a subnet
    down, a rotated key) is usually most of them."""
    ranked, missed = view.checked(assessments), view.not_checked(assessments)
    statuses = Counter(str(a.result.status) for a in missed)
    if len(assessments) <= whole_up_to:
        return Shown(ranked, missed)
    missed = sorted(missed, key=lambda a: (-statuses[str(a.result.status)], str(a.result.status), a.host))
    return Shown(ranked[:top], missed[:top], Counter(str(a.verdict) for a in ranked[top:]),
                 Counter(str(a.result.status) for a in missed[top:]), statuses)


def hidden_lines(view_of: Shown) -> list[str]:
    """The sentences that stand for the hosts left out (none when nothing is)."""
    lines = []
    if view_of.hidden_verdicts:
        lines.append(f"… and {sum(view_of.hidden_verdicts.values()):,} more checked hosts, not listed: "
                     f"{_counts(view_of.hidden_verdicts)}")
    if view_of.hidden_statuses:
        lines.append(f"… and {sum(view_of.hidden_statuses.values()):,} more hosts not checked, not listed: "
                     f"{_counts(view_of.hidden_statuses)}")
    if lines:
        lines.append(JSON_HINT)
    return lines


def not_checked_line(view_of: Shown) -> str:
    """The heading over the unchecked hosts; summarised, with every one of them counted by status:
    'Not checked (312 timeout, 4 auth_failed)'."""
    return f"Not checked ({_counts(view_of.missed_statuses)})" if view_of.missed_statuses else "Not checked"
