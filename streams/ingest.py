"""The ingest stage: raw CDR messages in, calls repartitioned by number, rejects out.

Ingest reads ``cdr.raw`` (one CDR, or a JSON array of CDRs, per message:
CONTRACT 1a; or a line or block of lines of the CSV format ``input.format`` names),
decodes with that format's reader (:mod:`formats.registry`), sends
rejections to ``cdr.rejected`` and groups the calls by the partition of
``dialguard.calls`` that owns the calling number (``OUT`` side) and the one that
owns the called number (``IN`` side): one :class:`CallBatch` message per
partition, calls in arrival order.  A withheld caller has no outbound side: its
call goes to the callee's partition only (else every withheld call would land
on the one partition of the empty number).  A number always maps to the same partition
(:func:`partition_for`, a stable CRC-32).

With group detection on, every call is also sent once per grouping key
(:func:`group_keys`) to the partition of ``dialguard.groups`` that owns the key (the
same CRC-32 of the key), one :class:`GroupBatch` per partition with the key of each
call, for the group (ring) stage (:mod:`streams.grouping`).

:class:`Ingest` is the stage; it sends through two injected coroutines, so the
same code runs

* inside a Faust worker (sends on the app's topics), as an aiokafka consumer loop
  (:meth:`Ingest.run`) or fed by a Faust agent, and
* in processes of its own (:func:`ingest_process_main`, ``dialguard worker
  --ingest-processes N``) with a plain aiokafka producer, reporting its counts
  to the worker, which serves them as metrics.

Offsets of ``cdr.raw`` are committed only after the batches they produced were
delivered (at least once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import time
import zlib
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from typing import Any, Protocol

import msgspec
import orjson

from detectors.config import RingSettings
from detectors.numbers import NumberNormaliser
from detectors.records import WITHHELD, Call, Rejected
from detectors.rings.keys import is_block, route
from formats.registry import make_reader
from streams.alignment import EventTimeAligner, in_event_time_order
from streams.metrics import sample_lag
from streams.options import WorkerOptions, kafka_bootstrap

log = logging.getLogger("dialguard.ingest")

#: bytes of an undecodable message kept in its rejection
RAW_KEPT = 4096
_INT64 = 1 << 63

OUT, IN = 1, 2  # flags of a call in a repartitioned batch: caller side, callee side

#: ``send(value, partition)``: queue one message, return its delivery future
Send = Callable[[bytes, int | None], Awaitable["asyncio.Future[Any]"]]
Item = tuple[bytes | None, str, int, int]  # a raw message: value, topic, partition, offset


def partition_for(number: str, partitions: int) -> int:
    """The partition of ``dialguard.calls`` (and of the state table) that owns ``number``.

    Stable across processes and Python versions (CRC-32, not ``hash()``).

    >>> partition_for("+8613800000001", 8) == partition_for("+8613800000001", 8)
    True
    >>> {partition_for(f"+86138{i:08d}", 4) for i in range(100)} == {0, 1, 2, 3}
    True
    """
    return zlib.crc32(number.encode()) % partitions


def counted_copy(flags: int, call: Call) -> bool:
    """Whether this copy of a repartitioned call is the one its record is counted by.

    A call is counted on its caller side; a withheld caller has none, so its only
    copy, on the callee side, counts (detection and ``dialguard reconcile`` agree).

    >>> call = Call("+8613800000001", "+8613900000002", 1.7e9, 0, False)
    >>> counted_copy(OUT, call), counted_copy(IN, call)
    (True, False)
    >>> counted_copy(IN, Call(WITHHELD, "+8613900000002", 1.7e9, 0, False))
    True
    """
    return flags & OUT != 0 or call.caller == WITHHELD


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


class GroupBatch(msgspec.Struct, array_like=True, gc=False):
    """One message of ``dialguard.groups``: one partition's calls, each with the grouping key
    (:func:`detectors.rings.keys.route`) it was sent under; a call routed by two keys of one
    partition is in it twice.  Encoded like :class:`CallBatch`."""

    arrived: float
    #: the grouping key of each call (parallel to ``calls``)
    keys: list[str]
    calls: list[Call]


BATCH_ENCODER = msgspec.msgpack.Encoder()
BATCH_DECODER = msgspec.msgpack.Decoder(CallBatch)
GROUP_DECODER = msgspec.msgpack.Decoder(GroupBatch)


def group_keys(call: Call, callee_blocks: bool, population_shards: int = 0) -> tuple[str, ...]:
    """The grouping keys ``call`` is sent under: :func:`~detectors.rings.keys.route`, and for a
    withheld caller its ingress only (a withheld call is evidence for its ingress, never for a
    callee block: it cannot be a member).

    >>> call = Call("+8617000000001", "+8613812345678", 1.7e9, 0, False, trunk="gw-x")
    >>> hidden = msgspec.structs.replace(call, caller=WITHHELD)
    >>> group_keys(call, True), group_keys(hidden, True)
    (('in:gw-x', 'blk:+861381234'), ('in:gw-x',))
    """
    keys = route(call, callee_blocks, population_shards)
    if call.caller == WITHHELD and keys and is_block(keys[-1]):
        return keys[:-1]
    return keys


def ordered_by_start(keys: list[str], rows: list[Call]) -> tuple[list[str], list[Call]]:
    """``keys`` and ``rows`` (parallel) sorted by call start, stably; unchanged if in order."""
    if all(rows[i].start <= rows[i + 1].start for i in range(len(rows) - 1)):
        return keys, rows
    order = sorted(range(len(rows)), key=lambda i: rows[i].start)
    return [keys[i] for i in order], [rows[i] for i in order]


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


def fetch_slices(
    fetched: Mapping[Any, list[Any]], limit_bytes: int
) -> Iterator[tuple[list[Item], dict[Any, int]]]:
    """Cut a consumer fetch into slices of about ``limit_bytes`` of message values.

    Yields ``(items, covered)``: the slice's ``(value, topic, partition, offset)``
    items, and per topic-partition the offset after its last message in the slice
    (what may be committed once the slice's output is delivered).

    >>> from types import SimpleNamespace as M
    >>> fetch = {"tp0": [M(value=b"x" * 60, topic="t", partition=0, offset=i) for i in range(5)]}
    >>> [(len(items), covered) for items, covered in fetch_slices(fetch, 100)]
    [(2, {'tp0': 2}), (2, {'tp0': 4}), (1, {'tp0': 5})]
    """
    items: list[Item] = []
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


class IngestMetrics(Protocol):
    """What the ingest stage reports (:class:`~streams.metrics.DialguardMetrics` in a worker,
    :class:`ForwardedMetrics` in an ingest process of its own)."""

    def record_read(self, n: int, source: str) -> None: ...
    def record_withheld(self, n: int) -> None: ...
    def record_rejected(self, reason: str, n: int = 1) -> None: ...
    def set_consumer_lag(self, topic: str, partition: int, lag: float) -> None: ...


class IngestNotDelivered(RuntimeError):
    """Repartitioned calls could not be delivered: nothing after them may be committed."""


class Ingest:
    """Decode raw CDR messages, reject with reasons, repartition calls by number.

    ``send_calls(value, partition)`` and ``send_rejected(value, None)`` queue one
    message each and return its delivery future; ``metrics`` is an
    :class:`IngestMetrics`.  ``counts`` (``messages``, ``calls``,
    ``rejected``) is updated in place.
    """

    def __init__(self, options: WorkerOptions, normaliser: Callable[[str], str],
                 metrics: IngestMetrics,
                 send_calls: Send, send_rejected: Send,
                 counts: dict[str, int] | None = None,
                 send_groups: Send | None = None) -> None:
        self.options = options
        self.normaliser = normaliser
        self.metrics = metrics
        self.send_calls = send_calls
        self.send_rejected = send_rejected
        #: sends one :class:`GroupBatch` to ``dialguard.groups``; None: no group stage
        self.send_groups = send_groups if options.group_detection else None
        self.counts = counts if counts is not None else {}
        settings = options.settings.input if options.settings is not None else None
        #: ``decode(value)``: one message value to calls and rejections
        self.decode = make_reader(settings.format if settings else "json", normaliser,
                                  settings).decode
        for key in ("messages", "calls", "rejected"):
            self.counts.setdefault(key, 0)
        #: ``[rings].callee_blocks``: calls are also grouped by called-number block
        rings = options.settings.rings if options.settings is not None else RingSettings()
        self.callee_blocks = rings.callee_blocks
        #: ``[rings].population_shards``: calls without ingress grouped by caller share
        self.population_shards = rings.population_shards
        #: newest event time per raw partition; which to hold back (``align_slack``)
        self.aligner: EventTimeAligner[tuple[str, int]] = EventTimeAligner(options.align_slack)

    async def ingest_messages(self, messages: Iterable[Item]) -> list[asyncio.Future[Any]]:
        """Decode raw messages ``(value, topic, partition, offset)``; reject, repartition.

        Returns the send futures (awaiting them waits for delivery).
        """
        arrived = time.time()
        decode = self.decode
        n = self.options.partitions
        batches: dict[int, tuple[bytearray, list[Call]]] = {}

        def new_batch() -> tuple[bytearray, list[Call]]:
            return bytearray(), []

        grouping = self.send_groups is not None
        callee_blocks, shards = self.callee_blocks, self.population_shards
        groups: dict[int, tuple[list[str], list[Call]]] = {}
        rejected: list[Rejected] = []
        calls = count = withheld = 0
        source: tuple[str, int] | None = None
        newest = -math.inf  # newest event time read from ``source``
        saw = self.aligner.saw
        for value, topic, partition, offset in messages:
            count += 1
            if source != (topic, partition):
                if source is not None and newest > -math.inf:
                    saw(source, newest)
                source, newest = (topic, partition), -math.inf
            if value is None:
                rejected.append(Rejected("malformed", "empty message value", b"",
                                         f"{topic}/{partition}@{offset}"))
                continue
            try:
                records = decode(value)
            except Exception as exc:  # a decoder error rejects this message, never the stage
                rejected.append(Rejected("malformed", f"undecodable ({type(exc).__name__})",
                                         value[:RAW_KEPT], f"{topic}/{partition}@{offset}"))
                continue
            for record in records:
                if type(record) is Call and not -_INT64 <= record.duration < _INT64:
                    # the repartition encoding (MessagePack) carries 64-bit integers only
                    record = Rejected("bad_duration", "duration out of range", value[:RAW_KEPT])
                if type(record) is Call:
                    calls += 1
                    if record.start > newest:
                        newest = record.start
                    if grouping:
                        for key in group_keys(record, callee_blocks, shards):
                            keys, rows = groups.setdefault(partition_for(key, n), ([], []))
                            keys.append(key)
                            rows.append(record)
                    in_p = partition_for(record.callee, n)
                    if record.caller == WITHHELD:
                        withheld += 1
                        flags, rows = batches.get(in_p) or batches.setdefault(in_p, new_batch())
                        rows.append(record)
                        flags.append(IN)
                        continue
                    out_p = partition_for(record.caller, n)
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
        if source is not None and newest > -math.inf:
            saw(source, newest)
        futures = []
        step = self.options.max_batch_rows
        encode = BATCH_ENCODER.encode
        for part, (unordered_flags, unordered_rows) in batches.items():
            ordered_flags, rows = in_event_time_order(unordered_flags, unordered_rows)
            for i in range(0, len(rows), step):
                value = encode(CallBatch(arrived, ordered_flags[i:i + step], rows[i:i + step]))
                futures.append(await self.send_calls(value, part))
        if groups:
            futures.extend(await self._send_groups(groups, arrived))
        for rej in rejected:
            futures.append(await self.send_rejected(orjson.dumps(rej.to_dict()), None))
            self.metrics.record_rejected(rej.reason)
        self.counts["messages"] += count
        self.counts["calls"] += calls
        self.counts["rejected"] += len(rejected)
        self.metrics.record_read(calls + len(rejected), "kafka")
        if withheld:
            self.metrics.record_withheld(withheld)
        return futures

    async def _send_groups(self, groups: dict[int, tuple[list[str], list[Call]]],
                           arrived: float) -> list[asyncio.Future[Any]]:
        """One :class:`GroupBatch` (or more, of ``max_batch_rows``) per partition of
        ``dialguard.groups``, calls in event-time order."""
        assert self.send_groups is not None
        futures = []
        step = self.options.max_batch_rows
        encode = BATCH_ENCODER.encode
        for part, (unordered_keys, unordered_rows) in groups.items():
            keys, rows = ordered_by_start(unordered_keys, unordered_rows)
            for i in range(0, len(rows), step):
                value = encode(GroupBatch(arrived, keys[i:i + step], rows[i:i + step]))
                futures.append(await self.send_groups(value, part))
        return futures

    async def run(self, ready: Callable[[], Awaitable[Any]] | None = None) -> None:
        """Consume ``cdr.raw`` with one aiokafka consumer (group ``<app id>-ingest``).

        Waits for ``ready()`` before the first fetch.  Raises
        :class:`IngestNotDelivered` when a batch is not delivered within
        ``options.delivery_timeout`` (its offsets, and all later ones, stay
        uncommitted).
        """
        from aiokafka import AIOKafkaConsumer, TopicPartition

        options = self.options
        consumer = AIOKafkaConsumer(
            options.topics.raw, bootstrap_servers=kafka_bootstrap(options.broker),
            group_id=f"{options.app_id}-ingest", enable_auto_commit=False,
            auto_offset_reset="earliest", max_partition_fetch_bytes=8 << 20,
            fetch_max_bytes=64 << 20, session_timeout_ms=int(options.session_timeout * 1000),
            heartbeat_interval_ms=int(options.session_timeout * 250),
        )
        await consumer.start()
        done: dict[TopicPartition, int] = {}
        read_to: dict[TopicPartition, int] = {}  # offset after the last message read
        holding = options.align_slack > 0  # until every partition was read from once
        # Batches sent on but not yet known delivered, oldest first, with the offsets they
        # cover: decoding the next batch overlaps with delivering the previous ones.
        in_flight: deque[tuple[list[asyncio.Future[Any]], dict[TopicPartition, int]]] = deque()
        last_commit = time.monotonic()
        last_lag = -math.inf
        try:
            if ready is not None:
                await ready()
            while True:
                # While partitions are held back (catching up), read in small steps: one
                # step's span of event time adds to the skew the slack allows.
                step = options.ingest_batch if not (self.aligner.paused or holding) else max(
                    1, options.ingest_batch // 10)
                batch = await consumer.getmany(timeout_ms=200, max_records=step)
                if options.lag_interval > 0 and time.monotonic() - last_lag >= options.lag_interval:
                    last_lag = time.monotonic()
                    await sample_lag(consumer, (options.topics.raw,), self.metrics)
                # A fetch can hold hundreds of thousands of CDRs: take it in slices and let
                # other tasks (detect) run between them.
                for piece in fetch_slices(batch, options.ingest_slice_bytes) if batch else [None]:
                    if piece is not None:
                        items, covered = piece
                        read_to.update(covered)
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
                                raise IngestNotDelivered(
                                    f"repartitioned batch not delivered ({type(exc).__name__})"
                                ) from exc
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
                if options.align_slack > 0:
                    holding = await self._align(consumer, read_to)
        finally:
            await consumer.stop()

    async def _align(self, consumer: Any, read_to: dict[Any, int]) -> bool:
        """Pause the raw partitions that run too far ahead (event time), resume the others.

        True while partitions are held back or some with a backlog are still unread.
        """
        from aiokafka import TopicPartition

        assigned = consumer.assignment()
        for key in [k for k in self.aligner.newest if TopicPartition(*k) not in assigned]:
            self.aligner.forget(key)
        backlog: dict[tuple[str, int], int] = {}
        unread = []
        for tp in assigned:
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            key = (tp.topic, tp.partition)
            if tp in read_to:
                backlog[key] = highwater - read_to[tp]
            else:
                with contextlib.suppress(Exception):  # position() waits while an offset resets
                    backlog[key] = highwater - await asyncio.wait_for(consumer.position(tp), 1.0)
                    if backlog[key] > 0:
                        unread.append(key)
        to_pause, to_resume = self.aligner.decide(backlog, unread)
        if to_pause:
            consumer.pause(*(TopicPartition(*k) for k in to_pause))
            log.info("ingest: %d partition(s) ahead by more than %.0f s of event time, held "
                     "back", len(to_pause), self.aligner.slack_s)
        if to_resume:
            consumer.resume(*(TopicPartition(*k) for k in to_resume))
        return bool(self.aligner.paused or unread)


# ---------------------------------------------------------------------- own processes


class ForwardedMetrics:
    """Collects an ingest process's metric increments to report to its worker."""

    def __init__(self) -> None:
        self.read = 0
        self.withheld = 0
        self.rejected: Counter[str] = Counter()
        self.lag: dict[tuple[str, int], float] = {}

    def record_read(self, n: int, source: str) -> None:
        self.read += n

    def record_rejected(self, reason: str, n: int = 1) -> None:
        self.rejected[reason] += n

    def record_withheld(self, n: int) -> None:
        self.withheld += n

    def set_consumer_lag(self, topic: str, partition: int, lag: float) -> None:
        self.lag[(topic, partition)] = lag

    def take(self) -> dict[str, Any]:
        """The increments (and newest lag samples) since the last call, and reset."""
        report: dict[str, Any] = {"read": self.read, "rejected": dict(self.rejected),
                  "lag": [[t, p, lag] for (t, p), lag in self.lag.items()]}
        if self.withheld:  # sent only when there were some: the report is increments
            report["withheld"] = self.withheld
        self.read = 0
        self.withheld = 0
        self.rejected.clear()
        self.lag.clear()
        return report


def apply_report(report: Mapping[str, Any], metrics: IngestMetrics,
                 counts: dict[str, int]) -> None:
    """Add an ingest process's report (:func:`ingest_process_main`) to the worker's figures."""
    if report.get("read"):
        metrics.record_read(int(report["read"]), "kafka")
    if report.get("withheld"):
        metrics.record_withheld(int(report["withheld"]))
    for reason, n in report.get("rejected", {}).items():
        metrics.record_rejected(reason, int(n))
    for topic, partition, lag in report.get("lag", []):
        metrics.set_consumer_lag(topic, partition, lag)
    for key, n in report.get("counts", {}).items():
        counts[key] = counts.get(key, 0) + int(n)


def ingest_process_main(options: WorkerOptions, region: str, conn: Any,
                        report_every: float = 0.5) -> None:
    """Run :class:`Ingest` in this process until SIGTERM (``multiprocessing`` target).

    Talks to its worker over ``conn``: waits for ``"start"`` before the first fetch,
    then sends ``{"read", "rejected", "counts"}`` increments every ``report_every``
    seconds and a last one on the way out; ``{"error": ...}`` if it must stop.
    """
    logging.basicConfig(level=logging.WARNING,
                        format="[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s")
    from streams.replay import tune_gc

    tune_gc()
    try:
        asyncio.run(_ingest_process(options, region, conn, report_every))
    except IngestNotDelivered as exc:
        log.error("ingest process: %s; stopping", exc)
        with contextlib.suppress(Exception):
            conn.send({"error": str(exc)})
        raise SystemExit(1) from None


async def _ingest_process(options: WorkerOptions, region: str, conn: Any,
                          report_every: float) -> None:
    from aiokafka import AIOKafkaProducer

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    # The worker stops this process (SIGTERM); a Ctrl-C meant for the worker's terminal
    # must not end it first, or the worker would take it for a crash.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap(options.broker), acks="all", linger_ms=2,
        max_batch_size=1 << 20, max_request_size=8 << 20,
    )
    await producer.start()
    metrics = ForwardedMetrics()
    counts: dict[str, int] = {}
    topics = options.topics

    async def send_calls(value: bytes, partition: int | None) -> asyncio.Future[Any]:
        return await producer.send(topics.calls, value, partition=partition)

    async def send_rejected(value: bytes, partition: int | None) -> asyncio.Future[Any]:
        return await producer.send(topics.rejected, value, partition=partition)

    async def send_groups(value: bytes, partition: int | None) -> asyncio.Future[Any]:
        return await producer.send(topics.groups, value, partition=partition)

    ingest = Ingest(options, NumberNormaliser(region), metrics, send_calls, send_rejected, counts,
                    send_groups)

    def report() -> None:
        taken = dict(counts)
        for key in counts:
            counts[key] = 0
        conn.send({**metrics.take(), "counts": taken})

    async def reporter() -> None:
        while True:
            await asyncio.sleep(report_every)
            report()

    async def started() -> None:
        while not conn.poll():  # the worker says "start" once it has joined its group
            await asyncio.sleep(0.05)
        conn.recv()

    run = asyncio.ensure_future(ingest.run(started))
    reporting = asyncio.ensure_future(reporter())  # fails when the worker is gone
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([run, reporting, stopping], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (run, reporting, stopping):
            task.cancel()
        await asyncio.gather(run, reporting, stopping, return_exceptions=True)
        await producer.stop()  # delivers what was queued
        with contextlib.suppress(Exception):
            report()
    if not run.cancelled() and run.exception() is not None:
        raise run.exception()  # type: ignore[misc]
