"""The parts of a simulated day every world shares: its clock, its trunks, its call store.

Nothing here draws on a world's recipes or classes, so the standard and hard
worlds (:mod:`testbed.simulation`, :mod:`testbed.worlds`) and the recipes'
context (:mod:`testbed.recipes.context`) build on the same pieces.

>>> import numpy as np
>>> trunks = Trunks(np.random.default_rng(1))
>>> trunks.get("mob-1", has_ids=True) == trunks.get("mob-1") == 0
True
>>> sink = CallSink()
>>> sink.add([1.0, 2.0], 8613800000001, [8613900000002, 8613900000003], 5.0, 30, 0, 0)
>>> sink.columns()["callee"].tolist(), len(sink)
([8613900000002, 8613900000003], 2)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Abuse operations start in working hours (and a few in the evening), local time.
ABUSE_START_HOURS = (0, 0, 0, 0, 0, 0, 0, 0.1, 0.6, 1, 1, 1, 0.6, 0.8, 1, 1, 1, 0.9, 0.6, 0.5,
                     0.4, 0.2, 0.05, 0)


class DayClock:
    """Event time of one simulated day: the window and its hourly rhythms (local time).

    >>> import numpy as np
    >>> clock = DayClock(0.0, 7200.0, 0.0, np.random.default_rng(1))
    >>> clock.fraction((1.0,) * 24) == 2 / 24
    True
    >>> bool(np.all((clock.times((1.0,) * 24, 100) >= 0) & (clock.times((1.0,) * 24, 1) < 7200)))
    True
    """

    def __init__(self, start: float, end: float, utc_offset_h: float,
                 rng: np.random.Generator) -> None:
        self.start = start
        self.end = end
        self.offset = utc_offset_h * 3600.0
        self.rng = rng

    def hour_weights(self, profile: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """Hour slots overlapping the window: (slot bounds clipped, weights x overlap)."""
        first = math.floor((self.start + self.offset) / 3600.0) * 3600.0 - self.offset
        starts = np.arange(first, self.end, 3600.0)
        lo = np.maximum(starts, self.start)
        hi = np.minimum(starts + 3600.0, self.end)
        hours = (((starts + self.offset) // 3600) % 24).astype(int)
        weights = np.array(profile, dtype=np.float64)[hours] * (hi - lo) / 3600.0
        return np.stack([lo, hi]), weights

    def fraction(self, profile: Sequence[float]) -> float:
        """Share of a whole day's activity under ``profile`` that falls in the window."""
        _, w = self.hour_weights(profile)
        return float(w.sum() / sum(profile))

    def times(self, profile: Sequence[float], n: int) -> np.ndarray:
        """``n`` times in the window following an hourly rhythm."""
        bounds, w = self.hour_weights(profile)
        if n == 0 or w.sum() <= 0:
            return self.rng.uniform(self.start, self.end, n)
        slot = self.rng.choice(len(w), size=n, p=w / w.sum())
        return self.rng.uniform(bounds[0][slot], bounds[1][slot])

    def between(self, profile: Sequence[float], start: float, end: float, n: int) -> np.ndarray:
        """``n`` times in ``[start, end)`` following an hourly rhythm."""
        bounds, w = self.hour_weights(profile)
        lo = np.maximum(bounds[0], start)
        hi = np.minimum(bounds[1], end)
        span = np.maximum(bounds[1] - bounds[0], 1e-9)
        w = w * np.clip(hi - lo, 0.0, None) / span
        if n == 0 or w.sum() <= 0:
            return self.rng.uniform(start, end, n)
        slot = self.rng.choice(len(w), size=n, p=w / w.sum())
        return self.rng.uniform(lo[slot], hi[slot])

    def window(self, min_s: float, max_s: float,
               profile: Sequence[float] = ABUSE_START_HOURS) -> tuple[float, float]:
        """A window of log-uniform length (``min_s`` to ``max_s``, or ``max_s`` if that is
        shorter) starting under ``profile``, inside the day."""
        min_s = min(min_s, max_s)
        length = math.exp(self.rng.uniform(math.log(min_s), math.log(max_s)))
        length = min(length, self.end - self.start)
        start = float(self.times(profile, 1)[0])
        start = min(start, self.end - length)
        return start, start + length

    def local_day_starts(self) -> np.ndarray:
        """Local midnights from the one on or before the window's start to its end."""
        day0 = math.floor((self.start + self.offset) / 86400.0) * 86400.0 - self.offset
        return np.arange(day0, self.end, 86400.0)

    def local(self, hour: float) -> tuple[float, float]:
        """The window clipped to ``hour`` o'clock local time onwards of the first day."""
        at = float(self.local_day_starts()[0]) + hour * 3600.0
        if at >= self.end - 600:  # a short window after that hour: start with the window
            at = self.start
        return max(at, self.start), self.end


@dataclass
class Trunks:
    """The ingress trunks of the day: name, record ids or not, a source address or not,
    and whether the feed names the trunk in its records at all (``named``)."""

    rng: np.random.Generator
    named_share: float = 1.0
    names: list[str] = field(default_factory=list)
    has_ids: list[bool] = field(default_factory=list)
    ip: list[str | None] = field(default_factory=list)
    named: list[bool] = field(default_factory=list)
    _index: dict[str, int] = field(default_factory=dict)

    def get(self, name: str, has_ids: bool | None = None, ip: bool = False,
            named: bool | None = None) -> int:
        """The index of trunk ``name``, made on first use."""
        found = self._index.get(name)
        if found is not None:
            return found
        rng = self.rng
        self._index[name] = len(self.names)
        self.names.append(name)
        self.has_ids.append(bool(rng.random() < 0.7) if has_ids is None else has_ids)
        self.ip.append(f"{rng.integers(11, 223)}.{rng.integers(0, 256)}."
                       f"{rng.integers(0, 256)}.{rng.integers(1, 255)}" if ip else None)
        if named is None:  # a feed that names every trunk draws nothing for it
            named = self.named_share >= 1.0 or bool(rng.random() < self.named_share)
        self.named.append(named)
        return self._index[name]


class CallSink:
    """Column store of the generated calls; ``hidden`` marks a withheld caller."""

    COLUMNS = ("t", "caller", "callee", "ring", "talk", "disp", "trunk", "hidden")
    _TYPES = (np.float64, np.int64, np.int64, np.float64, np.int64, np.int8, np.int16, np.bool_)

    def __init__(self) -> None:
        self.parts: dict[str, list[np.ndarray]] = {name: [] for name in self.COLUMNS}
        self.n = 0

    def add(self, t: Any, caller: Any, callee: Any, ring: Any, talk: Any, disp: Any,
            trunk: Any, hidden: Any = False) -> None:
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        n = len(t)
        for name, value, dtype in zip(self.COLUMNS, (t, caller, callee, ring, talk, disp, trunk,
                                                     hidden), self._TYPES, strict=True):
            a: np.ndarray = np.asarray(value, dtype=dtype)
            self.parts[name].append(np.full(n, a, dtype=dtype) if a.ndim == 0 else a)
        self.n += n

    def __len__(self) -> int:
        return self.n

    def columns(self) -> dict[str, np.ndarray]:
        return {name: (np.concatenate(parts) if parts else np.zeros(0, dtype))
                for (name, parts), dtype in zip(self.parts.items(), self._TYPES, strict=True)}
