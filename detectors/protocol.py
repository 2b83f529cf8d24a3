"""What a detector is: the small interfaces every detector implements.

* :class:`CallDetector`: calls in, alerts out (:meth:`~CallDetector.observe`), idle
  state forgotten by event time, a count of what it tracks.  The per-number
  :class:`~detectors.engine.Detector`, the group
  :class:`~detectors.rings.detector.GroupDetector`, their composite
  :class:`~detectors.composite.DetectorChain` and the testbed's baselines all are.
* :class:`PartDetector`: a detector that can run as one part of a composite and back its
  state by a changelog table: it takes calls already known to be unique
  (:meth:`~PartDetector.observe_unique`, so that one deduplication serves all parts),
  counts in ``stats``, and gives its per-key state in binary form
  (:meth:`~PartDetector.table_state`) and takes it back
  (:meth:`~PartDetector.load_table_state`).

The contract tests (``tests/detectors/test_detector_contract.py``) find every class that
implements :class:`CallDetector` in ``detectors`` and ``testbed.baselines`` and apply the
same checks to each; a class makes its test instance with a classmethod ``example()``
(or a constructor without arguments).

>>> from detectors.engine import Detector
>>> from detectors.rings.detector import GroupDetector
>>> all(isinstance(cls.example(), PartDetector) for cls in (Detector, GroupDetector))
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from detectors.alerts import Alert
from detectors.records import Call


class DetectorCounts(Protocol):
    """What every part counts (its ``stats``)."""

    @property
    def calls(self) -> int: ...
    @property
    def alerts(self) -> int: ...
    @property
    def expired(self) -> int: ...


@runtime_checkable
class CallDetector(Protocol):
    """Calls in event-time order in, alerts (CONTRACT section 2) out."""

    def observe(self, call: Call) -> Sequence[Alert]:
        """One call (deduplicated by ``id`` here); the alerts it raises."""
        ...

    def expire(self, now: float) -> int:
        """Forget state idle before ``now`` (event time); how many entries went."""
        ...

    @property
    def tracked_numbers(self) -> int:
        """Entries of state held now (numbers, or callers under keys)."""
        ...


@runtime_checkable
class PartDetector(CallDetector, Protocol):
    """A detector that can be one part of a composite and keep its state in tables."""

    @property
    def stats(self) -> DetectorCounts: ...

    def observe_unique(self, call: Call) -> Sequence[Alert]:
        """One call already known not to be a duplicate."""
        ...

    def table_state(self) -> dict[str, bytes]:
        """The per-key state a changelog-backed table holds, each value in binary form."""
        ...

    def load_table_state(self, items: Mapping[str, bytes]) -> None:
        """Replace the per-key state by what :meth:`table_state` gave."""
        ...
