"""What the format tests share."""

from __future__ import annotations

from detectors.records import Call, Rejected


def same(a: list[Call | Rejected], b: list[Call | Rejected]) -> bool:
    """Equal records of equal types (a ring of 4 is not a ring of 4.0)."""
    return [repr(r) for r in a] == [repr(r) for r in b]
