"""Counts that reconcile after any crash, from Kafka alone (``dialguard reconcile``).

Nothing here reads a worker's memory: every figure comes from the topics and the
consumer groups' committed offsets, so it holds after a ``kill -9``.

* **produced**: records in ``cdr.raw`` (a JSON array counts its elements, any
  other message one record);
* **ingest rejected**: rejections in ``cdr.rejected`` whose source is ``cdr.raw``;
* **forwarded**: calls in ``dialguard.calls`` on their caller side (each call is
  sent there once on that side, plus once more on its callee's partition; a call
  whose caller is withheld has only its callee side, and counts there);
* **processed**: forwarded calls below the detect group's (``<app id>``) committed
  offsets, less the ``detect_error`` rejections (a call whose detection raised);
* **pending**: raw messages above the ingest group's (``<app id>-ingest``)
  committed offsets, forwarded calls above the detect group's, messages of
  ``dialguard.groups`` (the group stage's input, where it exists) above the same
  group's committed offsets, and the group stage's ring memberships in
  ``dialguard.calls`` (:mod:`streams.memberships`; they carry no record) above them.

Once nothing is pending, ``produced == processed + rejected`` (rejected: ingest
and detection); delivery is at least once, so a crash can make the right side
larger by the calls ingest sent twice (``redelivered``), never smaller.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import msgspec
import orjson

from streams.ingest import BATCH_DECODER, counted_copy
from streams.memberships import is_memberships
from streams.options import Topics


@dataclass
class Reconciliation:
    produced: int = 0
    raw_messages: int = 0
    pending_raw_messages: int = 0
    ingest_rejected: int = 0
    forwarded: int = 0
    pending_calls: int = 0
    detected: int = 0
    detect_rejected: int = 0
    #: calls-topic messages that are not batches of calls (skipped by detection)
    bad_batches: int = 0
    #: messages of the groups topic the group stage has not committed yet
    pending_group_batches: int = 0
    #: ring-membership messages in the calls topic, and those not committed yet
    membership_messages: int = 0
    pending_membership_messages: int = 0

    @property
    def processed(self) -> int:
        return self.detected - self.detect_rejected

    @property
    def rejected(self) -> int:
        return self.ingest_rejected + self.detect_rejected

    @property
    def redelivered(self) -> int:
        return max(0, self.forwarded + self.ingest_rejected - self.produced)

    @property
    def pending(self) -> bool:
        return (self.pending_raw_messages > 0 or self.pending_calls > 0
                or self.pending_group_batches > 0 or self.pending_membership_messages > 0)

    @property
    def lost(self) -> int:
        """Records neither processed, rejected nor pending (should be 0)."""
        if self.pending:
            return 0
        return max(0, self.produced - self.processed - self.rejected)

    @property
    def balanced(self) -> bool:
        return not self.pending and self.produced == self.processed + self.rejected

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "processed": self.processed, "rejected": self.rejected,
                "redelivered": self.redelivered, "lost": self.lost, "balanced": self.balanced}

    def render(self) -> str:
        lines = [
            f"produced {self.produced:,} records in {self.raw_messages:,} raw messages",
            f"processed {self.processed:,}, rejected {self.rejected:,} "
            f"(ingest {self.ingest_rejected:,}, detection {self.detect_rejected:,})",
            f"pending: {self.pending_raw_messages:,} raw messages, {self.pending_calls:,} calls, "
            f"{self.pending_group_batches:,} group batches, "
            f"{self.pending_membership_messages:,} ring-membership messages",
        ]
        if self.redelivered:
            lines.append(f"redelivered (at least once, after a crash): {self.redelivered:,}")
        if self.pending:
            lines.append("not settled: workers have not finished what was produced")
        elif self.balanced:
            lines.append("balanced: produced = processed + rejected")
        elif not self.lost:
            lines.append("no record lost: produced = processed + rejected - redelivered")
        else:
            lines.append(f"NOT balanced: {self.lost:,} record(s) lost")
        return "\n".join(lines)


def records_in(value: bytes | None) -> int:
    """Records one raw message holds, as ingest counts them.

    >>> records_in(b'{"caller": "1"}'), records_in(b'[{}, {}, 3]'), records_in(b'[nope')
    (1, 3, 1)
    """
    if value is not None and value[:1] == b"[":
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError:
            return 1
        if isinstance(parsed, list):
            return len(parsed)
    return 1


async def reconcile(bootstrap: list[str], app_id: str, topics: Topics) -> Reconciliation:
    """Read the topics and committed offsets of app ``app_id``."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        ingest_done = await _committed(admin, f"{app_id}-ingest", topics.raw)
        detect_done = await _committed(admin, app_id, topics.calls)
        groups_done = await _committed(admin, app_id, topics.groups)
    finally:
        await admin.close()
    result = Reconciliation()
    for partition, offset, value in await read_topic(bootstrap, topics.raw):
        result.raw_messages += 1
        result.produced += records_in(value)
        if offset >= ingest_done.get(partition, 0):
            result.pending_raw_messages += 1
    for _, _, value in await read_topic(bootstrap, topics.rejected):
        source = str(orjson.loads(value or b"{}").get("source", ""))
        if source.startswith(f"{topics.raw}/"):
            result.ingest_rejected += 1
        elif source.startswith(f"{topics.calls}/"):
            result.detect_rejected += 1
    count_calls(result, await read_topic(bootstrap, topics.calls), detect_done)
    for partition, offset, _ in await read_topic(bootstrap, topics.groups):
        if offset >= groups_done.get(partition, 0):
            result.pending_group_batches += 1
    return result


def count_calls(result: Reconciliation, messages: list[tuple[int, int, bytes | None]],
                done: dict[int, int]) -> None:
    """Add the messages of ``dialguard.calls`` (``(partition, offset, value)``) to ``result``,
    those below the committed offsets ``done`` (by partition) as detected."""
    for partition, offset, value in messages:
        pending = offset >= done.get(partition, 0)
        if is_memberships(value):
            result.membership_messages += 1
            result.pending_membership_messages += pending
            continue
        try:
            batch = BATCH_DECODER.decode(value or b"")
            outbound = sum(map(counted_copy, batch.flags, batch.calls))
        except (msgspec.DecodeError, msgspec.ValidationError):
            result.bad_batches += 1
            continue
        result.forwarded += outbound
        if pending:
            result.pending_calls += outbound
        else:
            result.detected += outbound


async def _committed(admin: Any, group: str, topic: str) -> dict[int, int]:
    from aiokafka.errors import GroupCoordinatorNotAvailableError

    try:
        offsets = await admin.list_consumer_group_offsets(group)
    except GroupCoordinatorNotAvailableError:  # no group has committed on this cluster yet
        return {}
    return {tp.partition: meta.offset for tp, meta in offsets.items()
            if tp.topic == topic and meta.offset >= 0}


async def read_topic(bootstrap: list[str], topic: str) -> list[tuple[int, int, bytes | None]]:
    """Every message of ``topic`` now there: ``(partition, offset, value)``."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    out: list[tuple[int, int, bytes | None]] = []
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return out
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            fetched = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, messages in fetched.items():
                out.extend((tp.partition, m.offset, m.value) for m in messages
                           if m.offset < ends[tp])
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return out
