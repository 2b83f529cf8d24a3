"""Reach without reciprocity, judged against what busy callers show today.

Ordinary busy callers (couriers, dispatchers, shops, people) are called back:
some of the strangers they call, or miss, call them.  A number that keeps
calling strangers and is never called at all is far outside that, whatever
its hourly rate.  :class:`ReachJudge` learns, from the busy callers the
detector judges (numbers over ``[alerts].min_attempts``, not alerted), the
distribution of *calls received per call made* and of *strangers called*
(:mod:`detectors.references`), and alerts a number when

- it called at least ``min_strangers`` strangers in ``horizon_s``,
- it received at most ``max_returns`` calls in that time, and that few is
  improbable for a busy caller: busy callers today receive a
  ``reference_quantile`` share of a call per call made or more, so over its
  calls that are older than ``settle_s`` (people return a call later, not at
  once) ``expected`` returns were to be expected, and an ordinary caller gets
  no more than it did with a chance of at most ``exp(-min_expected_returns)``
  (Poisson; with none received: at least ``min_expected_returns`` expected),
- at most a ``max_contact_ratio`` share of its calls went to contacts, at most
  a ``max_stranger_repeat_ratio`` share called a stranger again, and it tried
  again at most a ``max_missed_retry_ratio`` share of the calls it missed (a
  courier, booking desk or notice line retries the people it missed: it wants
  *them*; a list dialer does not care who answers),
- its answered calls last under ``max_mean_talk_s`` on average: a number whose
  calls are conversations talks with the people it calls (a company's
  call-back agents: their customers call the hotline, not the agent back).

Nothing here depends on an hourly rate: three times the calls means three
times the expected returns.  That cuts both ways: a legitimate class called
back less than the reference (couriers) is alerted once it is busy enough
(README, Limits: rates).  Before ``min_samples`` busy callers were seen there
is no reference and no reach alert.

>>> from detectors.config import ReachSettings
>>> judge = ReachJudge(ReachSettings(min_samples=10))
>>> for i in range(50):
...     judge.learn({"inbound_ratio": 0.5, "strangers": 5.0}, t=float(i))
>>> farm = {"attempts": 40.0, "strangers": 38.0, "inbound": 0.0, "contact_ratio": 0.0}
>>> match = judge.judge(farm, settled=30.0)
>>> match.profile
'reach'
>>> match.reasons[2].split(", ")[1]
'15 expected over 30 calls made over 1 h ago; so few: chance e^-15.3 (<= e^-6)'
>>> judge.judge(dict(farm, inbound=3.0), settled=30.0) is None
True
>>> judge.judge(dict(farm, mean_talk_s=140.0), settled=30.0) is None  # conversations
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from detectors.config import ReachSettings
from detectors.references import References
from detectors.rules import RuleMatch, horizon_text

#: What the reference learns about busy callers.
REFERENCE_FEATURES = ("inbound_ratio", "strangers")
_MAX_VOLUME_FACTOR = 3.0


def few_returns_surprise(received: float, expected: float) -> float:
    """How surprising so few returns are: ``-ln P(X <= received)`` for X Poisson(``expected``).

    With none received it is ``expected`` itself (the chance of none is ``e^-expected``).
    A sliding-window count is rounded up: a fraction of a call is a call.

    >>> few_returns_surprise(0, 6.0), round(few_returns_surprise(1, 6.0), 2)
    (6.0, 4.05)
    >>> round(few_returns_surprise(2, 14.0), 1), few_returns_surprise(3, 0.0)
    (9.3, 0.0)
    """
    if expected <= 0:
        return 0.0
    term = total = 1.0
    for k in range(1, math.ceil(received) + 1):
        term *= expected / k
        total += term
    return max(0.0, expected - math.log(total))


class ReachJudge:
    """Learned references of busy callers and the reach judgement over them."""

    def __init__(self, settings: ReachSettings, references: References | None = None) -> None:
        self.settings = settings
        self.references = references if references is not None else References(
            REFERENCE_FEATURES, settings.half_life_s)

    def learn(self, features: Mapping[str, float], t: float) -> None:
        """One busy caller's features over ``horizon_s`` (not an alerted one)."""
        self.references.learn(features, t)

    @property
    def warmed_up(self) -> bool:
        return self.references.samples >= self.settings.min_samples

    def judge(self, features: Mapping[str, float], settled: float) -> RuleMatch | None:
        """A reach match for one number's features over ``horizon_s``, or None.

        ``settled`` is how many of its calls in ``horizon_s`` are older than ``settle_s``.
        """
        rs = self.settings
        if not rs.enabled or not self.warmed_up:
            return None
        strangers = features.get("strangers", 0.0)
        if strangers < rs.min_strangers:
            return None
        returns = features.get("inbound", 0.0)
        contact_ratio = features.get("contact_ratio", 0.0)
        repeats = features.get("stranger_repeat_ratio", 0.0)
        retried = features.get("missed_retry_ratio", 0.0)
        talk = features.get("mean_talk_s", 0.0)
        if (returns > rs.max_returns or contact_ratio > rs.max_contact_ratio
                or repeats > rs.max_stranger_repeat_ratio
                or retried > rs.max_missed_retry_ratio or talk >= rs.max_mean_talk_s):
            return None
        per_call = self.references.quantile("inbound_ratio", rs.reference_quantile)
        expected = settled * per_call
        surprise = few_returns_surprise(returns, expected)
        if surprise < rs.min_expected_returns:
            return None
        horizon = horizon_text(rs.horizon_s)
        rank = self.references.rank("strangers", strangers)
        typical = self.references.quantile("strangers", 0.5)
        reasons = [
            f"reach: calls strangers and {'hardly anybody' if returns > 0 else 'nobody'} calls "
            "back, unlike busy callers today",
            f"{strangers:.0f} strangers called in {horizon} (>= {rs.min_strangers:g}), "
            f"more than {100 * rank:.1f} % of busy callers today (median {typical:.0f})",
            f"{math.ceil(returns):.0f} calls received; busy callers today receive "
            f"{per_call:.2f} per call made, {expected:.0f} expected over {settled:.0f} calls "
            f"made over {horizon_text(rs.settle_s)} ago; so few: chance e^-{surprise:.1f} "
            f"(<= e^-{rs.min_expected_returns:g})",
            f"share of calls to contacts {contact_ratio:.2f} (<= {rs.max_contact_ratio:g}), "
            f"calling a stranger again {repeats:.2f} (<= {rs.max_stranger_repeat_ratio:g}), "
            f"missed calls tried again {retried:.2f} (<= {rs.max_missed_retry_ratio:g}), "
            f"mean talk {talk:.0f} s (< {rs.max_mean_talk_s:g})",
        ]
        factor = surprise / rs.min_expected_returns
        score = rs.weight * min(_MAX_VOLUME_FACTOR, factor)
        return RuleMatch(profile="reach", score=score, reasons=reasons)
