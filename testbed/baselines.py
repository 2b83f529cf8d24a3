"""Two baseline detectors that carriers already run, for comparison with :class:`Detector`.

* :class:`VolumeRuleBaseline` is a rate limiter in the manner of Kamailio's
  ``pike`` module: a number that makes more than ``max_calls`` call attempts
  within ``window_s`` seconds is flagged.
* :class:`AniProfileBaseline` is an operator's calling-number (ANI) profile
  report run continuously: over the last ``window_s`` seconds (an hour), a
  number with at least ``min_attempts`` attempts, an answer ratio below
  ``max_answer_ratio`` and a mean talk time below ``max_mean_talk_s`` seconds.

Both take :class:`~detectors.records.Call` values in event-time order through
``observe(call) -> list[Alert]`` (the :class:`~detectors.engine.Detector`
interface), raise at most one alert per number per ``cooldown_s`` (event
time), never alert a number on the allowlist, drop a record whose ``id`` was
seen before, and forget idle numbers, so memory is bounded by the numbers
active within the window.

>>> from detectors.records import Call
>>> pike = VolumeRuleBaseline(max_calls=10, window_s=60)
>>> alerts = [a for i in range(30) for a in pike.observe(
...     Call("+8617000000001", f"+8613900{i:06d}", 1.7e9 + i, 0, False, ring=15.0))]
>>> [(a.caller, a.profile) for a in alerts]
[('+8617000000001', 'volume_rule')]
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence

from detectors.alerts import Alert
from detectors.dedup import Deduplicator
from detectors.records import Call


class _Baseline:
    """Shared plumbing: dedup, allowlist, cool-down, idle expiry."""

    profile = "baseline"

    def __init__(self, window_s: float, cooldown_s: float, allowlist: Iterable[str]) -> None:
        if window_s <= 0 or cooldown_s < 0:
            raise ValueError("window_s must be > 0 and cooldown_s >= 0")
        self.window_s = float(window_s)
        self.cooldown_s = float(cooldown_s)
        self.allowlist = frozenset(allowlist)
        self.dedup = Deduplicator(max(3600.0, self.window_s))
        self.last_alert: dict[str, float] = {}
        self.first_seen: dict[str, float] = {}
        self._watermark = -math.inf
        self._last_sweep = -math.inf

    def observe(self, call: Call) -> Sequence[Alert]:
        if call.id is not None and self.dedup.seen(call.id, call.start):
            return []
        t = call.start
        if t > self._watermark:
            self._watermark = t
        first = self.first_seen.setdefault(call.caller, t)
        reasons = self._account(call)
        if self._watermark - self._last_sweep > self.window_s:
            self._last_sweep = self._watermark
            self.expire(self._watermark)
        if reasons is None or call.caller in self.allowlist:
            return []
        if t - self.last_alert.get(call.caller, -math.inf) < self.cooldown_s:
            return []
        self.last_alert[call.caller] = t
        score, text = reasons
        return [Alert(kind="number", caller=call.caller, score=score, reasons=text,
                      detected_at=t, first_seen=first, profile=self.profile, trunk=call.trunk)]

    def _account(self, call: Call) -> tuple[float, list[str]] | None:
        raise NotImplementedError

    def _forget(self, number: str) -> None:
        raise NotImplementedError

    def _idle(self, cutoff: float) -> list[str]:
        raise NotImplementedError

    def expire(self, now: float) -> int:
        """Forget numbers with no call in the window before ``now`` (cool-downs kept while due)."""
        idle = self._idle(now - self.window_s)
        for number in idle:
            self._forget(number)
            self.first_seen.pop(number, None)
        for number in [n for n, t in self.last_alert.items() if now - t >= self.cooldown_s]:
            del self.last_alert[number]
        return len(idle)

    @property
    def tracked_numbers(self) -> int:
        return len(self.first_seen)


class VolumeRuleBaseline(_Baseline):
    """More than ``max_calls`` attempts within ``window_s`` seconds (Kamailio pike style).

    >>> from detectors.records import Call
    >>> b = VolumeRuleBaseline(max_calls=5, window_s=60)
    >>> sum(len(b.observe(Call("+8613800000001", "+8613900000002", 1.7e9 + 30 * i, 60, True)))
    ...     for i in range(100))
    0
    """

    profile = "volume_rule"

    def __init__(self, max_calls: int = 10, window_s: float = 60.0, cooldown_s: float = 3600.0,
                 allowlist: Iterable[str] = ()) -> None:
        super().__init__(window_s, cooldown_s, allowlist)
        if max_calls < 1:
            raise ValueError("max_calls must be >= 1")
        self.max_calls = int(max_calls)
        self.times: dict[str, deque[float]] = {}

    def _account(self, call: Call) -> tuple[float, list[str]] | None:
        times = self.times.get(call.caller)
        if times is None:
            times = self.times[call.caller] = deque()
        times.append(call.start)
        cutoff = call.start - self.window_s
        while times and times[0] <= cutoff:
            times.popleft()
        n = len(times)
        if n <= self.max_calls:
            return None
        return n / self.max_calls, [f"volume rule: {n} calls in {self.window_s:g} s "
                                    f"(> {self.max_calls})"]

    def _idle(self, cutoff: float) -> list[str]:
        return [n for n, times in self.times.items() if not times or times[-1] <= cutoff]

    def _forget(self, number: str) -> None:
        del self.times[number]


class AniProfileBaseline(_Baseline):
    """Hourly ANI profile: many attempts, low answer ratio, short mean talk.

    >>> from detectors.records import Call
    >>> b = AniProfileBaseline(min_attempts=20)
    >>> calls = [Call("+8617000000009", f"+86139{i:08d}", 1.7e9 + 20 * i, 3 if i % 10 == 0 else 0,
    ...               i % 10 == 0, ring=20.0) for i in range(60)]
    >>> [a.reasons[0] for c in calls for a in b.observe(c)]
    ['ANI profile: 20 attempts in 60 min, answer ratio 0.10 < 0.3, mean talk 3 s < 15']
    """

    profile = "ani_profile"

    def __init__(self, min_attempts: int = 50, max_answer_ratio: float = 0.3,
                 max_mean_talk_s: float = 15.0, window_s: float = 3600.0,
                 cooldown_s: float = 3600.0, allowlist: Iterable[str] = ()) -> None:
        super().__init__(window_s, cooldown_s, allowlist)
        if min_attempts < 1:
            raise ValueError("min_attempts must be >= 1")
        self.min_attempts = int(min_attempts)
        self.max_answer_ratio = float(max_answer_ratio)
        self.max_mean_talk_s = float(max_mean_talk_s)
        #: per number: calls (time, answered, talk) in the window and running sums
        self.calls: dict[str, deque[tuple[float, bool, int]]] = {}
        self.sums: dict[str, list[int]] = {}

    def _account(self, call: Call) -> tuple[float, list[str]] | None:
        caller = call.caller
        calls = self.calls.get(caller)
        if calls is None:
            calls = self.calls[caller] = deque()
            self.sums[caller] = [0, 0]
        sums = self.sums[caller]
        calls.append((call.start, call.answered, call.duration))
        if call.answered:
            sums[0] += 1
            sums[1] += call.duration
        cutoff = call.start - self.window_s
        while calls and calls[0][0] <= cutoff:
            _, answered, talk = calls.popleft()
            if answered:
                sums[0] -= 1
                sums[1] -= talk
        n = len(calls)
        if n < self.min_attempts:
            return None
        ratio = sums[0] / n
        talk_mean = sums[1] / sums[0] if sums[0] else 0.0
        if ratio >= self.max_answer_ratio or talk_mean >= self.max_mean_talk_s:
            return None
        score = n / self.min_attempts * (1.0 - ratio)
        return score, [
            f"ANI profile: {n} attempts in {self.window_s / 60:g} min, answer ratio "
            f"{ratio:.2f} < {self.max_answer_ratio:g}, mean talk {talk_mean:.0f} s < "
            f"{self.max_mean_talk_s:g}"
        ]

    def _idle(self, cutoff: float) -> list[str]:
        return [n for n, calls in self.calls.items() if not calls or calls[-1][0] <= cutoff]

    def _forget(self, number: str) -> None:
        del self.calls[number]
        del self.sums[number]
