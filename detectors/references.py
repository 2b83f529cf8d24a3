"""What busy callers look like today, learned online from the stream itself.

A :class:`Distribution` is a fixed log-spaced histogram of a non-negative
feature (exact zero has a bin of its own) whose weights decay by event time
(half-life ``half_life_s``): quantiles and ranks of "busy callers today"
without keeping any sample.  :class:`References` holds one per feature the
judgement compares against.  Both are deterministic (no randomness, event
time only), bounded (``BINS`` floats per feature), pickle, and have an exact
binary form (``to_bytes`` / ``from_bytes``) for a Faust changelog table.
Distributions of several partitions merge by adding weights (:meth:`merge`).

>>> d = Distribution(half_life_s=86400)
>>> for i in range(1000):
...     d.add(i % 100, t=float(i))
>>> round(d.quantile(0.5)), round(d.quantile(0.99)), round(d.rank(150.0), 6)  # +-6 % bins
(47, 94, 1.0)
>>> Distribution.from_bytes(d.to_bytes()).to_bytes() == d.to_bytes()
True
"""

from __future__ import annotations

import math
import struct
import sys
from array import array
from collections.abc import Iterable, Mapping

#: Bins per distribution: exact zero, then log-spaced from ``_LOW`` by a factor ``_STEP``.
BINS = 160
_LOW = 1e-3
_STEP = 1.12  # +-6 % resolution; 158 bins span 1e-3 .. ~6e4
_LOG_STEP = math.log(_STEP)
_DECAY_EVERY_S = 600.0  # apply the decay in steps of this much event time
_DIST = struct.Struct("<4sddd")  # magic, half-life, weight total, last decay time
_DIST_MAGIC = b"DGD\x01"
_REFS_MAGIC = b"DGR\x01"
_SWAP = sys.byteorder != "little"


def _bin(value: float) -> int:
    if not value > 0:  # zero, negative and NaN
        return 0
    if value <= _LOW:
        return 1
    return min(BINS - 1, 1 + int(math.log(value / _LOW) / _LOG_STEP + 0.5))


def _value(index: int) -> float:
    return 0.0 if index == 0 else _LOW * _STEP ** (index - 1)


class Distribution:
    """A decaying histogram of one feature over busy callers; see the module docstring."""

    __slots__ = ("half_life_s", "weights", "total", "decayed_at")

    def __init__(self, half_life_s: float = 86400.0) -> None:
        self.half_life_s = half_life_s
        self.weights = array("d", [0.0]) * BINS
        self.total = 0.0
        self.decayed_at = -math.inf

    def __getstate__(self) -> tuple[object, ...]:
        return (self.half_life_s, self.weights, self.total, self.decayed_at)

    def __setstate__(self, state: tuple[float, array, float, float]) -> None:
        self.half_life_s, weights, self.total, self.decayed_at = state
        self.weights = weights[:]

    def add(self, value: float, t: float, weight: float = 1.0) -> None:
        """Count ``value`` observed at event time ``t``."""
        if t - self.decayed_at >= _DECAY_EVERY_S:
            self._decay(t)
        self.weights[_bin(value)] += weight
        self.total += weight

    def _decay(self, t: float) -> None:
        if self.decayed_at != -math.inf and self.total > 0:
            factor = 0.5 ** ((t - self.decayed_at) / self.half_life_s)
            weights = self.weights
            for i in range(BINS):
                weights[i] *= factor
            self.total *= factor
        self.decayed_at = t

    def quantile(self, q: float) -> float:
        """The value below which a share ``q`` of the weight lies (0 when empty)."""
        if self.total <= 0:
            return 0.0
        target = q * self.total
        running = 0.0
        for i, w in enumerate(self.weights):
            running += w
            if running >= target and w > 0:
                return _value(i)
        return _value(BINS - 1)

    def rank(self, value: float) -> float:
        """The share of the weight at or below ``value`` (0..1)."""
        if self.total <= 0:
            return 0.0
        top = _bin(value)
        return min(1.0, sum(self.weights[: top + 1]) / self.total)

    def merge(self, other: Distribution) -> None:
        """Add another partition's weights (both decayed to the later time first)."""
        t = max(self.decayed_at, other.decayed_at)
        for d in (self, other):
            if t - d.decayed_at > 0:
                d._decay(t)
        for i in range(BINS):
            self.weights[i] += other.weights[i]
        self.total += other.total

    def to_bytes(self) -> bytes:
        weights = self.weights
        if _SWAP:
            weights = weights[:]
            weights.byteswap()
        return _DIST.pack(_DIST_MAGIC, self.half_life_s, self.total, self.decayed_at) + \
            weights.tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Distribution:
        """Read :meth:`to_bytes` output; ``ValueError`` if it is not exactly that."""
        if len(data) != _DIST.size + 8 * BINS or data[:4] != _DIST_MAGIC:
            raise ValueError("not a dialguard reference distribution")
        _, half_life, total, decayed_at = _DIST.unpack_from(data)
        d = cls(half_life)
        d.total, d.decayed_at = total, decayed_at
        d.weights = array("d")
        d.weights.frombytes(data[_DIST.size:])
        if _SWAP:
            d.weights.byteswap()
        return d


