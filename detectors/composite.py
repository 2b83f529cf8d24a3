"""Several detectors over one per-call path: deduplicate once, every part sees the call.

``dialguard replay`` runs the per-number :class:`~detectors.engine.Detector` and the group
:class:`~detectors.rings.detector.GroupDetector` as one :class:`DetectorChain`.  A number
alert is tagged with the ``ring_id`` of the ring its caller is a member of, when a part
that links numbers (one with ``ring_of``) knows it.

>>> from detectors.config import load_settings
>>> from detectors.records import Call
>>> chain = DetectorChain.example()
>>> call = Call("+8617000000001", "+8613900000001", 1.7e9, 0, False, id="a")
>>> chain.observe(call), chain.observe(call), chain.stats.duplicates, chain.stats.calls
((), (), 1, 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from detectors.alerts import Alert
from detectors.allowlist import Allowlist
from detectors.config import Settings, load_settings
from detectors.dedup import Deduplicator
from detectors.protocol import PartDetector
from detectors.records import Call

_NO_ALERTS: tuple[Alert, ...] = ()


@runtime_checkable
class RingLookup(Protocol):
    """A part that links numbers into rings and can say which ring a number is in."""

    def ring_of(self, caller: str) -> str | None: ...


@dataclass
class ChainStats:
    """Counts of the chain: its own calls and duplicates, alerts and expiries of all parts."""

    parts: Sequence[PartDetector] = field(default_factory=tuple)
    calls: int = 0
    duplicates: int = 0

    @property
    def alerts(self) -> int:
        return sum(p.stats.alerts for p in self.parts)

    @property
    def expired(self) -> int:
        return sum(p.stats.expired for p in self.parts)


class DetectorChain:
    """Parts (:class:`~detectors.protocol.PartDetector`) behind one deduplication."""

    def __init__(self, parts: Sequence[PartDetector], dedup_window_s: float = 3600.0) -> None:
        if not parts:
            raise ValueError("a chain needs at least one detector")
        self.parts = tuple(parts)
        self.dedup = Deduplicator(dedup_window_s)
        self.stats = ChainStats(self.parts)
        self._linkers = tuple(p for p in self.parts if isinstance(p, RingLookup))

    @classmethod
    def example(cls) -> DetectorChain:
        return cls.for_settings(load_settings())

    @classmethod
    def for_settings(cls, settings: Settings, allowlist: Allowlist | None = None,
                     rings: bool | None = None) -> DetectorChain:
        """The per-number detector, and the group detector unless ``rings`` (default
        ``[rings].enabled``) is false."""
        from detectors.engine import Detector
        from detectors.rings.detector import GroupDetector

        parts: list[PartDetector] = [Detector(settings, allowlist)]
        if settings.rings.enabled if rings is None else rings:
            parts.append(GroupDetector(settings, allowlist))
        return cls(parts, settings.input.dedup_window_s)

    def observe(self, call: Call) -> Sequence[Alert]:
        if call.id is not None and self.dedup.seen(call.id, call.start):
            self.stats.duplicates += 1
            return _NO_ALERTS
        self.stats.calls += 1
        out: list[Alert] | None = None
        for part in self.parts:
            alerts = part.observe_unique(call)
            if alerts:
                out = list(alerts) if out is None else out + list(alerts)
        if out is None:
            return _NO_ALERTS
        if self._linkers:
            for alert in out:
                if alert.kind == "number" and alert.ring_id is None and alert.caller:
                    alert.ring_id = self.ring_of(alert.caller)
        return out

    def ring_of(self, caller: str) -> str | None:
        for linker in self._linkers:
            found = linker.ring_of(caller)
            if found is not None:
                return found
        return None

    def expire(self, now: float) -> int:
        return sum(part.expire(now) for part in self.parts)

    @property
    def tracked_numbers(self) -> int:
        return sum(part.tracked_numbers for part in self.parts)

    def part(self, kind: type) -> object | None:
        """The first part that is a ``kind`` (e.g. the engine, for its model callback)."""
        return next((p for p in self.parts if isinstance(p, kind)), None)
