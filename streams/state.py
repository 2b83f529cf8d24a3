"""The state stores: the per-number and group tables, their codecs and changelog writes.

Per-number state (:class:`~detectors.features.NumberState`) lives in a Faust table
partitioned like ``dialguard.calls``, backed by a changelog topic so that a
restarted or re-assigned worker resumes it.  Values are stored in the binary form
of :meth:`NumberState.to_bytes` (:class:`StateCodec`); the changed states of a
buffer are written as whole producer batches (:class:`ChangelogWriter`).  The group
stage's table holds :class:`~detectors.rings.cohort.KeyState` values by grouping key in
the same way (:class:`KeyStateCodec`, :class:`TouchedStates`).  Each partition's learned
references of busy callers (:class:`~detectors.references.References`) are one entry of a
table of their own, keyed by partition, in their binary form as is (the ``raw`` codec),
written at most once per interval of event time (:class:`ReferencesChangelog`).
"""

from __future__ import annotations

import asyncio
import io
import logging
import math
import pickle
from collections.abc import Iterable, Mapping
from typing import Any

import faust
from faust.serializers import codecs

from detectors.engine import Detector
from detectors.features import NumberState
from detectors.references import References
from detectors.rings.cohort import KeyState
from streams.ingest import partition_for

log = logging.getLogger("dialguard.worker")


class _StateUnpickler(pickle.Unpickler):
    """Unpickles :class:`NumberState` values and nothing else that could run code."""

    ALLOWED = {
        ("detectors.features", "NumberState"),
        ("array", "array"),
        ("array", "_array_reconstructor"),
        ("builtins", "bytearray"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"state table: refusing to unpickle {module}.{name}")
        return super().find_class(module, name)


class StateCodec(codecs.Codec):
    """Faust codec of the state table: :meth:`NumberState.to_bytes` (no code runs on load).

    Changelogs written by dialguard before that form existed hold pickles (protocol
    5); those are still read, with an unpickler that loads number states only.

    >>> from detectors.config import load_settings
    >>> state = NumberState(load_settings().features, 1.7e9)
    >>> StateCodec().loads(StateCodec().dumps(state)).first_seen
    1700000000.0
    """

    def _dumps(self, obj: Any) -> bytes:
        state: NumberState = obj
        return state.to_bytes()

    def _loads(self, s: bytes) -> Any:
        if s[:1] == b"\x80":  # a pickle from an earlier version
            return _StateUnpickler(io.BytesIO(s)).load()
        return NumberState.from_bytes(s)


STATE_CODEC = "dialguard_state"
codecs.register(STATE_CODEC, StateCodec())


def declare_state_table(app: faust.App, name: str, partitions: int, help: str,
                        codec: str = STATE_CODEC) -> Any:
    """A Faust table of ``str`` keys and binary state values in ``codec`` (default
    :class:`StateCodec`, per-number states; :data:`GROUP_CODEC` for group states)."""
    table: Any = app.Table(
        name, partitions=partitions, help=help,
        schema=faust.Schema(key_type=str, key_serializer="raw", value_serializer=codec),
    )
    # Tables take their codecs from key/value types (json by default): set them outright.
    table.key_serializer = "raw"
    table.value_serializer = codec
    # The changelog topic was made (by app.Table) with the json serializers: recovery
    # decodes with its schema, so give it the table's codecs too.
    changelog: Any = table.changelog_topic
    changelog.schema = faust.Schema(key_type=str, key_serializer="raw", value_serializer=codec)
    changelog.key_serializer = "raw"
    changelog.value_serializer = codec
    return table


def partition_states(table: Any, partition: int, partitions: int) -> dict[str, NumberState]:
    """The states in ``table`` (recovered from its changelog) that ``partition`` owns."""
    states: dict[str, NumberState] = {}
    for key, value in table.items():
        number = key.decode() if isinstance(key, bytes) else key
        if isinstance(value, NumberState) and partition_for(number, partitions) == partition:
            states[number] = value
    return states


class ChangelogWriter:
    """Writes state-table changelog records as whole producer batches.

    Uses the aiokafka producer inside the app's Faust producer, so Faust's flush
    before every offset commit also waits for these records.  A delivered batch
    moves the table's persisted changelog offset, as Faust's own per-key sends do
    (it matters for on-disk stores, which then recover only what is newer).
    """

    def __init__(self, app: faust.App, table: Any) -> None:
        self.app = app
        self.table = table

    def _producer(self) -> Any:
        """The running aiokafka producer (broker-free tests put a stand-in here)."""
        return self.app.producer._ensure_producer()  # type: ignore[attr-defined]

    async def send(self, partition: int, records: list[tuple[bytes, bytes | None]]) -> None:
        """Queue ``(key, value)`` records (``None``: deleted) for one changelog partition."""
        producer = self._producer()
        batch, count = producer.create_batch(), 0
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None) is None:
                await self._submit(producer, batch, partition, count)
                batch, count = producer.create_batch(), 0
                if batch.append(key=key, value=value, timestamp=None) is None:
                    raise ValueError(f"state of {len(value or b'')} bytes exceeds a producer "
                                     "batch (producer_max_batch_size)")
            count += 1
        if count:
            await self._submit(producer, batch, partition, count)

    async def _submit(self, producer: Any, batch: Any, partition: int, count: int) -> None:
        topic = self.table.changelog_topic.get_topic_name()
        future = await producer.send_batch(batch, topic, partition=partition)

        def delivered(fut: asyncio.Future[Any]) -> None:
            if not fut.cancelled() and fut.exception() is None:
                meta = fut.result()
                self.table.data.set_persisted_offset(meta.topic_partition, meta.offset + count - 1)

        future.add_done_callback(delivered)

    async def flush(self, partition: int, detector: Detector) -> int:
        """Write the states ``detector`` changed to the table and this changelog partition.

        Returns the records written (a number whose state was dropped is a deletion).
        """
        return await self.write(partition, detector.states, detector.drain_touched())

    async def write(self, partition: int, states: Mapping[str, Any], touched: Iterable[str]) -> int:
        """Write the ``touched`` keys of ``states`` (values with ``to_bytes()``) to the table
        and this changelog partition; a key no longer in ``states`` is a deletion."""
        data = self.table.data
        records: list[tuple[bytes, bytes | None]] = []
        for key in touched:
            state = states.get(key)
            if state is None:
                if key in data:
                    del data[key]
                    records.append((key.encode(), None))
            else:
                data[key] = state
                records.append((key.encode(), state.to_bytes()))
        if records:
            await self.send(partition, records)
        return len(records)


