"""The words and the score of a ring alert (callee numbers only as masked blocks).

>>> from detectors.rings.cohort import Ring
>>> ring = Ring("ring-1", "in:gw-x", 1.7e9 + 2520, 1.7e9, 6, 1.7e9 + 2520, 1.7e9 + 2520,
...             [f"+86170000000{i:02d}" for i in range(61)], [8] * 61, [], calls=4830,
...             answered=386, distinct=3100)
>>> reasons(ring, expected=0.04)[0]
'61 numbers, 4,830 calls in 42 min to ~3,100 distinct numbers, answer rate 0.08'
>>> reasons(ring, expected=0.04)[1:3]
['each number retired after ~8 calls', 'all via gw-x']
>>> ring.threshold = 2
>>> quorum = reasons(ring, expected=0.04, quorum=5, alone=3)[3]
>>> quorum[:quorum.index(" (")]
'each made >= 2 unanswered or cut-short calls to distinct numbers'
>>> quorum[quorum.index("("):quorum.index(")") + 1]
'(>= 5 numbers at once, fewer would each need 3)'
>>> round(score(ring, weight=2.0), 2)
5.13
"""

from __future__ import annotations

import math
from statistics import median

from detectors.rings.cohort import Ring
from detectors.rings.keys import describe, is_block, is_population
from detectors.rules import horizon_text


def reasons(ring: Ring, expected: float, quorum: int = 0, alone: int = 0,
            burst_s: float = 0.0) -> list[str]:
    """What an analyst reads: size, volume, engagement, lifetimes, the shared evidence.

    ``quorum``: the ring was founded on less evidence per number than ``alone`` (what fewer
    numbers would each have needed) because at least ``quorum`` numbers qualified together.
    ``burst_s``: the ring was founded on the evidence of its numbers' first ``burst_s``.
    """
    count = len(ring.member_calls)
    minutes = max(1, round((ring.last_call - ring.first_seen) / 60))
    out = [
        f"{count:,} numbers, {ring.calls:,} calls in {minutes} min to ~{ring.distinct:,} "
        f"distinct numbers, answer rate {ring.answer_rate:.2f}",
        f"each number retired after ~{median(ring.member_calls):.0f} calls",
    ]
    where = describe(ring.key)
    out.append(f"all sweeping {where}" if is_block(ring.key) else f"all via {where}")
    together = (f" (>= {quorum} numbers at once, fewer would each need {alone})"
                if quorum else "")
    whose = "the share's" if is_population(ring.key) else f"{where}'s"
    within = (f" within {horizon_text(int(burst_s))} of its first call there" if burst_s > 0
              else "")
    out.append(f"each made >= {ring.threshold} unanswered or cut-short calls to distinct "
               f"numbers{within}{together}; {whose} own traffic would give ~{expected:.2g} "
               "such numbers")
    if ring.withheld:
        out.append(f"{ring.withheld:,} calls with the caller withheld on the same ingress")
    return out


def score(ring: Ring, weight: float) -> float:
    """Bigger and less answered rings rank first."""
    return weight * (1.0 + math.log10(max(1, len(ring.member_calls)))) * (1.0 - ring.answer_rate)
