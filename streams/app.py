"""The Faust stream workers: topics, the state table and the agents, in one place.

Data flow (topic names are options; defaults shown)::

    cdr.raw ─ingest─▶ dialguard.calls (repartitioned by calling number) ─detect─▶ dialguard.alerts
               │                                                           │
               └──▶ cdr.rejected                       state table ◀──────┘ (changelog topic)
    dialguard.control ──(every worker reads all of it)──▶ live settings and allowlist

* **ingest** (:mod:`streams.ingest`) decodes ``cdr.raw``, sends rejections to
  ``cdr.rejected`` and one MessagePack batch per partition of ``dialguard.calls``,
  each call flagged caller side (``OUT``), callee side (``IN``) or both.  By
  default it is one aiokafka consumer in group ``<app id>-ingest`` run as a task
  of this app: measured here, a Faust agent costs ~100-450 us per raw message
  before any work, which caps one-CDR messages near 8k/s; ``ingest="faust"``
  keeps the Faust agent (``stream.take_events``) for tests and comparison.
  With ``ingest_processes=N`` the same consumer loop runs in N processes of its
  own, beside detection instead of taking turns with it on one core; they
  report their counts here, where the metrics are served.
* **detect** (a Faust agent) reads ``dialguard.calls`` with
  ``stream.take_events`` (a few batch messages at a time).  Every
  partition has its own :class:`~detectors.engine.Detector` (own model, seeded
  with ``model.seed + partition``) whose ``states`` is an in-memory dict.  For
  an ``out`` call it deduplicates by id and calls ``observe_outbound``; for an
  ``in`` call ``observe_inbound``: with one partition every call is flagged
  both, and that is exactly :meth:`Detector.observe`, the code ``dialguard
  replay`` runs.  After the buffer, the numbers whose state changed
  (``drain_touched``) are written to the Faust table and its changelog
  partition (deleted ones removed, whole producer batches in the binary form of
  :meth:`NumberState.to_bytes`) before the buffer's events are acked; Faust
  flushes the producer before it commits their offsets.
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
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

import faust
import msgspec
from faust.serializers import codecs

from detectors.alerts import Alert
from detectors.config import Settings, build_settings
from detectors.dedup import Deduplicator
from detectors.engine import Detector
from detectors.features import NumberState
from detectors.numbers import NumberNormaliser
from streams.control import ControlError, Tuning
from streams.ingest import (
    BATCH_DECODER,
    IN,
    OUT,
    Ingest,
    IngestNotDelivered,
    apply_report,
    ingest_process_main,
    partition_for,
)
from streams.metrics import sample_lag
from streams.options import WorkerOptions, kafka_bootstrap
from streams.replay import tune_gc

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

        #: the ingest stage as run in this process (its sends go through this app)
        self.ingest = Ingest(options, self.normaliser, self.metrics, self._send_calls,
                             self._send_rejected, self.counts)
        #: the Faust ingest agent (``ingest="faust"``), else None
        self.ingest_agent: Any = None
        if options.ingest not in ("kafka", "faust"):
            raise ValueError(f"ingest must be 'kafka' or 'faust', got {options.ingest!r}")
        if options.ingest_processes < 0 or (options.ingest_processes
                                            and options.ingest != "kafka"):
            raise ValueError("ingest_processes must be 0, or more with ingest='kafka'")
        if options.ingest == "faust":
            self.ingest_agent = app.agent(self.raw_topic, name="ingest")(ingest)
        elif options.ingest_processes:
            app.task(self._ingest_processes)
        else:
            app.task(self._ingest_loop)

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
        await self.ingest.ingest_messages(
            (e.value, e.message.topic, e.message.partition, e.message.offset) for e in events)

    async def _send_calls(self, value: bytes, partition: int | None) -> Any:
        return await self.calls_topic.send(value=value, partition=partition, force=True)

    async def _send_rejected(self, value: bytes, partition: int | None) -> Any:
        return await self.rejected_topic.send(value=value, partition=partition, force=True)

    async def _ingest_ready(self) -> None:
        await self.control_ready.wait()
        # Repartitioned calls wait in Kafka until a detect agent owns them; starting
        # after the join keeps ingest from running seconds ahead of detection.
        await self.joined.wait()

    async def _ingest_loop(self) -> None:
        """Ingest inside this process: :meth:`Ingest.run`; stops the worker if it must stop."""
        await self.declare_outputs()
        try:
            await self.ingest.run(self._ingest_ready)
        except IngestNotDelivered as exc:
            log.error("ingest: %s; stopping", exc)
            await self.app.crash(exc)

    async def _ingest_processes(self) -> None:
        """Ingest in ``options.ingest_processes`` processes of its own, for the life of the app.

        Their counts arrive as reports and go to this worker's metrics; a process
        that dies stops the worker (its offsets stay uncommitted, as in-process).
        """
        import multiprocessing

        await self.declare_outputs()
        context = multiprocessing.get_context("spawn")
        child_options = replace(self.options, settings=None, allowlist=None)
        region = self.tuning.settings.input.region
        children = []
        for i in range(self.options.ingest_processes):
            parent_end, child_end = context.Pipe()
            proc = context.Process(target=ingest_process_main, name=f"dialguard-ingest-{i}",
                                   args=(child_options, region, child_end), daemon=True)
            proc.start()
            children.append((proc, parent_end))
        log.info("ingest: %d process(es) started", len(children))
        try:
            await self._ingest_ready()
            for _, conn in children:
                with contextlib.suppress(OSError):  # a dead process is reported just below
                    conn.send("start")
            while True:
                await asyncio.sleep(0.25)
                for proc, conn in children:
                    self._drain_reports(conn)
                    if not proc.is_alive():
                        error = RuntimeError(f"ingest process {proc.name} exited "
                                             f"({proc.exitcode}); stopping")
                        log.error("%s", error)
                        await self.app.crash(error)
                        return
        finally:
            for proc, _ in children:
                if proc.is_alive():
                    proc.terminate()
            deadline = time.monotonic() + 15
            while any(p.is_alive() for p, _ in children) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            for proc, conn in children:
                if proc.is_alive():
                    proc.kill()
                self._drain_reports(conn)
                proc.join(1)

    def _drain_reports(self, conn: Any) -> None:
        with contextlib.suppress(EOFError, OSError):
            while conn.poll():
                report = conn.recv()
                if "error" in report:
                    log.error("ingest process: %s", report["error"])
                else:
                    apply_report(report, self.metrics, self.counts)

    async def declare_outputs(self) -> None:
        """Create the output topics if missing (sends to a missing topic can stall)."""
        for topic in (self.rejected_topic, self.alerts_topic, self.calls_topic):
            try:
                await topic.maybe_declare()
            except Exception as exc:  # e.g. no permission: the broker may auto-create them
                log.warning("could not declare topic %s: %s", topic.get_topic_name(),
                            type(exc).__name__)

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
        if consumer is not None:
            await sample_lag(consumer, (self.options.topics.raw, self.options.topics.calls),
                             self.metrics)

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
