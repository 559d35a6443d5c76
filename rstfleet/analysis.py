"""From per-host results to verdicts and a ranking: pure functions, no I/O.

The rate is the alert's own figure: Tcp OutRsts growth over the measured window, per second.
Verdicts (defaults documented in the README):
    crit   rate >= crit threshold
    warn   rate >= warn threshold, or a Netdata-style spike: the window average is more than
           spike_factor times the lifetime baseline (with the baseline floored at spike_floor/s,
           so a quiet host going from 0.01/s to 0.5/s is not a spike)
    ok     otherwise
    unknown  the host could not be checked

Expected resets (expected.py: rules the user declared, given to ``assess`` as data) are still
counted in the rate, but the verdict, the spike, the score and so the ranking and the exit code
use only the resets no rule excuses (``counted_per_s``).

Which rule produced each verdict is recorded (`Assessment.rule`, every report shows it):
    netdata agent         the host's Netdata agent's own alarm status (CLEAR ok, WARNING warn,
                          CRITICAL crit), when asked (`--netdata`) and it has one
    Netdata rule, exact   Netdata's rule applied by rstfleet to the minute measured before the
                          window (`--baseline exact`), when there is no agent verdict
    lifetime baseline     the thresholds and spike rule above (the cheap default)
The lifetime verdict is always kept beside (`lifetime_verdict`), so a report shows where the
two baselines disagree (netdata_rule.py says why they can).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from .probe.host.limits import CRIT, FAIL_ON_DEFAULT, SPIKE_FACTOR, SPIKE_FLOOR, WARN
from .evidence.causes import HostEvidence, severity
from .evidence.host import host_evidence
from .expected import Expectation, unexpected_causes
from .netdata_rule import Episode, NetdataView, agent_view, episode, exact_view, history_of
from .probe.document import ProbeDocument
from .results import HostResult, Status



class Verdict(str, Enum):
    """rstfleet's verdict on a host; string-valued like Status."""

    CRIT = "crit"
    WARN = "warn"
    OK = "ok"
    UNKNOWN = "unknown"     # the host could not be checked

    __str__ = str.__str__
    __format__ = str.__format__


class Rule(str, Enum):
    """The rule that produced a host's verdict; string-valued like Verdict."""

    NETDATA_AGENT = "netdata agent"
    NETDATA_EXACT = "Netdata rule, exact"
    LIFETIME = "lifetime baseline"

    __str__ = str.__str__
    __format__ = str.__format__


VERDICT_ORDER = {Verdict.CRIT: 3, Verdict.WARN: 2, Verdict.OK: 1, Verdict.UNKNOWN: 0}

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_OVER_THRESHOLD = 4
EXIT_HOSTS_MISSED = 8
EXIT_INTERRUPTED = 130         # Ctrl-C: a partial report is still written


@dataclass(frozen=True)
class Thresholds:
    warn: float = WARN
    crit: float = CRIT
    spike_factor: float = SPIKE_FACTOR
    spike_floor: float = SPIKE_FLOOR


@dataclass
class Assessment:
    result: HostResult
    rank: int | None
    resets_sent_per_s: float | None
    baseline_per_s: float | None
    verdict: Verdict
    spike: bool
    window_s: float | None
    evidence: HostEvidence | None = None
    score: float = 0.0
    score_explained: str = ""
    expected_per_s: float = 0.0         # resets/s declared rules excuse (still in resets_sent_per_s)
    rule: Rule = Rule.LIFETIME
    lifetime_verdict: Verdict | None = None   # the lifetime-baseline rule's verdict, always kept
    netdata: NetdataView | None = None        # Netdata's verdict (agent or exact), when known
    episode: Episode | None = None            # start, peak, still going: from the OutRsts history

    @property
    def host(self) -> str:
        return self.result.host

    @property
    def counted_per_s(self) -> float:
        """The resets/s verdicts, scores and ranks count: the rate less the expected ones."""
        return max(0.0, (self.resets_sent_per_s or 0.0) - self.expected_per_s)


def resets_rate(document: ProbeDocument) -> tuple[float | None, float | None]:
    """(OutRsts per second over the window, measured window in seconds)."""
    window, delta = document.measured_s, document.out_rsts
    if delta is None or window <= 0:
        return None, window
    return delta / window, window


def verdict_for(rate: float | None, baseline: float | None, thresholds: Thresholds) -> tuple[Verdict, bool]:
    if rate is None:
        return Verdict.UNKNOWN, False
    spike = rate > thresholds.spike_factor * max(baseline or 0.0, thresholds.spike_floor)
    if rate >= thresholds.crit:
        return Verdict.CRIT, spike
    if rate >= thresholds.warn or spike:
        return Verdict.WARN, spike
    return Verdict.OK, spike


