"""Ring memberships from the group stage to the detect stage, over ``dialguard.calls``.

The group stage (:mod:`streams.grouping`) learns which numbers joined a ring and which
rings ended (:meth:`GroupDetector.drain_memberships`); the detect stage
(:mod:`streams.detection`) keeps each member's ring id in the member's state
(:meth:`Detector.join_ring`), so that its number alerts carry it (CONTRACT 2).  The
changes go to the partition of ``dialguard.calls`` that owns the member
(:func:`~streams.ingest.partition_for`, where ingest sends the member's calls), the
partition whose detector and state-table entry the number has.

A :class:`MembershipBatch` is a tagged MessagePack array (``["memberships/1", changes]``):
a :class:`~streams.ingest.CallBatch` (an array whose first item is a float) is never
taken for one, and the tag carries the layout's version.

>>> from detectors.rings.detector import Membership
>>> changes = [Membership("+8617100000001", "ring-0123456789ab", 1.7e9),
...            Membership("+8617100000002", "ring-0123456789ab", 1.7e9, joined=False)]
>>> sent = encode_by_partition(changes, 4)
>>> all(is_memberships(value) for values in sent.values() for value in values)
True
>>> sorted(c.number for vs in sent.values() for v in vs for c in DECODER.decode(v).changes)
['+8617100000001', '+8617100000002']
>>> from streams.ingest import OUT, encode_batch
>>> from detectors.records import Call
>>> is_memberships(encode_batch([(OUT, Call("+8613800000001", "+8613900000002", 1.7e9, 0,
...                                         False))], 5.0))
False
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from detectors.rings.detector import Membership
from streams.ingest import partition_for

TAG = "memberships/1"
#: most changes in one message (a ring's end lists up to ``[rings].max_members``)
MAX_CHANGES = 8000


class MembershipBatch(msgspec.Struct, array_like=True, gc=False, tag=TAG):
    """One message of ``dialguard.calls`` from the group stage: joins and ring ends of
    numbers that partition owns, in the order they happened."""

    changes: list[Membership]


ENCODER = msgspec.msgpack.Encoder()
DECODER = msgspec.msgpack.Decoder(MembershipBatch)
# the array header and the tag: how every MembershipBatch, and nothing else sent there, starts
_PREFIX = ENCODER.encode(MembershipBatch([]))[:1 + len(ENCODER.encode(TAG))]


def is_memberships(value: bytes | None) -> bool:
    """Whether a message of ``dialguard.calls`` is a :class:`MembershipBatch`."""
    return value is not None and value.startswith(_PREFIX)


def encode_by_partition(changes: Iterable[Membership], partitions: int
                        ) -> dict[int, list[bytes]]:
    """The messages that carry ``changes`` to the partitions owning their numbers."""
    grouped: dict[int, list[Membership]] = {}
    for change in changes:
        grouped.setdefault(partition_for(change.number, partitions), []).append(change)
    return {part: [ENCODER.encode(MembershipBatch(rows[i:i + MAX_CHANGES]))
                   for i in range(0, len(rows), MAX_CHANGES)]
            for part, rows in grouped.items()}
