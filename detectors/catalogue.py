"""The feature catalogue: every per-number feature defined once.

Each :class:`Feature` names what a rule can test (``min_<name>`` /
``max_<name>``), the phrase its alert reason reads, whether it is a whole
count or a ratio (and over which denominator, for the Wilson bound), and how
the River model squashes it into [0, 1].  Rules' reasons, the model's vector,
config validation (``detectors.config.FEATURES``) and the README's feature
table all derive from :data:`CATALOGUE`; nothing else lists features.

>>> CATALOGUE["answer_ratio"].text(0.123)
'answer rate 0.12'
>>> CATALOGUE["strangers"].text(31.0, "6 h")
'31 strangers called in 6 h'
>>> CATALOGUE["attempts"].scaled(5000.0), CATALOGUE["answer_ratio"].scaled(-2.0)
(1.0, 0.0)
>>> CATALOGUE["virtual"].scaled(1.0) is None  # not part of the model's vector
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Denominators that are not themselves features: distinct new callees in the window, and
#: calls not answered (calls made less calls answered).
NEW_CALLEES = "_new_callees"
MISSED_CALLS = "_missed_calls"


@dataclass(frozen=True, slots=True)
class Feature:
    """One feature: how it reads, what it is a share of, how the model sees it.

    ``scale`` is ``"ratio"`` (clipped to [0, 1]), ``"log"`` (``log1p(v) /
    log1p(cap)``, clipped), ``"linear"`` (``v / cap``, clipped) or ``None``
    (the model does not see it).
    """

    name: str
    phrase: str  # "{v}" is replaced by the value
    meaning: str  # one line for the README
    whole: bool = False
    denominator: str | None = None  # for ratios: the feature (or NEW_CALLEES) counted over
    scale: str | None = "ratio"
    cap: float = 1.0

    def text(self, value: float, horizon: str = "the horizon") -> str:
        """The reason phrase with the measured value (and the horizon, e.g. ``'10 min'``)."""
        return self.phrase.format(v=f"{value:.0f}" if self.whole else f"{value:.2f}", h=horizon)

    def scaled(self, value: float) -> float | None:
        """The value in [0, 1] as the model sees it, or None if the model does not use it."""
        if self.scale is None:
            return None
        if not math.isfinite(value):
            value = self.cap if value > 0 else 0.0
        value = max(0.0, value)
        if self.scale == "log":
            value = math.log1p(value) / math.log1p(self.cap)
        elif self.scale == "linear":
            value = value / self.cap
        return min(1.0, value)


_FEATURES = (
    Feature("attempts", "{v} calls in {h}", "calls made in the horizon", whole=True, scale="log",
            cap=5000.0),
    Feature("answered", "{v} answered", "calls answered", whole=True, scale=None),
    Feature("answer_ratio", "answer rate {v}", "answered / calls", denominator="attempts"),
    Feature("short_call_ratio", "share of answered calls under the short-call limit {v}",
            "answered calls shorter than `features.short_call_s` / answered",
            denominator="answered"),
    Feature("listened_ratio", "share of calls listened to {v}",
            "answered calls at least `features.short_call_s` long / calls",
            denominator="attempts", scale=None),
    Feature("mean_talk_s", "mean talk {v} s", "talk seconds per answered call", scale="log",
            cap=3600.0),
    Feature("ring_once_ratio", "ring-once share {v}",
            "unanswered calls that rang under `features.ring_once_s` / calls",
            denominator="attempts"),
    Feature("failed_ratio", "failed share {v}", "calls that failed (congestion, ...) / calls",
            denominator="attempts"),
    Feature("distinct_ratio", "distinct-callee share {v}",
            "calls to callees not in the recent-callee ring / calls", denominator="attempts"),
    Feature("repeat_refused", "{v} repeat calls to people who refused twice",
            "calls to callees who refused at least twice", whole=True, scale=None),
    Feature("repeat_refused_ratio", "repeat-after-refusal share {v}",
            "`repeat_refused` / calls", denominator="attempts"),
    Feature("sequential_ratio", "sequential-number share {v}",
            "calls to a number within `features.sequential_gap` of the previous callee / calls",
            denominator="attempts"),
    Feature("inbound", "{v} calls received", "calls received", whole=True, scale=None),
    Feature("inbound_ratio", "calls received per call made {v}", "calls received / calls made",
            scale="linear", cap=1.0),
    Feature("callback_ratio", "call-back rate {v}",
            "calls received from recent callees / new callees", denominator=NEW_CALLEES),
    Feature("calls_per_min", "{v} calls per minute", "calls per minute over the horizon",
            scale=None),
    Feature("gap_cv", "inter-call gap variation {v}",
            "coefficient of variation of the gaps between calls (all horizons)",
            scale="linear", cap=3.0),
    Feature("virtual", "virtual-operator segment {v}",
            "1 for a number in `features.virtual_prefixes`", whole=True, scale=None),
    Feature("refused_callees", "{v} people called again after refusing twice",
            "callees in the recent-callee ring who refused at least twice", whole=True,
            scale=None),
    Feature("strangers", "{v} strangers called in {h}",
            "distinct callees who are not contacts (never called this number, not in its "
            "recent-callee ring)", whole=True, scale=None),
    Feature("contact_ratio", "share of calls to contacts {v}",
            "calls to contacts (callees who called this number, or talked at least "
            "`features.contact_talk_s` with it before) / calls", denominator="attempts"),
    Feature("stranger_repeat_ratio", "share of calls that repeat a stranger {v}",
            "calls to a callee called before who is not a contact / calls",
            denominator="attempts"),
    Feature("missed_retry_ratio", "share of missed calls tried again {v}",
            "calls to a stranger called before / calls not answered (capped at 1): how many "
            "of the people it missed it wants to reach", denominator=MISSED_CALLS, scale=None),
    Feature("circle_callees", "{v} callees who call each other",
            "strangers in the recent-callee ring who are connected to another one of them "
            "(they called each other lately: one circle of people)", whole=True, scale=None),
)

#: Every feature by name, in the order rules list and the model sees them.
CATALOGUE: dict[str, Feature] = {f.name: f for f in _FEATURES}
#: The names a rule can test (``min_<name>`` / ``max_<name>``).
NAMES: tuple[str, ...] = tuple(CATALOGUE)
#: The features the River model's vector holds.
MODEL_FEATURES: tuple[str, ...] = tuple(f.name for f in _FEATURES if f.scale is not None)


def readme_table() -> str:
    """The README's feature table (tests/test_docs.py checks the README holds it verbatim)."""
    rows = ["| feature | kind | what it measures | reason reads |", "|---|---|---|---|"]
    for f in _FEATURES:
        kind = "count" if f.whole else ("ratio" if f.denominator else "value")
        phrase = f.phrase.replace("{v}", "N").replace("{h}", "H")
        rows.append(f"| `{f.name}` | {kind} | {f.meaning} | {phrase} |")
    return "\n".join(rows)
