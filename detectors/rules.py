"""Explainable rule profiles: thresholds from settings, reasons an analyst can read.

A profile (``[rules.NAME]`` in the settings) is a conjunction of
``min_<feature>`` / ``max_<feature>`` conditions over one horizon.  When every
condition holds, :func:`evaluate` returns a :class:`RuleMatch` whose reasons
state each measured value beside its threshold.  The score is the profile's
weight times how far past the volume floor the number is (capped at 3x): a
number that blows far past ``min_attempts`` ranks above one just over it.

>>> from detectors.config import RuleProfile
>>> p = RuleProfile(name="burst", description="bulk burst", horizon_s=600, weight=2.0,
...                 min={"attempts": 40}, max={"answer_ratio": 0.3})
>>> m = evaluate(p, {"attempts": 412.0, "answer_ratio": 0.12})
>>> m.score, m.reasons
(6.0, ['burst: bulk burst', '412 calls in 10 min (>= 40)', 'answer rate 0.12 (<= 0.3)'])
>>> evaluate(p, {"attempts": 412.0, "answer_ratio": 0.5}) is None
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from detectors.catalogue import CATALOGUE, MISSED_CALLS, NEW_CALLEES
from detectors.config import RuleProfile

_MAX_VOLUME_FACTOR = 3.0


@dataclass(frozen=True, slots=True)
class RuleMatch:
    profile: str
    score: float
    reasons: list[str]


def horizon_text(seconds: int) -> str:
    """``600`` -> ``'10 min'``; ``3600`` -> ``'1 h'``; ``45`` -> ``'45 s'``."""
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def _fmt(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}".rstrip("0")


def _phrase(feature: str, value: float, horizon_s: int) -> str:
    return CATALOGUE[feature].text(value, horizon_text(horizon_s))


def wilson_bounds(ratio: float, n: float, z: float) -> tuple[float, float]:
    """Wilson score interval of a proportion observed over ``n`` trials.

    >>> low, high = wilson_bounds(0.5, 16, 1.0)
    >>> round(low, 3), round(high, 3)
    (0.379, 0.621)
    >>> wilson_bounds(0.5, 0, 1.0)
    (0.0, 1.0)
    """
    if n <= 0:
        return 0.0, 1.0
    if z <= 0:
        return ratio, ratio
    z2n = z * z / n
    centre = (ratio + z2n / 2) / (1 + z2n)
    half = z * math.sqrt(max(0.0, ratio * (1 - ratio)) / n + z2n / (4 * n)) / (1 + z2n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _bounds(feature: str, features: Mapping[str, float], z: float) -> tuple[float, float]:
    value = features.get(feature, 0.0)
    denominator = CATALOGUE[feature].denominator
    if denominator is None or z <= 0:
        return value, value
    if denominator == NEW_CALLEES:
        n = features.get("distinct_ratio", 0.0) * features.get("attempts", 0.0)
    elif denominator == MISSED_CALLS:
        n = features.get("attempts", 0.0) - features.get("answered", 0.0)
    else:
        n = features.get(denominator, 0.0)
    return wilson_bounds(min(1.0, max(0.0, value)), n, z)


def evaluate(profile: RuleProfile, features: Mapping[str, float],
             confidence_z: float = 0.0) -> RuleMatch | None:
    """The match of one profile against features over its horizon, or None.

    With ``confidence_z`` > 0 a ratio must clear its threshold with its Wilson
    bound (``min_`` with the lower, ``max_`` with the upper bound), so a ratio
    measured over a handful of calls is not taken at face value.
    """
    if not profile.enabled:
        return None
    lows: dict[str, float] = {}
    highs: dict[str, float] = {}
    for feature, floor in profile.min.items():
        low = _bounds(feature, features, confidence_z)[0]
        if low < floor:
            return None
        lows[feature] = low
    for feature, ceiling in profile.max.items():
        high = _bounds(feature, features, confidence_z)[1]
        if high > ceiling:
            return None
        highs[feature] = high
    reasons = [f"{profile.name}: {profile.description}"]
    for feature, floor in profile.min.items():
        reasons.append(_reason(profile, feature, features, lows[feature], ">=", floor,
                               "at least"))
    for feature, ceiling in profile.max.items():
        reasons.append(_reason(profile, feature, features, highs[feature], "<=", ceiling,
                               "at most"))
    floor = profile.min["attempts"]
    factor = features.get("attempts", 0.0) / floor if floor > 0 else 1.0
    score = profile.weight * min(_MAX_VOLUME_FACTOR, max(1.0, factor))
    return RuleMatch(profile=profile.name, score=score, reasons=reasons)


def _reason(profile: RuleProfile, feature: str, features: Mapping[str, float], bound: float,
            op: str, threshold: float, word: str) -> str:
    value = features.get(feature, 0.0)
    text = _phrase(feature, value, profile.horizon_s)
    if abs(bound - value) > 0.005:
        return f"{text}, {word} {bound:.2f} with confidence ({op} {_fmt(threshold)})"
    return f"{text} ({op} {_fmt(threshold)})"
