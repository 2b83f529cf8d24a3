"""The Faust stream workers: topics, the state table and the agents, in one place.

Data flow (topic names are options; defaults shown)::

    cdr.raw ─ingest─▶ dialguard.calls (repartitioned by calling number) ─detect─▶ dialguard.alerts
               │                                                           │
               └──▶ cdr.rejected                       state table ◀──────┘ (changelog topic)
    dialguard.control ──(every worker reads all of it)──▶ live settings and allowlist

* **ingest** reads ``cdr.raw`` (one CDR, or a JSON array of CDRs, per message:
  CONTRACT 1a) up to ``ingest_batch`` messages at a time, decodes with
  :func:`detectors.readers.decode_json_value`, sends rejections to
  ``cdr.rejected`` and groups the calls by the partition of
  ``dialguard.calls`` that owns the calling number (``"out"`` side) and the
  one that owns the called number (``"in"`` side).  It sends ONE message per
  partition holding that partition's calls, in arrival order, each flagged
  out / in / both.  A number always maps to the same partition
  (:func:`partition_for`, a stable CRC-32).  By default ingest is one aiokafka
  consumer in group ``<app id>-ingest`` run as a Faust task, committing offsets
  only after its repartitioned batches were delivered: measured here, a Faust
  agent costs ~100-450 us per raw message before any work, which caps one-CDR
  messages near 8k/s; ``ingest="faust"`` keeps the Faust agent
  (``stream.take_events``) for tests and comparison.  Both run the same
  :meth:`Pipeline.ingest_messages`.
* **detect** (a Faust agent) reads ``dialguard.calls`` with
  ``stream.take_events`` (a few batch messages at a time).  Every
  partition has its own :class:`~detectors.engine.Detector` (own model, seeded
  with ``model.seed + partition``) whose ``states`` is an in-memory dict.  For
  an ``out`` call it deduplicates by id and calls ``observe_outbound``; for an
  ``in`` call ``observe_inbound``: with one partition every call is flagged
  both, and that is exactly :meth:`Detector.observe`, the code ``dialguard
  replay`` runs.  After the buffer, the numbers whose state changed
  (``drain_touched``) are written to the Faust table and its changelog
  partition (deleted ones removed), before the buffer's events are acked, so
  before their offsets can be committed.
  The table's changelog topic lets a restarted or re-assigned worker resume:
  on the first batch of a newly assigned partition its states are loaded back
  from the (recovered) table.
* **control**: every worker reads the whole control topic with its own
  group-less consumer, from the beginning (so a restarted worker re-applies
  earlier tuning), before it processes calls; see :mod:`streams.control`.

Sends to ``dialguard.calls`` and ``dialguard.alerts`` are forced (sent at once,
not held until the source offset commits), which keeps detection latency in
milliseconds; delivery is at least once.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import math
import pickle
import time
import zlib
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import faust
import msgspec
import orjson
from faust.serializers import codecs

from detectors.alerts import Alert
from detectors.allowlist import Allowlist
from detectors.config import Settings, build_settings
from detectors.dedup import Deduplicator
from detectors.engine import Detector
from detectors.features import NumberState
from detectors.numbers import NumberNormaliser
from detectors.readers import decode_json_value
from detectors.records import Call, Rejected
from streams.control import ControlError, Tuning
from streams.replay import tune_gc

log = logging.getLogger("dialguard.worker")

OUT, IN = 1, 2  # flags of a call in a repartitioned batch: caller side, callee side
_CALL_FIELDS = ("caller", "callee", "start", "duration", "answered", "ring", "id", "trunk",
                "src_ip", "disposition")


def partition_for(number: str, partitions: int) -> int:
    """The partition of ``dialguard.calls`` (and of the state table) that owns ``number``.

    Stable across processes and Python versions (CRC-32, not ``hash()``).

    >>> partition_for("+8613800000001", 8) == partition_for("+8613800000001", 8)
    True
    >>> {partition_for(f"+86138{i:08d}", 4) for i in range(100)} == {0, 1, 2, 3}
    True
    """
    return zlib.crc32(number.encode()) % partitions


def kafka_bootstrap(broker: str) -> list[str]:
    """``host:port`` list from a Faust broker URL (``kafka://h:p`` or ``kafka://a:1;b:2``).

    >>> kafka_bootstrap("kafka://127.0.0.1:9092"), kafka_bootstrap("kafka://a:1;kafka://b:2")
    (['127.0.0.1:9092'], ['a:1', 'b:2'])
    """
    hosts = []
    for part in broker.replace(",", ";").split(";"):
        part = part.strip()
        if "://" in part:
            part = part.split("://", 1)[1]
        part = part.strip("/")
        if part:
            hosts.append(part)
    return hosts


@dataclass
class Topics:
    """Names of the topics a worker uses."""

    raw: str = "cdr.raw"
    rejected: str = "cdr.rejected"
    alerts: str = "dialguard.alerts"
    control: str = "dialguard.control"
    calls: str = "dialguard.calls"


@dataclass
class WorkerOptions:
    broker: str = "kafka://127.0.0.1:9092"
    settings: Settings | None = None
    allowlist: Allowlist | None = None
    topics: Topics = field(default_factory=Topics)
    #: partitions of the repartition topic and of the state table (fixed once created)
    partitions: int = 8
    app_id: str = "dialguard"
    data_dir: str | Path = "dialguard-data"
    #: ``kafka``: ingest with one aiokafka consumer (fast); ``faust``: a Faust agent
    #: (``stream.take_events``), whose per-message overhead is ~10x higher
    ingest: str = "kafka"
    #: ingest decodes up to this many raw messages together (Faust: or ``ingest_within`` s)
    ingest_batch: int = 2000
    #: detect takes up to this many repartitioned batches (or ``detect_within`` s) at a
    #: time and writes the states they changed to the table once
    detect_batch: int = 16
    detect_within: float = 0.01
    #: longest a fetch of ``dialguard.calls`` waits at the broker for data (Faust's own: 1.5 s)
    detect_fetch_wait_ms: int = 50
    #: ingest batches whose repartitioned output may still be in delivery (offsets of a
    #: batch are committed only once it and every earlier batch were delivered)
    ingest_in_flight: int = 4
    #: seconds between ingest offset commits
    commit_interval: float = 1.0
    #: seconds to wait for repartitioned batches to be delivered before giving up
    delivery_timeout: float = 120.0
    ingest_within: float = 0.05
    #: ingest decodes and sends on a fetch in slices of about this many bytes of CDRs,
    #: yielding to the detect agent between slices
    ingest_slice_bytes: int = 1 << 20
    #: most calls in one repartition message (keeps messages around a megabyte)
    max_batch_rows: int = 8000
    #: Faust table store; ``memory://`` (state rebuilt from the changelog on start)
    store: str = "memory://"
    #: read the control topic with a real consumer (off in broker-free tests)
    control_consumer: bool = True
    #: seconds between consumer-lag samples for the metrics (0: never)
    lag_interval: float = 5.0
    faust_conf: dict[str, Any] = field(default_factory=dict)


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


class NullMetrics:
    """Stands in for :class:`streams.metrics.DialguardMetrics` when none is given."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def _seeded(settings: Settings, partition: int) -> Settings:
    """``settings`` with ``model.seed`` advanced by ``partition`` (own model per partition)."""
    if partition == 0:
        return settings
    raw = dict(settings.raw)
    raw["model"] = {**raw["model"], "seed": int(raw["model"]["seed"]) + partition}
    return build_settings(raw)


def fetch_slices(
    fetched: Mapping[Any, list[Any]], limit_bytes: int
) -> Iterable[tuple[list[tuple[bytes | None, str, int, int]], dict[Any, int]]]:
    """Cut a consumer fetch into slices of about ``limit_bytes`` of message values.

    Yields ``(items, covered)``: the slice's ``(value, topic, partition, offset)``
    items, and per topic-partition the offset after its last message in the slice
    (what may be committed once the slice's output is delivered).

    >>> from types import SimpleNamespace as M
    >>> fetch = {"tp0": [M(value=b"x" * 60, topic="t", partition=0, offset=i) for i in range(5)]}
    >>> [(len(items), covered) for items, covered in fetch_slices(fetch, 100)]
    [(2, {'tp0': 2}), (2, {'tp0': 4}), (1, {'tp0': 5})]
    """
    items: list[tuple[bytes | None, str, int, int]] = []
    covered: dict[Any, int] = {}
    size = 0
    for tp, messages in fetched.items():
        for m in messages:
            items.append((m.value, m.topic, m.partition, m.offset))
            covered[tp] = m.offset + 1
            size += len(m.value) if m.value is not None else 0
            if size >= limit_bytes:
                yield items, covered
                items, covered, size = [], {}, 0
    if items:
        yield items, covered


class CallBatch(msgspec.Struct, array_like=True, gc=False):
    """One message of ``dialguard.calls``: one partition's calls from one ingest batch.

    Encoded as MessagePack (:data:`BATCH_ENCODER`), each call an array of its
    fields, so the detect side decodes straight into :class:`Call` objects.
    """

    #: wall time when ingest read the calls (for the detection-latency metric)
    arrived: float
    #: one byte per call: ``OUT`` (caller side), ``IN`` (callee side) or both
    flags: bytes
    calls: list[Call]


BATCH_ENCODER = msgspec.msgpack.Encoder()
BATCH_DECODER = msgspec.msgpack.Decoder(CallBatch)


def encode_batch(flagged: Iterable[tuple[int, Call]], arrived: float) -> bytes:
    """One ``dialguard.calls`` message from ``(flags, call)`` pairs.

    >>> call = Call("+8613800000001", "+8613900000002", 1.7e9, 0, False)
    >>> batch = BATCH_DECODER.decode(encode_batch([(OUT | IN, call)], 5.0))
    >>> batch.arrived, list(batch.flags), batch.calls == [call]
    (5.0, [3], True)
    """
    pairs = list(flagged)
    return BATCH_ENCODER.encode(
        CallBatch(arrived, bytes(f for f, _ in pairs), [c for _, c in pairs]))


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
        #: records and batches sent (for tests and summaries)
        self.records = self.batches = 0

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
        self.records += count
        self.batches += 1

        def delivered(fut: asyncio.Future[Any]) -> None:
            if not fut.cancelled() and fut.exception() is None:
                meta = fut.result()
                self.table.data.set_persisted_offset(meta.topic_partition, meta.offset + count - 1)

        future.add_done_callback(delivered)


class PartitionState:
    """What one assigned partition of ``dialguard.calls`` owns on this worker."""

    def __init__(self, detector: Detector, window_s: float) -> None:
        self.detector = detector
        #: ids of calls seen on the callee side only (the caller side dedups in its own partition)
        self.inbound_dedup = Deduplicator(window_s)


class Pipeline:
    """A dialguard Faust app with its topics, table and agents, and the detection state."""

    def __init__(self, options: WorkerOptions, metrics: Any = None) -> None:
        from detectors.config import load_settings

        self.options = options
        settings = options.settings if options.settings is not None else load_settings()
        self.tuning = Tuning(settings, options.allowlist)
        self.normaliser = NumberNormaliser(settings.input.region)
        self.metrics = metrics if metrics is not None else NullMetrics()
        self.partitions = options.partitions
        self.parts: dict[int, PartitionState] = {}
        self.control_ready = asyncio.Event()
        #: set once this worker has joined the detect group (its first assignment, even empty)
        self.joined = asyncio.Event()
        if not options.control_consumer:
            self.control_ready.set()
        #: counts for summaries and tests
        self.counts = {"messages": 0, "calls": 0, "rejected": 0, "alerts": 0, "duplicates": 0,
                       "batches": 0, "detected": 0, "bad_batches": 0}

        t = options.topics
        conf: dict[str, Any] = {
            "broker": options.broker,
            "store": options.store,
            "datadir": str(options.data_dir),
            "web_enabled": False,
            "topic_partitions": options.partitions,
            "topic_replication_factor": 1,
            "broker_commit_interval": 1.0,
            "producer_linger_ms": 2,
            "producer_max_batch_size": 1 << 20,
            "producer_max_request_size": 8 << 20,
            "consumer_auto_offset_reset": "earliest",
            "table_cleanup_interval": 3600.0,
            "stream_buffer_maxsize": 8192,
            "key_serializer": "raw",
            "value_serializer": "raw",
        }
        conf.update(options.faust_conf)
        self.app = app = faust.App(options.app_id, **conf)

        # ---------------------------------------------------------------- topics
        self.raw_topic = app.topic(t.raw, key_type=bytes, value_type=bytes)
        self.rejected_topic = app.topic(t.rejected, key_type=bytes, value_type=bytes)
        self.alerts_topic = app.topic(t.alerts, key_type=bytes, value_type=bytes)
        self.control_topic = app.topic(t.control, key_type=bytes, value_type=bytes,
                                       partitions=1, internal=True)
        self.calls_topic = app.topic(t.calls, key_type=bytes, value_type=bytes,
                                     partitions=options.partitions, internal=True)

        # ---------------------------------------------------------------- table
        #: E.164 number -> NumberState, partitioned like ``dialguard.calls``
        self.table = app.Table(
            "state", partitions=options.partitions, help="per-number detection state",
            schema=faust.Schema(key_type=str, key_serializer="raw", value_serializer=STATE_CODEC),
        )
        # Tables take their codecs from key/value types (json by default): set them outright.
        table: Any = self.table
        table.key_serializer = "raw"
        table.value_serializer = STATE_CODEC
        # The changelog topic was made (by app.Table) with the json serializers: recovery
        # decodes with its schema, so give it the table's codecs too.
        changelog: Any = table.changelog_topic
        changelog.schema = faust.Schema(key_type=str, key_serializer="raw",
                                        value_serializer=STATE_CODEC)
        changelog.key_serializer = "raw"
        changelog.value_serializer = STATE_CODEC

        # ---------------------------------------------------------------- agents
        async def ingest(stream: Any) -> None:
            async for events in stream.take_events(options.ingest_batch,
                                                   within=options.ingest_within):
                await self.ingest_events(events)

        #: the Faust ingest agent (``ingest="faust"``), else None
        self.ingest: Any = None
        if options.ingest == "faust":
            self.ingest = app.agent(self.raw_topic, name="ingest")(ingest)
        elif options.ingest == "kafka":
            app.task(self._ingest_loop)
        else:
            raise ValueError(f"ingest must be 'kafka' or 'faust', got {options.ingest!r}")

        @app.agent(self.calls_topic, name="detect")
        async def detect(stream: Any) -> None:
            async for events in stream.take_events(options.detect_batch,
                                                   within=options.detect_within):
                await self.detect_events(events)

        self.detect: Any = detect
        self.changelog = ChangelogWriter(app, self.table)

        if options.control_consumer:
            app.task(self._control_loop)
        if options.lag_interval > 0:
            app.timer(options.lag_interval)(self._sample_lag)
        app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]
        app.task(self._on_start)

    async def _on_start(self) -> None:
        tune_gc()
        # One batch writes up to thousands of table keys; let the producer buffer hold them
        # instead of flushing (and warning) every 100 messages.
        self.app.producer.buffer.max_messages = 50_000
        # aiokafka and Faust log every produced message at debug level; building those
        # records costs more than the send itself.
        for name in ("aiokafka", "faust.topics", "faust.transport"):
            logger = logging.getLogger(name)
            if logger.getEffectiveLevel() < logging.INFO:
                logger.setLevel(logging.INFO)

    # ------------------------------------------------------------------ ingest

    async def ingest_events(self, events: Iterable[Any]) -> None:
        """Decode a buffer of Faust events of ``cdr.raw`` (the Faust ingest agent)."""
        await self.ingest_messages(
            (e.value, e.message.topic, e.message.partition, e.message.offset) for e in events)

    async def ingest_messages(
        self, messages: Iterable[tuple[bytes | None, str, int, int]]
    ) -> list[Any]:
        """Decode raw messages ``(value, topic, partition, offset)``; reject, repartition.

        Returns the send futures (awaiting them waits for delivery).
        """
        arrived = time.time()
        normaliser = self.normaliser
        n = self.partitions
        batches: dict[int, tuple[bytearray, list[Call]]] = {}

        def new_batch() -> tuple[bytearray, list[Call]]:
            return bytearray(), []

        rejected: list[Rejected] = []
        calls = count = 0
        for value, topic, partition, offset in messages:
            count += 1
            if value is None:
                rejected.append(Rejected("malformed", "empty message value", b"",
                                         f"{topic}/{partition}@{offset}"))
                continue
            for record in decode_json_value(value, normaliser):
                if type(record) is Call:
                    calls += 1
                    out_p = partition_for(record.caller, n)
                    in_p = partition_for(record.callee, n)
                    flags, rows = batches.get(out_p) or batches.setdefault(out_p, new_batch())
                    rows.append(record)
                    if out_p == in_p:
                        flags.append(OUT | IN)
                    else:
                        flags.append(OUT)
                        flags, rows = batches.get(in_p) or batches.setdefault(in_p, new_batch())
                        rows.append(record)
                        flags.append(IN)
                else:
                    assert isinstance(record, Rejected)
                    where = f"{topic}/{partition}@{offset}{record.source}"
                    rejected.append(replace(record, source=where))
        futures = []
        step = self.options.max_batch_rows
        encode = BATCH_ENCODER.encode
        for part, (flags, rows) in batches.items():
            for i in range(0, len(rows), step):
                value = encode(CallBatch(arrived, bytes(flags[i:i + step]), rows[i:i + step]))
                futures.append(await self.calls_topic.send(value=value, partition=part, force=True))
        for rej in rejected:
            futures.append(await self.rejected_topic.send(value=orjson.dumps(rej.to_dict()),
                                                          force=True))
            self.metrics.record_rejected(rej.reason)
        self.counts["messages"] += count
        self.counts["calls"] += calls
        self.counts["rejected"] += len(rejected)
        self.metrics.record_read(calls + len(rejected), "kafka")
        return futures

    async def declare_outputs(self) -> None:
        """Create the output topics if missing (sends to a missing topic can stall)."""
        for topic in (self.rejected_topic, self.alerts_topic, self.calls_topic):
            try:
                await topic.maybe_declare()
            except Exception as exc:  # e.g. no permission: the broker may auto-create them
                log.warning("could not declare topic %s: %s", topic.get_topic_name(),
                            type(exc).__name__)

    async def _ingest_loop(self) -> None:
        """The fast ingest path: one aiokafka consumer (group ``<app id>-ingest``) on ``cdr.raw``.

        Offsets are committed only after the repartitioned batches they produced
        were delivered (at least once).
        """
        from aiokafka import AIOKafkaConsumer, TopicPartition

        options = self.options
        consumer = AIOKafkaConsumer(
            options.topics.raw, bootstrap_servers=kafka_bootstrap(options.broker),
            group_id=f"{options.app_id}-ingest", enable_auto_commit=False,
            auto_offset_reset="earliest", max_partition_fetch_bytes=8 << 20,
            fetch_max_bytes=64 << 20,
        )
        await self.declare_outputs()
        await consumer.start()
        done: dict[TopicPartition, int] = {}
        # Batches sent on but not yet known delivered, oldest first, with the offsets they
        # cover: decoding the next batch overlaps with delivering the previous ones.
        in_flight: deque[tuple[list[Any], dict[TopicPartition, int]]] = deque()
        last_commit = time.monotonic()
        try:
            await self.control_ready.wait()
            # Repartitioned calls wait in Kafka until a detect agent owns them; starting
            # after the join keeps ingest from running seconds ahead of detection.
            await self.joined.wait()
            while True:
                batch = await consumer.getmany(timeout_ms=200, max_records=options.ingest_batch)
                # A fetch can hold hundreds of thousands of CDRs: take it in slices and let
                # detect run between them, so neither stage waits for the other's whole batch.
                for piece in fetch_slices(batch, options.ingest_slice_bytes) if batch else [None]:
                    if piece is not None:
                        items, covered = piece
                        in_flight.append((await self.ingest_messages(items), covered))
                    while in_flight and (piece is None
                                         or len(in_flight) > options.ingest_in_flight
                                         or all(f.done() for f in in_flight[0][0])):
                        futures, covered = in_flight.popleft()
                        if futures:
                            try:
                                await asyncio.wait_for(asyncio.gather(*futures),
                                                       options.delivery_timeout)
                            except Exception as exc:
                                # nothing after these offsets may be committed: stop the worker
                                log.error("ingest: repartitioned batch not delivered (%s); "
                                          "stopping", type(exc).__name__)
                                await self.app.crash(exc)
                                return
                        done.update(covered)
                    if done and (time.monotonic() - last_commit >= options.commit_interval
                                 or piece is None):
                        assigned = consumer.assignment()
                        offsets = {tp: off for tp, off in done.items() if tp in assigned}
                        done.clear()
                        last_commit = time.monotonic()
                        if offsets:
                            try:
                                await consumer.commit(offsets)
                            except Exception as exc:  # a rebalance: the next owner re-reads
                                log.warning("ingest commit failed: %s", type(exc).__name__)
                    await asyncio.sleep(0)
        finally:
            await consumer.stop()

    # ------------------------------------------------------------------ detect

    def partition_state(self, partition: int) -> PartitionState:
        """The detector of an assigned partition, (re)loaded from the table on first use."""
        part = self.parts.get(partition)
        if part is None:
            states: dict[str, NumberState] = {}
            n = self.partitions
            for key, value in self.table.items():
                number = key.decode() if isinstance(key, bytes) else key
                if isinstance(value, NumberState) and partition_for(number, n) == partition:
                    states[number] = value
            settings = _seeded(self.tuning.settings, partition)
            detector = Detector(settings, self.tuning.allowlist, states, track_touched=True)
            part = PartitionState(detector, settings.input.dedup_window_s)
            self.parts[partition] = part
            log.info("partition %d: resumed %d tracked numbers", partition, len(states))
        return part

    async def detect_events(self, events: Iterable[Any]) -> None:
        """Process a buffer of repartitioned batches (events of ``dialguard.calls``).

        The states they changed are written to the table once per buffer (a number
        touched by several batches is written once) and before the buffer is acked.
        """
        await self.control_ready.wait()
        alerts: list[tuple[Alert, float]] = []
        flushed: set[int] = set()
        n_calls = 0
        newest = -math.inf
        for event in events:
            partition = event.message.partition
            try:
                found, arrived, n, latest = self.detect_batch(partition, event.value)
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
            await self.flush_state(partition)
        now = time.time()
        for alert, arrived in alerts:
            key = alert.caller.encode() if alert.caller else None
            await self.alerts_topic.send(key=key, value=alert.to_json(), force=True)
            self.metrics.alert_raised(alert, arrived, now)
            if alert.model_score is not None:
                self.metrics.model_scored(alert.model_score)
        self.counts["alerts"] += len(alerts)
        if n_calls:
            self.metrics.observe_batch(n_calls, newest, now)
        self.metrics.set_tracked(sum(p.detector.tracked_numbers for p in self.parts.values()))

    async def detect_event(self, event: Any) -> None:
        """Process one repartitioned batch (one event of ``dialguard.calls``)."""
        await self.detect_events([event])

    def detect_batch(self, partition: int, value: bytes) -> tuple[list[Alert], float, int, float]:
        """Run one batch through the partition's detector: alerts, arrival, calls, newest time."""
        part = self.partition_state(partition)
        det = part.detector
        seen = det.dedup.seen
        seen_in = part.inbound_dedup.seen
        observe_outbound = det.observe_outbound
        observe_inbound = det.observe_inbound
        maybe_expire = det.maybe_expire
        batch = BATCH_DECODER.decode(value)
        if len(batch.flags) != len(batch.calls):
            raise msgspec.ValidationError("flags and calls differ in length")
        alerts: list[Alert] = []
        duplicates = outbound = 0
        newest = -math.inf
        rows = batch.calls
        for flags, call in zip(batch.flags, rows, strict=True):
            if call.start > newest:
                newest = call.start
            if flags & OUT:
                outbound += 1
                if call.id is not None and seen(call.id, call.start):
                    duplicates += 1
                    det.stats.duplicates += 1
                    continue
                alert = observe_outbound(call)
                if alert is not None:
                    alerts.append(alert)
                if flags & IN:
                    observe_inbound(call)
            else:
                if call.id is not None and seen_in(call.id, call.start):
                    continue
                observe_inbound(call)
            maybe_expire()
        self.counts["detected"] += outbound
        if duplicates:
            self.counts["duplicates"] += duplicates
            self.metrics.duplicate(duplicates)
        return alerts, batch.arrived, len(rows), newest

    async def flush_state(self, partition: int) -> int:
        """Write the partition's changed states to the table and its changelog partition.

        The changelog records go out as whole producer batches on the app's own
        aiokafka producer (a Faust ``send_soon`` per key costs ~20 us); Faust flushes
        that producer before it commits any source offset, so a committed offset's
        effect is always in the changelog first.
        """
        part = self.parts[partition]
        states = part.detector.states
        data = self.table.data
        to_bytes = NumberState.to_bytes
        touched = part.detector.drain_touched()
        records: list[tuple[bytes, bytes | None]] = []
        for number in touched:
            state = states.get(number)
            if state is None:
                if number in data:
                    del data[number]
                    records.append((number.encode(), None))
            else:
                data[number] = state
                records.append((number.encode(), to_bytes(state)))
        if records:
            await self.changelog.send(partition, records)
        return len(records)

    def _on_assigned(self, sender: Any, assigned: set[Any], **kwargs: Any) -> None:
        self.shorten_fetch_wait()
        self.joined.set()

    def shorten_fetch_wait(self) -> bool:
        """Give Faust's consumer the short fetch wait of ``options.detect_fetch_wait_ms``.

        faust-streaming fixes its consumer's fetch wait at 1.5 s, and aiokafka sends
        one fetch at a time per broker: while a fetch for partitions with no new data
        is held, partitions whose data arrived meanwhile wait.  Measured here, detect
        stalled 0.5-1 s at a time and ran at half speed.  False (and a warning) where
        this Faust or aiokafka version has no such setting to change.
        """
        try:
            fetcher = self.app.consumer._thread._ensure_consumer()._fetcher  # type: ignore
        except Exception:
            fetcher = None
        if fetcher is None or not hasattr(fetcher, "_fetch_max_wait_ms"):
            log.warning("could not shorten the consumer's fetch wait: detection may stall")
            return False
        if fetcher._fetch_max_wait_ms != self.options.detect_fetch_wait_ms:
            fetcher._fetch_max_wait_ms = self.options.detect_fetch_wait_ms
            log.info("consumer fetch wait set to %d ms", self.options.detect_fetch_wait_ms)
        return True

    def _on_revoked(self, sender: Any, revoked: set[Any], **kwargs: Any) -> None:
        calls = self.options.topics.calls
        for tp in revoked:
            if tp.topic == calls and self.parts.pop(tp.partition, None) is not None:
                log.info("partition %d revoked", tp.partition)

    # ------------------------------------------------------------------ control

    def apply_control(self, data: bytes) -> bool:
        """Apply one control message to every detector of this worker; False if refused."""
        try:
            description = self.tuning.apply(data)
            for partition, part in self.parts.items():
                part.detector.update_settings(_seeded(self.tuning.settings, partition))
                part.detector.set_allowlist(self.tuning.allowlist)
        except ControlError as exc:
            log.warning("control message refused: %s", exc)
            self.metrics.config_change(False)
            return False
        self.metrics.config_change(True)
        self.metrics.set_profiles(self.tuning.settings.rules)
        log.info("control: %s", description)
        return True

    async def _control_loop(self) -> None:
        """Read every partition of the control topic from the start, for the life of the app."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        topic = self.options.topics.control
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka_bootstrap(self.options.broker), group_id=None,
            enable_auto_commit=False, auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            with contextlib.suppress(Exception):
                await self.control_topic.maybe_declare()
            partitions: set[int] | None = None
            while not partitions:
                partitions = consumer.partitions_for_topic(topic)
                if not partitions:
                    await consumer._client.force_metadata_update()
                    partitions = consumer.partitions_for_topic(topic)
                    if not partitions:
                        await asyncio.sleep(0.5)
            tps = [TopicPartition(topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            positions = {tp: 0 for tp in tps}
            applied = 0
            while True:
                if not self.control_ready.is_set() and all(
                    positions[tp] >= ends[tp] for tp in tps
                ):
                    log.info("control: %d earlier message(s) replayed", applied)
                    self.control_ready.set()
                batch = await consumer.getmany(timeout_ms=200)
                for tp, messages in batch.items():
                    for msg in messages:
                        positions[tp] = msg.offset + 1
                        if msg.value is not None:
                            self.apply_control(msg.value)
                            applied += 1
                for tp in tps:
                    with contextlib.suppress(Exception):
                        positions[tp] = max(positions[tp], await consumer.position(tp))
        finally:
            await consumer.stop()

    # ------------------------------------------------------------------ metrics

    async def _sample_lag(self) -> None:
        consumer = getattr(self.app, "_consumer", None)
        if consumer is None:
            return
        try:
            for tp in consumer.assignment():
                if tp.topic not in (self.options.topics.raw, self.options.topics.calls):
                    continue
                position = await consumer.position(tp)
                highwater = consumer.highwater(tp)
                if position is not None and highwater is not None:
                    self.metrics.set_consumer_lag(tp.topic, tp.partition, highwater - position)
        except Exception as exc:  # metrics must never stop the worker
            log.debug("lag sample failed: %s", exc)


def alert_rows(alerts: Iterable[Alert | Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """``(caller, profile, detected_at)`` of alerts, sorted: what replay and workers share."""
    out = []
    for a in alerts:
        d = a.to_dict() if isinstance(a, Alert) else a
        out.append((d.get("caller"), d.get("profile"), d.get("detected_at")))
    return sorted(out, key=lambda r: tuple("" if v is None else str(v) for v in r))


def create_pipeline(options: WorkerOptions, metrics: Any = None) -> Pipeline:
    """Build the Faust app, topics, table and agents of one dialguard worker."""
    return Pipeline(options, metrics)
