"""The detect stage: one :class:`~detectors.engine.Detector` per partition of ``dialguard.calls``.

Every assigned partition has its own detector (own model, seeded with
``model.seed + partition``), its per-number states loaded from the state table
on the partition's first batch.  A call flagged ``OUT`` (caller side), ``IN``
(callee side) or both goes through :meth:`Detector.observe_sides`, the per-call
path :meth:`Detector.observe` (what ``dialguard replay`` runs) shares: with one
partition every call is flagged both, and the stage is exactly replay.

After a buffer of batches, the states it changed are written to the table and
its changelog (:class:`~streams.state.ChangelogWriter`) and only then are its
alerts sent and its events acknowledged.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from typing import Any

import msgspec

from detectors.alerts import Alert
from detectors.config import Settings, build_settings
from detectors.engine import Detector
from streams.control import Tuning
from streams.ingest import BATCH_DECODER, IN, OUT
from streams.metrics import PipelineMetrics
from streams.sinks import AlertSink
from streams.state import ChangelogWriter, partition_states

log = logging.getLogger("dialguard.worker")


def seeded(settings: Settings, partition: int) -> Settings:
    """``settings`` with ``model.seed`` advanced by ``partition`` (own model per partition)."""
    if partition == 0:
        return settings
    raw = dict(settings.raw)
    raw["model"] = {**raw["model"], "seed": int(raw["model"]["seed"]) + partition}
    return build_settings(raw)


class PartitionDetectors:
    """Detection per partition of ``dialguard.calls``: batches in, state and alerts out.

    ``table`` is the state table (recovered from its changelog), ``changelog`` writes
    its changed entries, ``alerts`` receives what the detectors raise.
    """

    def __init__(self, tuning: Tuning, partitions: int, table: Any, changelog: ChangelogWriter,
                 alerts: AlertSink, metrics: PipelineMetrics, counts: dict[str, int]) -> None:
        self.tuning = tuning
        self.partitions = partitions
        self.table = table
        self.changelog = changelog
        self.alerts = alerts
        self.metrics = metrics
        self.counts = counts
        for key in ("batches", "detected", "duplicates", "alerts", "bad_batches"):
            counts.setdefault(key, 0)
        #: the detectors of the partitions this worker owns
        self.detectors: dict[int, Detector] = {}

    def detector(self, partition: int) -> Detector:
        """The detector of an assigned partition, (re)loaded from the table on first use."""
        det = self.detectors.get(partition)
        if det is None:
            states = partition_states(self.table, partition, self.partitions)
            det = Detector(seeded(self.tuning.settings, partition), self.tuning.allowlist,
                           states, track_touched=True)
            self.detectors[partition] = det
            log.info("partition %d: resumed %d tracked numbers", partition, len(states))
        return det

    def retune(self) -> None:
        """Give every detector the current settings and allowlist of :attr:`tuning`."""
        for partition, det in self.detectors.items():
            det.update_settings(seeded(self.tuning.settings, partition))
            det.set_allowlist(self.tuning.allowlist)

    def revoke(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            if self.detectors.pop(partition, None) is not None:
                log.info("partition %d revoked", partition)

    async def process(self, events: Iterable[Any]) -> None:
        """Process a buffer of repartitioned batches (events of ``dialguard.calls``).

        The states they changed are written to the table once per buffer (a number
        touched by several batches is written once) and before the buffer is acked.
        """
        alerts: list[tuple[Alert, float]] = []
        flushed: set[int] = set()
        n_calls = 0
        newest = -math.inf
        for event in events:
            partition = event.message.partition
            try:
                found, arrived, n, latest = self.run_batch(partition, event.value)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                # Only ingest writes this topic; anything else there is skipped, not fatal.
                log.error("%s/%d@%d: not a batch of calls, skipped: %s",
                          event.message.topic, partition, event.message.offset, exc)
                self.counts["bad_batches"] += 1
                continue
            alerts.extend((alert, arrived) for alert in found)
            n_calls += n
            newest = max(newest, latest)
            flushed.add(partition)
            self.counts["batches"] += 1
        for partition in flushed:
            await self.changelog.flush(partition, self.detectors[partition])
        now = time.time()
        for alert, arrived in alerts:
            await self.alerts.emit(alert)
            self.metrics.alert_raised(alert, arrived, now)
            if alert.model_score is not None:
                self.metrics.model_scored(alert.model_score)
        self.counts["alerts"] += len(alerts)
        if n_calls:
            self.metrics.observe_batch(n_calls, newest, now)
        self.metrics.set_tracked(sum(d.tracked_numbers for d in self.detectors.values()))

    def run_batch(self, partition: int, value: bytes) -> tuple[list[Alert], float, int, float]:
        """Run one batch through the partition's detector: alerts, arrival, calls, newest time."""
        det = self.detector(partition)
        batch = BATCH_DECODER.decode(value)
        if len(batch.flags) != len(batch.calls):
            raise msgspec.ValidationError("flags and calls differ in length")
        observe_sides = det.observe_sides
        alerts: list[Alert] = []
        duplicates_before = det.stats.duplicates
        outbound = 0
        newest = -math.inf
        for flags, call in zip(batch.flags, batch.calls, strict=True):
            if call.start > newest:
                newest = call.start
            out = flags & OUT != 0
            outbound += out
            alerts.extend(observe_sides(call, out, flags & IN != 0))
        self.counts["detected"] += outbound
        duplicates = det.stats.duplicates - duplicates_before
        if duplicates:
            self.counts["duplicates"] += duplicates
            self.metrics.duplicate(duplicates)
        return alerts, batch.arrived, len(batch.calls), newest
