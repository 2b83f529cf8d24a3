"""Replay: the stream workers' detection over CDR files, with no broker.

:func:`replay` is the loop; the ``dialguard replay`` command wraps it with
argument parsing, output files and progress.  It drives the same
:class:`~detectors.engine.Detector` that the Faust workers drive, alone or, with group
detection on, beside the :class:`~detectors.rings.detector.GroupDetector` in one
:class:`~detectors.composite.DetectorChain` (one deduplication, one per-call path), or
with the group detector in a process of its own (:mod:`streams.group_process`), whose
alerts come a batch late: a detector with a ``flush`` method gives the rest at the end.
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from detectors.alerts import Alert
from detectors.engine import Detector
from detectors.protocol import CallDetector
from detectors.records import WITHHELD, Call, Rejected


class ReplayCounts(Protocol):
    @property
    def calls(self) -> int: ...
    @property
    def duplicates(self) -> int: ...
    @property
    def expired(self) -> int: ...


class ReplayDetector(CallDetector, Protocol):
    """What replay drives: a detector with counts (the engine, or a chain of detectors)."""

    @property
    def stats(self) -> ReplayCounts: ...


class ReplayMetrics(Protocol):
    def record_read(self, n: int, source: str) -> None: ...
    def record_rejected(self, reason: str, n: int = 1) -> None: ...
    def alert_raised(self, alert: Alert, arrival_wall: float, now_wall: float) -> None: ...
    def observe_batch(self, n: int, newest_event_time: float, now_wall: float) -> None: ...
    def set_tracked(self, n: int) -> None: ...
    def duplicate(self, n: int) -> None: ...
    def record_withheld(self, n: int) -> None: ...
    def model_scored(self, score: float) -> None: ...


@dataclass
class ReplaySummary:
    read: int = 0
    calls: int = 0
    #: calls accepted whose caller withheld their number (CONTRACT 1a)
    withheld: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    alerts: Counter[str] = field(default_factory=Counter)
    rings: set[str] = field(default_factory=set)
    ring_members: set[str] = field(default_factory=set)
    tracked_numbers: int = 0
    expired_numbers: int = 0
    first_event: float | None = None
    last_event: float | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "calls": self.calls,
            "withheld": self.withheld,
            "rejected": dict(self.rejected),
            "duplicates": self.duplicates,
            "alerts": dict(self.alerts),
            "rings": len(self.rings),
            "ring_members": len(self.ring_members),
            "tracked_numbers": self.tracked_numbers,
            "expired_numbers": self.expired_numbers,
            "first_event": self.first_event,
            "last_event": self.last_event,
            "seconds": round(self.seconds, 3),
            "records_per_second": round(self.read / self.seconds) if self.seconds else None,
        }

    def render(self) -> str:
        rate = f"{self.read / self.seconds:,.0f} records/s" if self.seconds else "-"
        lines = [
            f"read {self.read:,} records in {self.seconds:.2f} s ({rate})",
            f"calls {self.calls:,} (withheld caller {self.withheld:,}), "
            f"duplicates {self.duplicates:,}, rejected {sum(self.rejected.values()):,}",
        ]
        for reason, n in sorted(self.rejected.items()):
            lines.append(f"  rejected {reason}: {n:,}")
        lines.append(f"alerts {sum(self.alerts.values()):,}")
        for profile, n in sorted(self.alerts.items()):
            lines.append(f"  {profile}: {n:,}")
        if self.rings:
            lines.append(f"rings {len(self.rings):,} with {len(self.ring_members):,} numbers")
        lines.append(f"numbers tracked at end {self.tracked_numbers:,} "
                     f"(expired while idle {self.expired_numbers:,})")
        return "\n".join(lines)


def tune_gc() -> None:
    """Collect garbage less eagerly: long-lived per-number state would be rescanned constantly."""
    gc.freeze()
    gc.set_threshold(50_000, 50, 1000)


_BATCH = 2048  # metrics and progress are updated per batch, not per record


def replay(
    records: Iterable[Call | Rejected],
    detector: ReplayDetector,
    on_alert: Callable[[Alert], None],
    on_reject: Callable[[Rejected], None] | None = None,
    metrics: ReplayMetrics | None = None,
    progress: Callable[[int], None] | None = None,
    wall_clock: Callable[[], float] = time.time,
) -> ReplaySummary:
    """Feed decoded records through ``detector``; returns counts."""
    summary = ReplaySummary()
    started = time.perf_counter()
    if metrics is not None:
        part = getattr(detector, "part", None)
        engine = part(Detector) if part is not None else detector
        if isinstance(engine, Detector):
            engine.on_model_score = metrics.model_scored
    observe = detector.observe
    read = 0
    in_batch = 0
    withheld = batch_withheld = 0
    newest = -float("inf")
    first_event: float | None = None
    batch_wall = wall_clock()
    duplicates_before = detector.stats.duplicates

    def emit(alert: Alert, arrival_wall: float) -> None:
        summary.alerts[alert.profile] += 1
        if alert.ring_id is not None and alert.kind == "ring":
            summary.rings.add(alert.ring_id)
            summary.ring_members.update(alert.new_members or ())
        on_alert(alert)
        if metrics is not None:
            metrics.alert_raised(alert, arrival_wall, wall_clock())

    for record in records:
        read += 1
        in_batch += 1
        if type(record) is Call:
            if record.caller == WITHHELD:
                batch_withheld += 1
            start = record.start
            if start > newest:
                newest = start
                if first_event is None:
                    first_event = start
            for alert in observe(record):
                emit(alert, batch_wall)
        else:
            assert isinstance(record, Rejected)
            summary.rejected[record.reason] += 1
            if on_reject is not None:
                on_reject(record)
            if metrics is not None:
                metrics.record_rejected(record.reason)
        if in_batch >= _BATCH:
            withheld += batch_withheld
            if metrics is not None:
                metrics.record_withheld(batch_withheld)
                _flush_metrics(metrics, detector, in_batch, newest, wall_clock(),
                               detector.stats.duplicates - duplicates_before)
                duplicates_before = detector.stats.duplicates
            if progress is not None:
                progress(in_batch)
            in_batch = batch_withheld = 0
            batch_wall = wall_clock()
    flush = getattr(detector, "flush", None)
    if flush is not None:  # a detector that hands alerts over late (GroupProcessChain)
        for alert in flush():
            emit(alert, batch_wall)
    withheld += batch_withheld
    if metrics is not None and in_batch:
        metrics.record_withheld(batch_withheld)
        _flush_metrics(metrics, detector, in_batch, newest, wall_clock(),
                       detector.stats.duplicates - duplicates_before)
    if progress is not None and in_batch:
        progress(in_batch)
    summary.read = read
    summary.withheld = withheld
    summary.first_event = first_event
    summary.calls = detector.stats.calls
    summary.duplicates = detector.stats.duplicates
    summary.tracked_numbers = detector.tracked_numbers
    summary.expired_numbers = detector.stats.expired
    summary.last_event = None if newest == -float("inf") else newest
    summary.seconds = time.perf_counter() - started
    return summary


def _flush_metrics(metrics: ReplayMetrics, detector: ReplayDetector, n: int, newest: float,
                   now_wall: float, duplicates: int) -> None:
    metrics.record_read(n, "file")
    if newest > -float("inf"):
        metrics.observe_batch(n, newest, now_wall)
    metrics.set_tracked(detector.tracked_numbers)
    if duplicates:
        metrics.duplicate(duplicates)
