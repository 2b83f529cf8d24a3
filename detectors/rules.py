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

from collections.abc import Mapping
from dataclasses import dataclass

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


_PHRASES: dict[str, str] = {
    "answered": "{v} answered",
    "answer_ratio": "answer rate {v}",
    "short_call_ratio": "share of answered calls under the short-call limit {v}",
    "mean_talk_s": "mean talk {v} s",
    "ring_once_ratio": "ring-once share {v}",
    "failed_ratio": "failed share {v}",
    "distinct_ratio": "distinct-callee share {v}",
    "repeat_refused": "{v} repeat calls to people who refused twice",
    "repeat_refused_ratio": "repeat-after-refusal share {v}",
    "sequential_ratio": "sequential-number share {v}",
    "inbound": "{v} calls received",
    "inbound_ratio": "calls received per call made {v}",
    "callback_ratio": "call-back rate {v}",
    "calls_per_min": "{v} calls per minute",
    "gap_cv": "inter-call gap variation {v}",
    "virtual": "virtual-operator segment {v}",
}


def _phrase(feature: str, value: float, horizon_s: int) -> str:
    if feature == "attempts":
        return f"{value:.0f} calls in {horizon_text(horizon_s)}"
    return _PHRASES[feature].format(v=f"{value:.2f}" if feature != "repeat_refused"
                                    and feature != "inbound" and feature != "answered"
                                    else f"{value:.0f}")


def evaluate(profile: RuleProfile, features: Mapping[str, float]) -> RuleMatch | None:
    """The match of one profile against features over its horizon, or None."""
    if not profile.enabled:
        return None
    for feature, floor in profile.min.items():
        if features.get(feature, 0.0) < floor:
            return None
    for feature, ceiling in profile.max.items():
        if features.get(feature, 0.0) > ceiling:
            return None
    reasons = [f"{profile.name}: {profile.description}"]
    for feature, floor in profile.min.items():
        reasons.append(f"{_phrase(feature, features.get(feature, 0.0), profile.horizon_s)} "
                       f"(>= {_fmt(floor)})")
    for feature, ceiling in profile.max.items():
        reasons.append(f"{_phrase(feature, features.get(feature, 0.0), profile.horizon_s)} "
                       f"(<= {_fmt(ceiling)})")
    floor = profile.min["attempts"]
    factor = features.get("attempts", 0.0) / floor if floor > 0 else 1.0
    score = profile.weight * min(_MAX_VOLUME_FACTOR, max(1.0, factor))
    return RuleMatch(profile=profile.name, score=score, reasons=reasons)
