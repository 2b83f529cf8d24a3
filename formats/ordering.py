"""Event-time order: records re-ordered within a slack, several files merged."""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Iterable, Iterator
from operator import attrgetter

from detectors.records import Call
from formats.fields import Decoded

_BY_START = attrgetter("start")
_ORDER_CHUNK = 4096


def event_time_order(
    records: Iterable[Decoded], slack_s: float = 300.0, chunk: int = _ORDER_CHUNK
) -> Iterator[Decoded]:
    """Re-order calls that arrive up to ``slack_s`` seconds late, in bounded memory.

    Calls are buffered in chunks, sorted (cheap: the input is nearly sorted) and
    released once they are ``slack_s`` older than the newest call seen.
    Rejections pass straight through.  A call later than the slack is passed on
    at the next release (the detectors tolerate it), so nothing is dropped.  With no
    slack, records pass in the order they came, as the stream workers take them.

    >>> calls = [Call("+1", "+2", t, 0, False) for t in (10.0, 5.0, 20.0, 400.0, 15.0)]
    >>> [c.start for c in event_time_order(calls, slack_s=60)]
    [5.0, 10.0, 15.0, 20.0, 400.0]
    >>> [c.start for c in event_time_order(calls, slack_s=0)]
    [10.0, 5.0, 20.0, 400.0, 15.0]
    """
    if slack_s <= 0:
        yield from records
        return
    buffer: list[Call] = []
    newest = -math.inf
    for record in records:
        if type(record) is not Call:
            yield record
            continue
        buffer.append(record)
        if record.start > newest:
            newest = record.start
        if len(buffer) >= chunk:
            buffer.sort(key=_BY_START)
            cut = bisect.bisect_right(buffer, newest - slack_s, key=_BY_START)
            if cut:
                yield from buffer[:cut]
                del buffer[:cut]
            if len(buffer) >= 16 * chunk:  # a slack wider than memory allows
                yield from buffer[:chunk]
                del buffer[:chunk]
    buffer.sort(key=_BY_START)
    yield from buffer


def merge_by_time(streams: list[Iterator[Decoded]]) -> Iterator[Decoded]:
    """Event-time ordered streams merged into one (rejections as soon as they come)."""
    if len(streams) == 1:
        yield from streams[0]
        return

    def key(record: Decoded) -> float:
        return record.start if isinstance(record, Call) else -math.inf

    yield from heapq.merge(*streams, key=key)
