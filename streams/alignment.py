"""Event-time alignment of raw partitions: none runs ahead of the slowest by more than the slack.

Detection follows event time: idle expiry, cool-downs and windows move with the
newest call a detector has seen.  ``dialguard replay`` feeds calls in event-time
order (within ``--slack``).  In a worker, the partitions of ``cdr.raw`` are read
side by side, and a consumer drains them at different speeds: catching up on a
backlog, one partition's calls could reach detection hours (of event time) ahead
of another's, ageing the other's numbers out and splitting their alerts.

:class:`EventTimeAligner` keeps, per raw partition, the newest event time read
from it; the ingest consumer pauses every partition that still has a backlog and
is more than ``slack_s`` ahead of the slowest partition that has one, and
resumes it once the others caught up.  A partition without a backlog (read to
its end) holds nobody back.  Within one repartitioned batch calls are put in
event-time order (:func:`in_event_time_order`).

>>> aligner: EventTimeAligner[str] = EventTimeAligner(slack_s=300)
>>> aligner.saw("p0", 10_000.0); aligner.saw("p1", 1_000.0)
>>> aligner.decide(backlog={"p0": 50, "p1": 80})  # p0 is 9000 s ahead: held back
({'p0'}, set())
>>> aligner.saw("p1", 9_800.0)
>>> aligner.decide(backlog={"p0": 50, "p1": 10})  # within the slack again
(set(), {'p0'})
>>> aligner.decide(backlog={"p0": 50, "p1": 0})  # p1 read to its end: nobody waits for it
(set(), set())
>>> aligner.decide(backlog={"p0": 50, "p1": 0, "p2": 9}, unread=["p2"])  # p2 not read yet
({'p0'}, set())
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping
from typing import Generic, TypeVar

from detectors.records import Call

P = TypeVar("P", bound=Hashable)


class EventTimeAligner(Generic[P]):
    """Which raw partitions to pause or resume so none runs ahead by more than ``slack_s``."""

    def __init__(self, slack_s: float) -> None:
        self.slack_s = slack_s
        #: newest event time read, per partition
        self.newest: dict[P, float] = {}
        #: partitions currently paused by this aligner
        self.paused: set[P] = set()

    def saw(self, partition: P, event_time: float) -> None:
        """A call with ``event_time`` was read from ``partition``."""
        if event_time > self.newest.get(partition, -math.inf):
            self.newest[partition] = event_time

    def forget(self, partition: P) -> None:
        """``partition`` is no longer read here (revoked)."""
        self.newest.pop(partition, None)
        self.paused.discard(partition)

    def decide(self, backlog: Mapping[P, int],
               unread: Iterable[P] = ()) -> tuple[set[P], set[P]]:
        """``(to_pause, to_resume)`` given each partition's messages still to read.

        ``unread``: partitions with a backlog not read from at all yet; until they
        are, every other partition with a backlog waits (nothing is known of theirs).
        """
        behind = {p: t for p, t in self.newest.items() if backlog.get(p, 0) > 0}
        hold: set[P] = set()
        if any(p not in self.newest for p in unread):
            hold = set(behind)
        elif behind:
            floor = min(behind.values()) + self.slack_s
            hold = {p for p, t in behind.items() if t > floor}
        to_pause, to_resume = hold - self.paused, self.paused - hold
        self.paused = hold
        return to_pause, to_resume


def in_event_time_order(flags: bytearray, rows: list[Call]) -> tuple[bytes, list[Call]]:
    """``flags`` and ``rows`` (parallel) sorted by call start, stably; unchanged if in order.

    >>> a, b = Call("+861", "+862", 2.0, 0, False), Call("+861", "+863", 1.0, 0, False)
    >>> flags, rows = in_event_time_order(bytearray([1, 3]), [a, b])
    >>> list(flags), [r.start for r in rows]
    ([3, 1], [1.0, 2.0])
    """
    previous = -math.inf
    for row in rows:
        if row.start < previous:
            break
        previous = row.start
    else:
        return bytes(flags), rows
    order = sorted(range(len(rows)), key=lambda i: rows[i].start)
    return bytes(flags[i] for i in order), [rows[i] for i in order]