class References:
    """Learned distributions of named features over busy callers, and how many were seen.

    >>> refs = References(("inbound_ratio",), half_life_s=86400)
    >>> for i in range(300):
    ...     refs.learn({"inbound_ratio": 0.4 if i % 2 else 0.2}, t=float(i))
    >>> refs.samples, round(refs.quantile("inbound_ratio", 0.5), 2)
    (300, 0.21)
    >>> References.from_bytes(refs.to_bytes()).to_bytes() == refs.to_bytes()
    True
    """

    __slots__ = ("by_feature", "samples")

    def __init__(self, features: Iterable[str], half_life_s: float = 86400.0) -> None:
        self.by_feature = {name: Distribution(half_life_s) for name in features}
        self.samples = 0

    def __getstate__(self) -> tuple[object, ...]:
        return (self.by_feature, self.samples)

    def __setstate__(self, state: tuple[dict[str, Distribution], int]) -> None:
        self.by_feature, self.samples = state

    def learn(self, features: Mapping[str, float], t: float) -> None:
        """One busy caller's features at event time ``t``."""
        for name, dist in self.by_feature.items():
            dist.add(features.get(name, 0.0), t)
        self.samples += 1

    def quantile(self, feature: str, q: float) -> float:
        return self.by_feature[feature].quantile(q)

    def rank(self, feature: str, value: float) -> float:
        return self.by_feature[feature].rank(value)

    def merge(self, other: References) -> None:
        for name, dist in self.by_feature.items():
            if name in other.by_feature:
                dist.merge(other.by_feature[name])
        self.samples += other.samples

    def to_bytes(self) -> bytes:
        parts = [_REFS_MAGIC, struct.pack("<QH", self.samples, len(self.by_feature))]
        for name, dist in self.by_feature.items():
            encoded = name.encode()
            parts += [struct.pack("<B", len(encoded)), encoded, dist.to_bytes()]
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> References:
        """Read :meth:`to_bytes` output; ``ValueError`` if it is not exactly that."""
        if data[:4] != _REFS_MAGIC or len(data) < 14:
            raise ValueError("not dialguard references (bad magic)")
        samples, n = struct.unpack_from("<QH", data, 4)
        refs = cls(())
        refs.samples = samples
        at = 14
        size = _DIST.size + 8 * BINS
        for _ in range(n):
            if at >= len(data):
                raise ValueError("dialguard references: truncated")
            length = data[at]
            name = data[at + 1: at + 1 + length].decode(errors="strict")
            at += 1 + length
            refs.by_feature[name] = Distribution.from_bytes(data[at: at + size])
            at += size
        if at != len(data):
            raise ValueError("dialguard references: trailing bytes")
        return refs
