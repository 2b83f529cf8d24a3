"""The Faust stream worker: the topology, its stages wired as agents and tasks.

Data flow and topics: :mod:`streams.topology`.  The jobs live apart:

* **ingest** (:mod:`streams.ingest`, run by :mod:`streams.supervision`) decodes
  ``cdr.raw``, sends rejections to ``cdr.rejected`` and one MessagePack batch per
  partition of ``dialguard.calls``, each call flagged caller side (``OUT``),
  callee side (``IN``) or both.  By default it is one aiokafka consumer in group
  ``<app id>-ingest``: measured here, a Faust agent costs ~100-450 us per raw
  message before any work, which caps one-CDR messages near 8k/s;
  ``ingest="faust"`` keeps the Faust agent (``stream.take_events``) for tests and
  comparison.  With ``ingest_processes=N`` the same consumer loop runs in N
  processes of its own, beside detection instead of taking turns with it.
* **detect** (a Faust agent, :mod:`streams.detection`) reads ``dialguard.calls``
  with ``stream.take_events``; one detector per partition, states in the table
  of :mod:`streams.state`, its learned references in the references table, alerts
  to an :class:`~streams.sinks.AlertSink`.
* **groups** (a Faust agent, :mod:`streams.grouping`; with group detection on) reads
  ``dialguard.groups``, where ingest sent every call once per grouping key to the
  key's partition; one :class:`~detectors.rings.detector.GroupDetector` per partition,
  key states in the groups table, ring alerts to ``dialguard.alerts``, and ring
  memberships (:mod:`streams.memberships`: who joined a ring, whose ring ended) back to
  ``dialguard.calls``, each to the partition owning the member, where the detect stage
  keeps them in the members' states and tags their number alerts with the ``ring_id``.
* **control** (:mod:`streams.control`): every worker reads the whole control
  topic with its own group-less consumer, from the beginning, before it
  processes calls.

::

    cdr.raw ─ingest─┬─▶ dialguard.calls ──detect──▶ dialguard.alerts ◀─┐
                    │   (by number)  ▲       ├─▶ state table           │ ring alerts
                    │                │       └─▶ references table      │
                    │                └── ring memberships (by member) ─┤
                    ├─▶ dialguard.groups ─groups───────────────────────┘
                    │        (by grouping key)   └─▶ groups table
                    └─▶ cdr.rejected

Adding a stage (as the groups stage was added): declare its input topic and table in
:func:`~streams.topology.declare_topology` (and in ``Topology.internal_topics``), have
ingest (or the detect stage) send to it keyed by the stage's key, and attach its
processing with :meth:`Pipeline.add_stage`; its state goes in a table of its own
(:func:`~streams.state.declare_state_table` with a codec for its values).

Sends to ``dialguard.calls`` (calls and memberships), ``dialguard.groups`` and
``dialguard.alerts`` are forced (sent at once, not held until the source offset commits),
which keeps detection latency in milliseconds; delivery is at least once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from detectors.alerts import Alert
from streams.control import ControlError, ControlReader, Tuning
from streams.detection import PartitionDetectors
from streams.grouping import PartitionGroups
from streams.ingest import Ingest
from streams.metrics import NullMetrics, PipelineMetrics, sample_lag
from streams.options import WorkerOptions, kafka_bootstrap
from streams.replay import tune_gc
from streams.sensors import CommitWatch
from streams.sinks import TopicAlertSink
from streams.state import ChangelogWriter, ReferencesChangelog
from streams.supervision import IngestSupervisor
from streams.topology import declare_topology, prepare_topics
from streams.watchdog import PartitionWatchdog

log = logging.getLogger("dialguard.worker")


class Pipeline:
    """One dialguard worker: the Faust topology with the ingest, detect and control stages."""

    def __init__(self, options: WorkerOptions, metrics: PipelineMetrics | None = None) -> None:
        from detectors.config import load_settings
        from detectors.numbers import NumberNormaliser

        if options.ingest not in ("kafka", "faust"):
            raise ValueError(f"ingest must be 'kafka' or 'faust', got {options.ingest!r}")
        if options.ingest_processes < 0 or (options.ingest_processes
                                            and options.ingest != "kafka"):
            raise ValueError("ingest_processes must be 0, or more with ingest='kafka'")
        self.options = options
        settings = options.settings if options.settings is not None else load_settings()
        self.tuning = Tuning(settings, options.allowlist)
        self.metrics: PipelineMetrics = metrics if metrics is not None else NullMetrics()
        #: counts for summaries and tests
        self.counts: dict[str, int] = {"messages": 0, "calls": 0, "rejected": 0}
        self.control_ready = asyncio.Event()
        if not options.control_consumer:
            self.control_ready.set()
        #: set once this worker has joined the detect group (its first assignment, even empty)
        self.joined = asyncio.Event()
        #: partitions of the calls topic this worker detects on (since its last assignment)
        self.detect_owned = 0
        self._messages_seen = 0
        self._progress_shown: tuple[int, ...] = ()
        self._commit_warned: float | None = None
        #: stage buffers being processed now (the watchdog acts on no partition meanwhile)
        self._buffers_in_flight = 0

        self.topology = topo = declare_topology(options)
        self.app = app = topo.app
        self.table = topo.state
        self.changelog = ChangelogWriter(app, self.table)
        #: writes the references table's changelog (each partition's learned references)
        self.references_changelog = ChangelogWriter(app, topo.references)
        self.detection = PartitionDetectors(
            self.tuning, options.partitions, self.table, self.changelog,
            TopicAlertSink(topo.alerts), self.metrics, self.counts, self._send_rejected,
            ReferencesChangelog(self.references_changelog, options.references_every))

        #: the group stage (one GroupDetector per partition of ``dialguard.groups``), or None
        self.groups: PartitionGroups | None = None
        #: writes the group table's changelog (None without the group stage)
        self.group_changelog: ChangelogWriter | None = None
        if topo.groups is not None:
            self.group_changelog = ChangelogWriter(app, topo.group_state)
            self.groups = PartitionGroups(self.tuning, options.partitions, topo.group_state,
                                          self.group_changelog, TopicAlertSink(topo.alerts),
                                          self.metrics, self.counts, self._send_calls)

        # ------------------------------------------------------------ ingest
        self.ingest = Ingest(options, NumberNormaliser(settings.input.region), self.metrics,
                             self._send_calls, self._send_rejected, self.counts,
                             self._send_groups if self.groups is not None else None)
        self.supervisor = IngestSupervisor(options, self.ingest, settings.input.region,
                                           self.metrics, self.counts, self._ingest_ready,
                                           app.crash)
        #: the Faust ingest agent (``ingest="faust"``), else None
        self.ingest_agent: Any = None
        if options.ingest == "faust":
            self.ingest_agent = self.add_stage("ingest", topo.raw, self.ingest_events,
                                               options.ingest_batch, options.ingest_within)
        else:
            app.task(self._run_ingest)

        # ------------------------------------------------------------ detect
        self.detect: Any = self.add_stage("detect", topo.calls, self.detect_events,
                                          options.detect_batch, options.detect_within)
        #: the Faust agent of the group stage, else None
        self.group_agent: Any = None
        if self.groups is not None:
            self.group_agent = self.add_stage("groups", topo.groups, self.group_events,
                                              options.groups_batch, options.groups_within)

        # ------------------------------------------------------------ control, upkeep
        if options.control_consumer:
            reader = ControlReader(kafka_bootstrap(options.broker), options.topics.control,
                                   self.apply_control, self.control_ready,
                                   topo.control.maybe_declare)
            app.task(reader.run)
        if options.lag_interval > 0:
            app.timer(options.lag_interval)(self._sample_lag)
        if options.progress_interval > 0:
            app.timer(options.progress_interval)(self._log_progress)
        #: Faust's commit rounds, watched so that a commit that never ends is logged
        self.commits = CommitWatch()
        app.sensors.add(self.commits)
        app.timer(max(1.0, options.slow_buffer_s / 3))(self._watch_commits)
        #: stage partitions whose committed offset stops moving (None: ``stall_after_s`` 0)
        self.watchdog: PartitionWatchdog | None = None
        if options.stall_after_s > 0:
            stages = {options.topics.calls: "detect", options.topics.groups: "groups"}
            self.watchdog = PartitionWatchdog(
                app, stages, options.stall_after_s, self._stage_busy, app.crash,
                lambda topic: self.metrics.partition_stall(stages[topic]))
            app.timer(max(1.0, options.stall_after_s / 4))(self.watchdog.check)
        app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]
        app.task(self._on_start)

    def add_stage(self, name: str, topic: Any, process: Callable[[list[Any]], Awaitable[None]],
                  batch: int, within: float) -> Any:
        """Attach a Faust agent ``name`` that hands ``process`` buffers of ``topic``'s events.

        A buffer is acknowledged (its offsets may be committed) once ``process`` returns.
        """

        async def agent(stream: Any) -> None:
            async for events in stream.take_events(batch, within=within):
                await process(events)

        return self.app.agent(topic, name=name)(agent)

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

    def prepare(self, timeout: float = 60.0) -> dict[str, int]:
        """Create the internal topics and wait for their metadata, before the worker starts.

        Run before the Faust worker: a detect group formed before ``dialguard.calls``
        was visible stays without its partitions until a metadata refresh.
        """
        return prepare_topics(self.options, self.topology, timeout)

    # ------------------------------------------------------------------ ingest

    async def ingest_events(self, events: Iterable[Any]) -> None:
        """Decode a buffer of Faust events of ``cdr.raw`` (the Faust ingest agent)."""
        await self.ingest.ingest_messages(
            (e.value, e.message.topic, e.message.partition, e.message.offset) for e in events)

    async def _send_calls(self, value: bytes, partition: int | None) -> Any:
        return await self.topology.calls.send(value=value, partition=partition, force=True)

    async def _send_groups(self, value: bytes, partition: int | None) -> Any:
        return await self.topology.groups.send(value=value, partition=partition, force=True)

    async def _send_rejected(self, value: bytes, partition: int | None) -> Any:
        return await self.topology.rejected.send(value=value, partition=partition, force=True)

    async def _ingest_ready(self) -> None:
        await self.control_ready.wait()
        # Repartitioned calls wait in Kafka until a detect agent owns them; starting
        # after the join keeps ingest from running seconds ahead of detection.
        await self.joined.wait()

    async def _run_ingest(self) -> None:
        await self.declare_outputs()
        if self.options.ingest_processes:
            await self.supervisor.run_processes()
        else:
            await self.supervisor.run_here()

    async def declare_outputs(self) -> None:
        """Create the output topics if missing (sends to a missing topic can stall)."""
        for topic in self.topology.output_topics():
            try:
                await topic.maybe_declare()
            except Exception as exc:  # e.g. no permission: the broker may auto-create them
                log.warning("could not declare topic %s: %s", topic.get_topic_name(),
                            type(exc).__name__)

    # ------------------------------------------------------------------ detect

    @property
    def parts(self) -> dict[int, Any]:
        """The detectors of this worker's calls partitions, by partition."""
        return self.detection.detectors

    async def detect_events(self, events: Sequence[Any]) -> None:
        """Process a buffer of repartitioned batches (events of ``dialguard.calls``)."""
        await self._hold_on_failure("detect", events, self.detection.process)

    async def group_events(self, events: Sequence[Any]) -> None:
        """Process a buffer of batches grouped by key (events of ``dialguard.groups``)."""
        assert self.groups is not None
        await self._hold_on_failure("groups", events, self.groups.process)

    async def _hold_on_failure(self, stage: str, events: Sequence[Any],
                               process: Callable[[Sequence[Any]], Awaitable[None]]) -> None:
        await self.control_ready.wait()
        slow = asyncio.get_running_loop().call_later(
            self.options.slow_buffer_s, warn_slow_buffer, stage, len(events),
            self.options.slow_buffer_s, asyncio.current_task())
        self._buffers_in_flight += 1
        try:
            await process(events)
        except Exception as exc:
            # Faust acknowledges a buffer however its processing ended, and commits what
            # was acknowledged on the way down: hold these events so that no offset past
            # work not done is committed, and stop; whoever takes over re-reads them.
            for event in events:
                event.message.incref()
            log.error("%s: a buffer of %d batches failed (%s); stopping without "
                      "committing it", stage, len(events), type(exc).__name__)
            await self.app.crash(exc)
            await asyncio.get_running_loop().create_future()  # held until the stop cancels it
        finally:
            self._buffers_in_flight -= 1
            slow.cancel()

    def _stage_busy(self) -> bool:
        """A stage buffer is being processed, or an offset commit is under way (a commit
        held by a slow producer flush is ``_watch_commits``' to report, not a stall)."""
        return self._buffers_in_flight > 0 or self.commits.in_progress_for() > 0.0

    def _on_assigned(self, sender: Any, assigned: set[Any], **kwargs: Any) -> None:
        self.shorten_fetch_wait()
        if self.watchdog is not None:
            self.watchdog.assigned(assigned)
        calls = self.options.topics.calls
        owned = sorted(tp.partition for tp in assigned if tp.topic == calls)
        self.detect_owned = len(owned)
        self.metrics.set_detect_partitions(len(owned), self.options.partitions)
        if owned:
            log.info("detect: partitions %s of %s", owned, calls)
        else:
            log.warning("detect: this worker owns no partition of %s", calls)
        self.joined.set()

    def check_detect_owned(self) -> bool:
        """Warn when calls flow through this worker's ingest while it detects on no partition.

        (More workers than partitions leave some idle by design; a lone worker in this
        state is the start-up race of a topic assigned before it existed.)  True if it warned.
        """
        messages = self.counts["messages"]
        flowing = messages > self._messages_seen
        self._messages_seen = messages
        if self.joined.is_set() and self.detect_owned == 0 and flowing:
            log.warning("detect: calls are flowing (%d raw messages read) but this worker "
                        "owns no partition of %s", messages, self.options.topics.calls)
            return True
        return False

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
        if self.watchdog is not None:
            self.watchdog.revoked(revoked)
        calls = self.options.topics.calls
        self.detection.revoke(tp.partition for tp in revoked if tp.topic == calls)
        if self.groups is not None:
            groups = self.options.topics.groups
            self.groups.revoke(tp.partition for tp in revoked if tp.topic == groups)

    # ------------------------------------------------------------------ control

    def apply_control(self, data: bytes) -> bool:
        """Apply one control message to every detector of this worker; False if refused."""
        try:
            description = self.tuning.apply(data)
            self.detection.retune()
            if self.groups is not None:
                self.groups.retune()
        except ControlError as exc:
            log.warning("control message refused: %s", exc)
            self.metrics.config_change(False)
            return False
        self.metrics.config_change(True)
        self.metrics.set_profiles(self.tuning.settings.rules)
        log.info("control: %s", description)
        return True

    # ------------------------------------------------------------------ metrics

    async def _log_progress(self) -> None:
        """One line of counts so far, when they moved since the last one."""
        shown = ("messages", "calls", "rejected", "batches", "detected", "alerts",
                 "group_batches", "grouped", "ring_alerts", "redelivered",
                 "group_redelivered", "memberships")
        now = (*(self.counts.get(key, 0) for key in shown), self.commits.completed)
        if now != self._progress_shown:
            self._progress_shown = now
            log.info("progress: %s", ", ".join(
                f"{n} {key.replace('_', ' ')}"
                for key, n in zip((*shown, "offset_commits"), now, strict=True)))

    async def _watch_commits(self) -> bool:
        """Warn (once per round) when Faust's offset commit has run for ``slow_buffer_s``."""
        running = self.commits.in_progress_for()
        if running < self.options.slow_buffer_s:
            return False
        if self.commits.started_at != self._commit_warned:
            self._commit_warned = self.commits.started_at
            log.warning("an offset commit has been in progress for %.0f s (Faust flushes the "
                        "producer first: state, alerts or rejections not yet delivered); "
                        "nothing processed since is committed", running)
        return True

    async def _sample_lag(self) -> None:
        self.check_detect_owned()
        consumer = getattr(self.app, "_consumer", None)
        if consumer is not None:
            topics = self.options.topics
            watched = (topics.raw, topics.calls) if self.groups is None else (
                topics.raw, topics.calls, topics.groups)
            await sample_lag(consumer, watched, self.metrics)