SPIKE_WEIGHT = 1.5


def score_for(rate: float | None, spike: bool, evidence: HostEvidence | None,
              expected_per_s: float = 0.0) -> tuple[float, str]:
    """score = resets/s × spike weight × cause severity, with the sum written out for people.
    Expected resets are left out of the rate and of the causes' severity."""
    counted = max(0.0, (rate or 0.0) - expected_per_s)
    spike_weight = SPIKE_WEIGHT if spike else 1.0
    causes = unexpected_causes(evidence.causes, evidence.expected) if evidence else []
    cause_weight = severity(causes) if evidence else 1.0
    score = counted * spike_weight * cause_weight
    rate_text = (f"{counted:.1f}/s not expected ({rate or 0.0:.1f} − {expected_per_s:.1f} expected)"
                 if expected_per_s > 0 else f"{counted:.1f}/s")
    return score, f"{rate_text} × {spike_weight:g} (spike) × {cause_weight:.2f} (cause severity) = {score:.1f}"


def netdata_verdict(document: ProbeDocument, rate: float | None,
                    window: float | None) -> tuple[NetdataView | None, Rule | None]:
    """Netdata's view of the host and, when it gives a verdict, the rule that gave it: the
    agent's alarm first, then the exact rule; (view kept for the report, None) otherwise."""
    agent = agent_view(document.netdata)
    exact = exact_view(document.exact_baseline, rate, window)
    if agent is not None and agent.verdict is not None:
        return agent, Rule.NETDATA_AGENT
    if exact is not None and exact.verdict is not None:
        notes = exact.notes + ((agent.reason,) if agent is not None else ())
        return replace(exact, notes=notes), Rule.NETDATA_EXACT
    return agent or exact, None


def _checked(result: HostResult, thresholds: Thresholds, expectations: tuple = ()) -> Assessment:
    """One checked host: the lifetime rule on the resets no rule excuses, Netdata's rule when it
    gives a verdict, the evidence and the score."""
    document = result.document
    rate, window = resets_rate(document)
    baseline = document.baseline_per_s
    evidence = host_evidence(result, expectations)
    expected_per_s = (rate or 0.0) * evidence.expected.share if evidence and evidence.expected else 0.0
    counted = None if rate is None else max(0.0, rate - expected_per_s)
    lifetime, spike = verdict_for(counted, baseline, thresholds)
    view, rule = netdata_verdict(document, rate, window)
    verdict = lifetime
    if rule is not None and rate is not None:
        verdict = Verdict(view.verdict)
        spike = verdict != Verdict.OK
    history, source = history_of(document.netdata, document.exact_baseline)
    score, explained = score_for(rate, spike, evidence, expected_per_s)
    return Assessment(result, None, rate, baseline, verdict, spike, window, evidence, score, explained,
                      expected_per_s=expected_per_s, rule=rule or Rule.LIFETIME, lifetime_verdict=lifetime,
                      netdata=view, episode=episode(history, thresholds.warn, source) if history else None)


def assess(results: list[HostResult], thresholds: Thresholds = Thresholds(),
           expected: dict[str, tuple[Expectation, ...]] | None = None) -> list[Assessment]:
    """Rank checked hosts by score (resets sent per second weighted by spike and cause), worst
    first; unchecked hosts follow by name. ``expected``: each host's declared expected-reset
    rules; what they match is shown but does not count towards verdict, score or rank."""
    checked, missed = [], []
    for result in results:
        if result.status != Status.OK or result.probe is None:
            missed.append(Assessment(result, None, None, None, Verdict.UNKNOWN, False, None))
        else:
            checked.append(_checked(result, thresholds, (expected or {}).get(result.host, ())))
    missed.sort(key=lambda a: a.host)
    return rank_checked(checked) + missed


def rank_checked(checked: list[Assessment]) -> list[Assessment]:
    """Worst first (score, then the rate no rule excuses, then name), ranks from 1."""
    checked.sort(key=lambda a: (-a.score, -a.counted_per_s, a.host))
    for rank, assessment in enumerate(checked, start=1):
        assessment.rank = rank
    return checked


def exit_code(assessments: list[Assessment], fail_on: str = FAIL_ON_DEFAULT) -> int:
    """Bit flags, so a pipeline can tell both apart: 4 = over threshold, 8 = hosts not checked."""
    code = EXIT_OK
    floor = VERDICT_ORDER.get(fail_on)  # "never": thresholds never fail the run
    if floor is not None and any(VERDICT_ORDER[a.verdict] >= floor for a in assessments
                                 if a.verdict != Verdict.UNKNOWN):
        code |= EXIT_OVER_THRESHOLD
    if any(a.verdict == Verdict.UNKNOWN for a in assessments):
        code |= EXIT_HOSTS_MISSED
    return code
