"""Who calls whom, lately: a bounded, expiring sketch of the call graph.

A debt collector calls a borrower's relatives and friends, people who call
each other.  To see that, :class:`CallGraph` remembers every pair of numbers
that spoke lately (either direction, answered or not) in two generations of a
Bloom filter over unordered pairs of number fingerprints (the 31-bit
fingerprints of :mod:`detectors.features`).  A generation is replaced every
``generation_s`` of event time, so an edge is remembered for between one and
two generations.  Memory is fixed (``2 * 2**bits / 8`` bytes), a query may be
a false positive at a known small rate (see :meth:`false_positive_rate`) and is
never a false negative within the memory.

:func:`circle_members` counts the callees in a set who are connected to at
least one other of them: one circle of people called by the same number.

This is the detector's only state that is not keyed by one number: an edge
belongs to a pair.  Partitioned workers would each need the edges among their
callers' callees; see the README ("How detection works").

>>> g = CallGraph(bits=16, generation_s=3600)
>>> g.add(11, 12, t=0.0); g.add(12, 13, t=10.0); g.add(21, 22, t=20.0)
>>> g.connected(12, 11), g.connected(11, 13)
(True, False)
>>> circle_members(g, [11, 12, 13, 99])
3
>>> g.add(40, 41, t=7300.0)  # two generations later: the first edges are forgotten
>>> g.connected(11, 12)
False
"""

from __future__ import annotations

import math
from collections.abc import Sequence

_MULT = 0x9E3779B97F4A7C15  # 64-bit golden-ratio multiplier (Fibonacci hashing)
_MASK64 = (1 << 64) - 1
_HASHES = 2


class CallGraph:
    """Two generations of a Bloom filter over unordered number pairs; see the module docstring."""

    __slots__ = ("bits", "generation_s", "current", "previous", "generation", "added")

    def __init__(self, bits: int = 24, generation_s: float = 43200.0) -> None:
        if not 8 <= bits <= 32:
            raise ValueError("bits must be between 8 and 32")
        self.bits = bits
        self.generation_s = generation_s
        self.current = bytearray(1 << (bits - 3))
        self.previous = bytearray(1 << (bits - 3))
        self.generation = -1  # index of the current generation (event time // generation_s)
        self.added = 0  # pairs added to the current generation

    def __getstate__(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setstate__(self, state: tuple[object, ...]) -> None:
        for name, value in zip(self.__slots__, state, strict=True):
            setattr(self, name, value)

    def _positions(self, a: int, b: int) -> tuple[int, int]:
        low, high = (a, b) if a < b else (b, a)
        h = ((low << 31 | high) * _MULT) & _MASK64
        shift = 64 - self.bits
        return h >> shift, ((h * _MULT) & _MASK64) >> shift

    def _roll(self, t: float) -> None:
        generation = int(t // self.generation_s)
        if generation == self.generation:
            return
        if generation == self.generation + 1:
            self.previous = self.current
        else:
            self.previous = bytearray(len(self.current))
        self.current = bytearray(len(self.current))
        self.generation = generation
        self.added = 0

    def add(self, a: int, b: int, t: float) -> None:
        """Remember that fingerprints ``a`` and ``b`` spoke at event time ``t``."""
        if t >= (self.generation + 1) * self.generation_s:
            self._roll(t)
        current = self.current
        for p in self._positions(a, b):
            current[p >> 3] |= 1 << (p & 7)
        self.added += 1

    def connected(self, a: int, b: int) -> bool:
        """True if ``a`` and ``b`` spoke within the memory (or, rarely, a false positive)."""
        positions = self._positions(a, b)
        for table in (self.current, self.previous):
            if all(table[p >> 3] >> (p & 7) & 1 for p in positions):
                return True
        return False

    def false_positive_rate(self) -> float:
        """The chance that a pair never seen is reported connected, at the current fill."""
        m = 1 << self.bits
        one = (1 - math.exp(-_HASHES * self.added / m)) ** _HASHES
        return min(1.0, 2 * one)  # either generation may answer

    @property
    def nbytes(self) -> int:
        return len(self.current) + len(self.previous)


def circle_members(graph: CallGraph, callees: Sequence[int]) -> int:
    """How many of ``callees`` are connected to at least one other of them."""
    members = 0
    for i, a in enumerate(callees):
        for j, b in enumerate(callees):
            if i != j and a != b and graph.connected(a, b):
                members += 1
                break
    return members
