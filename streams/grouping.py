"""The group stage: one :class:`~detectors.rings.detector.GroupDetector` per partition of
``dialguard.groups``.

Ingest sends every call once per grouping key (:func:`streams.ingest.group_keys`: its
ingress, its called-number block) to the partition owning that key; each call arrives
here with the key it was sent under and is accounted under that key only
(:meth:`GroupDetector.observe_keyed`).  A key's state depends only on the calls sent
under it, so the rings found do not depend on how keys are spread over partitions or
workers: they are the rings ``dialguard replay`` finds.

Per-key states (:class:`~detectors.rings.cohort.KeyState`) live in the group table
(changelog-backed, keyed by grouping key), loaded on a partition's first batch.  After
a buffer, its ring alerts are sent, and so are its ring memberships (every number that
joined a ring, every member of a ring that ended: :mod:`streams.memberships`) to the
partitions of ``dialguard.calls`` that own those numbers, for the detect stage to tag
their number alerts; once all are delivered, the keys it changed are written to the
table and its changelog, and only then is the buffer acknowledged.

Deduplication is per partition and key: a call delivered twice is counted once under
each of its keys, as replay's one deduplication does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

import msgspec

from detectors.alerts import Alert
from detectors.dedup import Deduplicator
from detectors.rings.detector import GroupDetector, Membership
from streams.control import Tuning
from streams.ingest import GROUP_DECODER, Send
from streams.memberships import encode_by_partition
from streams.metrics import PipelineMetrics
from streams.sinks import AlertSink
from streams.state import ChangelogWriter, TouchedStates, partition_key_states

log = logging.getLogger("dialguard.worker")


class PartitionGroups:
    """Group detection per partition of ``dialguard.groups``: batches in, ring alerts out.

    ``table`` is the group table (recovered from its changelog), ``changelog`` writes
    its changed keys, ``alerts`` receives the ring alerts, ``send_memberships(value,
    partition)`` sends one message to ``dialguard.calls`` (None: memberships are not sent).
    """

    def __init__(self, tuning: Tuning, partitions: int, table: Any, changelog: ChangelogWriter,
                 alerts: AlertSink, metrics: PipelineMetrics, counts: dict[str, int],
                 send_memberships: Send | None = None) -> None:
        self.tuning = tuning
        self.partitions = partitions
        self.send_memberships = send_memberships
        self.table = table
        self.changelog = changelog
        self.alerts = alerts
        self.metrics = metrics
        self.counts = counts
        for key in ("group_batches", "grouped", "group_duplicates", "ring_alerts",
                    "bad_group_batches", "group_errors", "group_redelivered",
                    "memberships_sent"):
            counts.setdefault(key, 0)
        #: the group detectors of the partitions this worker owns
        self.detectors: dict[int, GroupDetector] = {}
        self._dedup: dict[int, Deduplicator] = {}

    def detector(self, partition: int) -> GroupDetector:
        """The detector of an assigned partition, (re)loaded from the table on first use."""
        det = self.detectors.get(partition)
        if det is None:
            states = partition_key_states(self.table, partition, self.partitions)
            det = GroupDetector(self.tuning.settings, self.tuning.allowlist, states,
                                track_memberships=self.send_memberships is not None)
            self.detectors[partition] = det
            self._dedup[partition] = Deduplicator(self.tuning.settings.input.dedup_window_s)
            log.info("groups partition %d: resumed %d keys (%d rings)", partition, len(states),
                     sum(s.ring is not None for s in states.values()))
        return det

    def retune(self) -> None:
        """Give every detector the current settings and allowlist of :attr:`tuning`."""
        for det in self.detectors.values():
            det.update_settings(self.tuning.settings)
            det.set_allowlist(self.tuning.allowlist)

    def revoke(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            if self.detectors.pop(partition, None) is not None:
                self._dedup.pop(partition, None)
                log.info("groups partition %d revoked", partition)

    async def process(self, events: Iterable[Any]) -> None:
        """Process a buffer of :class:`~streams.ingest.GroupBatch` events: their ring alerts
        and memberships are sent and delivered, then the keys they changed are written to
        the table (a crash in between sends them again, a ring alert with the same ring id,
        never loses one)."""
        alerts: list[tuple[Alert, float]] = []
        touched: dict[int, set[str]] = {}
        for event in events:
            message = event.message
            try:
                found, arrived, keys = self.run_batch(message.partition, event.value,
                                                      message.offset)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                log.error("%s/%d@%d: not a batch of grouped calls, skipped: %s",
                          message.topic, message.partition, message.offset, exc)
                self.counts["bad_group_batches"] += 1
                continue
            alerts.extend((alert, arrived) for alert in found)
            touched.setdefault(message.partition, set()).update(keys)
            self.counts["group_batches"] += 1
        memberships = [c for det in self.detectors.values() for c in det.drain_memberships()]
        now = time.time()
        for alert, arrived in alerts:
            await self.alerts.emit(alert)
            self.metrics.alert_raised(alert, arrived, now)
        self.counts["ring_alerts"] += len(alerts)
        sending = await self._send_memberships(memberships)
        await self.alerts.delivered()
        if sending:
            await asyncio.gather(*sending)
        for partition, keys in touched.items():
            states = self.detectors[partition].states
            assert isinstance(states, TouchedStates)
            await self.changelog.write(partition, states, keys | states.drain())

    async def _send_memberships(self, changes: list[Membership]) -> list[asyncio.Future[Any]]:
        """Send ``changes`` to the partitions of ``dialguard.calls`` owning their numbers;
        the futures of their delivery."""
        if self.send_memberships is None or not changes:
            return []
        sending = []
        for part, values in encode_by_partition(changes, self.partitions).items():
            for value in values:
                sent = await self.send_memberships(value, part)
                if isinstance(sent, asyncio.Future):
                    sending.append(sent)
        self.counts["memberships_sent"] += len(changes)
        return sending

    def run_batch(self, partition: int, value: bytes, offset: int = -1
                  ) -> tuple[list[Alert], float, set[str]]:
        """One batch through the partition's detector: ring alerts, arrival, keys observed.

        A call whose accounting raises is logged and counted (``group_errors``); the per-number
        stage rejects it if it is bad, and the batch's other calls go on.  ``offset`` is the
        batch's message offset: each call is counted under its key once, however often the
        message is delivered.
        """
        det = self.detector(partition)
        dedup = self._dedup[partition]
        batch = GROUP_DECODER.decode(value)
        if len(batch.keys) != len(batch.calls):
            raise msgspec.ValidationError("keys and calls differ in length")
        observe = det.observe_keyed
        alerts: list[Alert] = []
        keys: set[str] = set()
        duplicates = 0
        redelivered_before = det.stats.redelivered
        for index, (key, call) in enumerate(zip(batch.keys, batch.calls, strict=True)):
            if call.id is not None and dedup.seen(f"{key}\x00{call.id}", call.start):
                duplicates += 1
                continue
            try:
                alert = observe(call, key, offset, index)
            except Exception as exc:  # one call's error must never fail its neighbours
                self.counts["group_errors"] += 1
                log.error("groups partition %d: a call raised %s", partition, type(exc).__name__)
                continue
            keys.add(key)
            if alert is not None:
                alerts.append(alert)
        self.counts["group_redelivered"] += det.stats.redelivered - redelivered_before
        self.counts["grouped"] += len(batch.calls) - duplicates
        self.counts["group_duplicates"] += duplicates
        return alerts, batch.arrived, keys