class TouchedStates(dict[str, KeyState]):
    """The group detector's per-key states, remembering which keys were set or deleted
    (what :meth:`ChangelogWriter.write` must write; keys updated in place are added by the
    stage that observed them).

    >>> states = TouchedStates({"in:a": KeyState.new(3)})
    >>> states["in:b"] = KeyState.new(3); del states["in:a"]
    >>> sorted(states.drain())
    ['in:a', 'in:b']
    """

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.touched: set[str] = set()

    def __setitem__(self, key: str, value: KeyState) -> None:
        self.touched.add(key)
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.touched.add(key)
        super().__delitem__(key)

    def drain(self) -> set[str]:
        touched, self.touched = self.touched, set()
        return touched


class KeyStateCodec(codecs.Codec):
    """Faust codec of the group table: :meth:`KeyState.to_bytes` (MessagePack, no code runs
    on load).

    >>> KeyStateCodec().loads(KeyStateCodec().dumps(KeyState.new(3))) == KeyState.new(3)
    True
    """

    def _dumps(self, obj: Any) -> bytes:
        state: KeyState = obj
        return state.to_bytes()

    def _loads(self, s: bytes) -> Any:
        return KeyState.from_bytes(s)


GROUP_CODEC = "dialguard_group_state"
codecs.register(GROUP_CODEC, KeyStateCodec())


def partition_key_states(table: Any, partition: int, partitions: int) -> TouchedStates:
    """The group states in ``table`` whose grouping key ``partition`` owns."""
    states = TouchedStates()
    for key, value in table.items():
        name = key.decode() if isinstance(key, bytes) else key
        if isinstance(value, KeyState) and partition_for(name, partitions) == partition:
            dict.__setitem__(states, name, value)
    return states


#: codec of the references table: the bytes of :meth:`References.to_bytes`, stored as is
REFERENCES_CODEC = "raw"


class ReferencesChangelog:
    """Each partition's learned references in the references table and its changelog.

    One entry per partition (key: the partition number as text, value:
    :meth:`References.to_bytes`), written to that partition of the changelog.  A
    partition's references are written when they learned something since their last
    write and at least ``every_s`` seconds of event time (the detector's watermark)
    passed since then (the first change after a load is written at once): a restart
    forgets at most ``every_s`` of event time of learning.  Event time, not wall
    time: a backlog read fast is written as often per day of calls as live traffic.
    """

    def __init__(self, writer: ChangelogWriter, every_s: float) -> None:
        self.writer = writer
        self.every_s = every_s
        #: per partition: samples and event time of the last write (or load)
        self.written: dict[int, tuple[int, float]] = {}

    @staticmethod
    def key(partition: int) -> str:
        return str(partition)

    def stored(self, partition: int) -> bytes | None:
        """The bytes stored for ``partition`` (recovered from the changelog), or None."""
        key = self.key(partition)
        for name, value in self.writer.table.items():
            if (name.decode() if isinstance(name, bytes) else name) == key:
                return bytes(value) if value is not None else None
        return None

    def load(self, partition: int, detector: Detector) -> int:
        """Give ``detector`` the references stored for ``partition``; their samples (0: none).

        References that cannot be read, or that lack a feature the detector learns, are
        logged and ignored (the detector learns afresh).
        """
        data = self.stored(partition)
        current = detector.reach.references
        samples = 0
        if data is not None:
            try:
                refs = References.from_bytes(data)
            except ValueError as exc:
                log.warning("partition %d: stored references ignored: %s", partition, exc)
            else:
                if set(current.by_feature) <= set(refs.by_feature):
                    detector.reach.references = refs
                    samples = refs.samples
                else:
                    log.warning("partition %d: stored references ignored: they lack %s",
                                partition, sorted(set(current.by_feature) - set(refs.by_feature)))
        self.written[partition] = (detector.reach.references.samples, -math.inf)
        return samples

    def forget(self, partition: int) -> None:
        self.written.pop(partition, None)

    async def flush(self, partition: int, detector: Detector) -> bool:
        """Write ``detector``'s references if they changed and ``every_s`` passed; True if so."""
        refs = detector.reach.references
        samples, at = self.written.get(partition, (0, -math.inf))
        t = detector.watermark
        if refs.samples == samples or t - at < self.every_s:
            return False
        value = refs.to_bytes()
        key = self.key(partition)
        self.writer.table.data[key] = value
        await self.writer.send(partition, [(key.encode(), value)])
        self.written[partition] = (refs.samples, t)
        return True
