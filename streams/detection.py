"""The detect stage: one :class:`~detectors.engine.Detector` per partition of ``dialguard.calls``.

Every assigned partition has its own detector (own model, seeded with
``model.seed + partition``), its per-number states loaded from the state table
on the partition's first batch.  A call flagged ``OUT`` (caller side), ``IN``
(callee side) or both goes through :meth:`Detector.observe_sides`, the per-call
path :meth:`Detector.observe` (what ``dialguard replay`` runs) shares: with one
partition every call is flagged both, and the stage is exactly replay.

Each detector's learned references of busy callers are loaded from the references
table with it, and written back when they changed and ``references_every`` seconds of
event time passed (:class:`~streams.state.ReferencesChangelog`).

The group stage also sends ring memberships here (:mod:`streams.memberships`), each to the
partition that owns the member: every number that joined a ring, every member of a ring
that ended.  They go into the member's state (:meth:`Detector.join_ring`,
``leave_ring``), saved with it, and the member's number alerts from then on carry the
ring's id.  They come later than in ``dialguard replay`` (after the group stage's buffer,
through the topic): a number alerted before its membership arrives goes without it.

After a buffer of batches, its alerts are sent and delivered, then the states it changed
(and the references due) are written to the tables and their changelogs
(:class:`~streams.state.ChangelogWriter`), and only then are its events acknowledged.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from typing import Any

import msgspec
import orjson

from detectors.alerts import Alert
from detectors.config import Settings, build_settings
from detectors.engine import Detector
from detectors.records import Call, Rejected
from streams.control import Tuning
from streams.ingest import BATCH_DECODER, IN, OUT, Send, counted_copy, partition_for
from streams.memberships import DECODER as MEMBERSHIPS_DECODER
from streams.memberships import is_memberships
from streams.metrics import PipelineMetrics
from streams.sinks import AlertSink
from streams.state import ChangelogWriter, ReferencesChangelog, partition_states

log = logging.getLogger("dialguard.worker")

#: reason of a call rejected because its detection raised (see :class:`PartitionDetectors`)
DETECT_ERROR = "detect_error"


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
    its changed entries, ``alerts`` receives what the detectors raise; ``references``
    loads and writes each partition's learned references (None: they live in memory only).
    """

    def __init__(self, tuning: Tuning, partitions: int, table: Any, changelog: ChangelogWriter,
                 alerts: AlertSink, metrics: PipelineMetrics, counts: dict[str, int],
                 reject: Send | None = None,
                 references: ReferencesChangelog | None = None) -> None:
        self.tuning = tuning
        #: sends one rejection (CONTRACT-shaped JSON) to ``cdr.rejected``
        self.reject = reject
        self.partitions = partitions
        self.table = table
        self.changelog = changelog
        self.alerts = alerts
        self.metrics = metrics
        self.counts = counts
        self.references = references
        for key in ("batches", "detected", "duplicates", "alerts", "bad_batches",
                    "detect_rejected", "inbound_errors", "redelivered", "memberships",
                    "bad_memberships"):
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
            busy = 0 if self.references is None else self.references.load(partition, det)
            log.info("partition %d: resumed %s tracked numbers and the references of %s busy "
                     "callers", partition, f"{len(states):,}", f"{busy:,}")
        return det

    def retune(self) -> None:
        """Give every detector the current settings and allowlist of :attr:`tuning`."""
        for partition, det in self.detectors.items():
            det.update_settings(seeded(self.tuning.settings, partition))
            det.set_allowlist(self.tuning.allowlist)

    def revoke(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            if self.detectors.pop(partition, None) is not None:
                if self.references is not None:
                    self.references.forget(partition)
                log.info("partition %d revoked", partition)

    async def process(self, events: Iterable[Any]) -> None:
        """Process a buffer of repartitioned batches (events of ``dialguard.calls``).

        The states they changed are written to the table once per buffer (a number
        touched by several batches is written once) and before the buffer is acked, and
        so are the references that are due (:class:`~streams.state.ReferencesChangelog`).
        """
        alerts: list[tuple[Alert, float]] = []
        rejected: list[Rejected] = []
        flushed: set[int] = set()
        n_calls = 0
        newest = -math.inf
        for event in events:
            message = event.message
            partition = message.partition
            where = f"{message.topic}/{partition}@{message.offset}"
            if is_memberships(event.value):
                if self.run_memberships(partition, event.value, where):
                    flushed.add(partition)
                continue
            try:
                found, arrived, n, latest = self.run_batch(partition, event.value, rejected, where,
                                                           message.offset)
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
        now = time.time()
        for alert, arrived in alerts:
            await self.alerts.emit(alert)
            self.metrics.alert_raised(alert, arrived, now)
            if alert.model_score is not None:
                self.metrics.model_scored(alert.model_score)
        self.counts["alerts"] += len(alerts)
        # alerts out before the states that raised them are saved: a crash in between sends
        # an alert again (the next owner applies the unsaved calls anew), never loses one
        await self.alerts.delivered()
        for partition in flushed:
            await self.changelog.flush(partition, self.detectors[partition])
            if self.references is not None:
                await self.references.flush(partition, self.detectors[partition])
        if rejected:
            await self._send_rejected(rejected)
        if n_calls:
            self.metrics.observe_batch(n_calls, newest, now)
        self.metrics.set_tracked(sum(d.tracked_numbers for d in self.detectors.values()))

    async def _send_rejected(self, rejected: list[Rejected]) -> None:
        for rej in rejected:
            self.metrics.record_rejected(rej.reason)
            if self.reject is not None:
                await self.reject(orjson.dumps(rej.to_dict()), None)
        self.counts["detect_rejected"] += len(rejected)

    def run_batch(self, partition: int, value: bytes, rejected: list[Rejected] | None = None,
                  source: str = "", offset: int = -1) -> tuple[list[Alert], float, int, float]:
        """Run one batch through the partition's detector: alerts, arrival, calls, newest time.

        A call whose detection raises is rejected (``detect_error``, appended to
        ``rejected``) on its caller side, and only counted on its callee side: the
        batch's other calls go on.  ``offset`` is the batch's message offset: each call
        side is applied to its number's state once, however often the message is
        delivered (see :meth:`Detector.observe_sides`).
        """
        det = self.detector(partition)
        batch = BATCH_DECODER.decode(value)
        if len(batch.flags) != len(batch.calls):
            raise msgspec.ValidationError("flags and calls differ in length")
        observe_sides = det.observe_sides
        alerts: list[Alert] = []
        stats = det.stats
        duplicates_before, late_before = stats.duplicates, stats.late
        redelivered_before = stats.redelivered
        counted = 0
        newest = -math.inf
        for index, (flags, call) in enumerate(zip(batch.flags, batch.calls, strict=True)):
            if call.start > newest:
                newest = call.start
            out = flags & OUT != 0
            try:
                alerts.extend(observe_sides(call, out, flags & IN != 0, offset, index))
            except Exception as exc:  # one call's error must never fail its neighbours
                self._failed(call, out, counted_copy(flags, call), exc, source, rejected)
                continue
            counted += counted_copy(flags, call)
        self.counts["detected"] += counted
        self.metrics.late(stats.late - late_before)
        self.counts["redelivered"] += stats.redelivered - redelivered_before
        duplicates = stats.duplicates - duplicates_before
        if duplicates:
            self.counts["duplicates"] += duplicates
            self.metrics.duplicate(duplicates)
        return alerts, batch.arrived, len(batch.calls), newest

    def run_memberships(self, partition: int, value: bytes, source: str = "") -> int:
        """Apply a :class:`~streams.memberships.MembershipBatch` to the partition's detector;
        the changes applied.

        A message that does not decode, and a change for a number this partition does not
        own or with an impossible ring id, are skipped and counted (``bad_memberships``).
        """
        try:
            changes = MEMBERSHIPS_DECODER.decode(value).changes
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.error("%s: not a batch of ring memberships, skipped: %s", source, exc)
            self.counts["bad_memberships"] += 1
            return 0
        det = self.detector(partition)
        applied = 0
        for change in changes:
            if partition_for(change.number, self.partitions) != partition:
                log.error("%s: a ring membership for a number of another partition, skipped",
                          source)
                self.counts["bad_memberships"] += 1
                continue
            try:
                if change.joined:
                    det.join_ring(change.number, change.ring_id, change.at)
                else:
                    det.leave_ring(change.number, change.ring_id)
            except Exception as exc:  # one change's error must never fail the stage
                # the type only: an exception's text may quote a number
                log.error("%s: a ring membership was skipped (%s)", source, type(exc).__name__)
                self.counts["bad_memberships"] += 1
                continue
            applied += 1
        self.counts["memberships"] += applied
        return applied

    def _failed(self, call: Call, outbound: bool, counted: bool, exc: Exception, source: str,
                rejected: list[Rejected] | None) -> None:
        side = "outbound" if outbound else "inbound"
        self.metrics.detect_error(side)
        # the type only: an exception's text may quote a number
        log.error("%s: detection of a call raised %s (%s side)", source, type(exc).__name__, side)
        if not counted:
            self.counts["inbound_errors"] += 1
        elif rejected is not None:
            rejected.append(Rejected(DETECT_ERROR, f"detection raised {type(exc).__name__}",
                                     orjson.dumps(call.to_dict()), source))