def warn_slow_buffer(stage: str, batches: int, after_s: float,
                     task: asyncio.Task[Any] | None) -> None:
    """Log a stage's buffer still being processed, with where its task waits."""
    frames: list[Any] = []
    awaited: Any = task.get_coro() if task is not None and not task.done() else None
    while awaited is not None and len(frames) < 16:  # the chain of awaits, outermost first
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is None:
            break
        frames.append(frame)
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    where = " <- ".join(f"{f.f_code.co_filename.rsplit('/', 1)[-1]}:{f.f_lineno} "
                        f"{f.f_code.co_name}" for f in reversed(frames))
    log.warning("%s: a buffer of %d batches is still being processed after %g s (state "
                "writes, alerts or rejections not yet sent); waiting in %s", stage, batches,
                after_s, where or "?")


def alert_rows(alerts: Iterable[Alert | Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """``(caller, profile, detected_at)`` of alerts, sorted: what replay and workers share."""
    out = []
    for a in alerts:
        d = a.to_dict() if isinstance(a, Alert) else a
        out.append((d.get("caller"), d.get("profile"), d.get("detected_at")))
    return sorted(out, key=lambda r: tuple("" if v is None else str(v) for v in r))


def create_pipeline(options: WorkerOptions, metrics: PipelineMetrics | None = None) -> Pipeline:
    """Build the Faust app, topics, table and agents of one dialguard worker."""
    return Pipeline(options, metrics)
