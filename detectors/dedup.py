"""Counting a record delivered twice (same ``id``) once, in bounded memory.

Two generations of ids: the current one fills, and is demoted when it is
older than the window (event time) or larger than ``max_ids``; the demoted one
is still consulted.  Memory is bounded by ``2 * max_ids`` ids; an id is
remembered for at least one window unless traffic exceeds ``max_ids`` per
window, when the window shortens instead of memory growing.

>>> d = Deduplicator(window_s=60)
>>> d.seen("a", 0.0), d.seen("a", 10.0), d.seen("b", 70.0), d.seen("a", 100.0), d.seen("a", 200.0)
(False, True, False, True, False)
"""

from __future__ import annotations


def newer_position(offset: float, index: float, applied_offset: float,
                   applied_index: float) -> bool:
    """Whether input position ``(offset, index)`` (a message offset and a call's index in
    it) comes after the newest one a state applied: the stream workers' other way of
    counting a redelivered record once, kept in the state it was applied to.

    >>> newer_position(7, 1, 7, 0), newer_position(7, 0, 7, 0), newer_position(6, 9, 7, 0)
    (True, False, False)
    """
    return offset > applied_offset or (offset == applied_offset and index > applied_index)


class Deduplicator:
    def __init__(self, window_s: float = 3600.0, max_ids: int = 1_000_000) -> None:
        self.window_s = window_s
        self.max_ids = max_ids
        self._current: set[str] = set()
        self._previous: set[str] = set()
        self._current_start: float | None = None

    def seen(self, record_id: str, t: float) -> bool:
        """True if ``record_id`` was seen recently; remembers it either way."""
        if self._current_start is None:
            self._current_start = t
        elif t - self._current_start >= self.window_s or len(self._current) >= self.max_ids:
            self._previous = self._current
            self._current = set()
            self._current_start = t
        if record_id in self._current or record_id in self._previous:
            return True
        self._current.add(record_id)
        return False

    def __len__(self) -> int:
        return len(self._current) + len(self._previous)
