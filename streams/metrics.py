"""Prometheus metrics of a dialguard worker or replay (what the analysts watch).

:class:`DialguardMetrics` owns one set of metrics in its own
``CollectorRegistry`` (never the process-global one unless asked), so tests
and several pipelines in one process do not collide.  The pipeline calls its
methods once per batch where it can, not once per record.

Rules that keep the metrics safe and cheap:

* **No subscriber numbers in labels.**  Label values come from closed sets
  (``source``, ``reason``, ``kind``, ``result``), from configuration (rule
  profile names, topics) or from operator infrastructure (trunk names); any
  value that looks like a telephone number (seven or more digits in a row,
  separators allowed) or that is not a short plain token is reported as
  ``"other"``.
* **Bounded cardinality.**  The first :data:`MAX_TRUNKS` distinct trunks keep
  their name, later ones are counted as ``"other"``; profiles and consumer
  partitions are capped the same way.
* **Units in names, explicit buckets.**

>>> m = DialguardMetrics()
>>> m.record_read(3, "file")
>>> m.value("dialguard_cdrs_read_total", source="file")
3.0
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.exposition import generate_latest

from detectors.records import REJECT_REASONS

if TYPE_CHECKING:
    from detectors.alerts import Alert

#: Default port of ``/metrics`` on a worker (``dialguard worker --metrics-port``).
DEFAULT_METRICS_PORT = 9464

#: Distinct trunk names kept as label values; later trunks are counted as ``"other"``.
MAX_TRUNKS = 50
#: Distinct rule-profile names kept as label values (profiles come from config).
MAX_PROFILES = 64
#: Distinct (topic, partition) pairs kept for the consumer-lag gauge.
MAX_PARTITIONS = 1024

SOURCES: tuple[str, ...] = ("file", "kafka")
KINDS: tuple[str, ...] = ("number", "ring")
CONFIG_RESULTS: tuple[str, ...] = ("applied", "rejected")
SIDES: tuple[str, ...] = ("outbound", "inbound")
#: stages whose partitions the watchdog (streams.watchdog) looks after
STAGES: tuple[str, ...] = ("detect", "groups")
#: rejection reasons: the readers' and ``detect_error`` (a call whose detection raised)
REASONS: tuple[str, ...] = (*REJECT_REASONS, "detect_error")
#: Judgements beside the rule profiles that a number alert may carry as its profile.
JUDGEMENTS: tuple[str, ...] = ("reach", "model")
#: Profiles known before any configuration is read: the shipped rule profiles (a test keeps
#: this equal to detectors/defaults.toml's) and the judgements beside them.
DEFAULT_PROFILES: tuple[str, ...] = (
    "cloud_dialer",
    "dialer_burst",
    "slow_dialer",
    "ring_once",
    "marketing_blast",
    "repeat_refused",
    "harassment",
)
OTHER = "other"
NO_TRUNK = "none"

#: Wall time from a record's arrival to the alert it raised: 1 ms .. 60 s.
DETECTION_LATENCY_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)
#: Wall clock minus event time of the newest record of a batch: 0.1 s .. 1 day.
EVENT_TIME_LAG_BUCKETS: tuple[float, ...] = (
    0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 21600.0, 43200.0,
    86400.0,
)
#: Members of a ring at each of its alerts: 2 .. 5,000 numbers.
RING_MEMBER_BUCKETS: tuple[float, ...] = (
    2, 3, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000,
)
#: Model (HalfSpaceTrees) scores are in 0..1.
MODEL_SCORE_BUCKETS: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(1, 11))

# Seven or more digits in a row, single separators allowed between them: a phone number.
_PHONE_LIKE = re.compile(r"\+?\d(?:[\s\-().]?\d){6,}")
# A plain infrastructure token: trunk / gateway / topic names.
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,63}")


def looks_like_phone_number(value: str) -> bool:
    """True when ``value`` contains something that could be a subscriber number.

    >>> looks_like_phone_number("+8613812345678"), looks_like_phone_number("138 1234 5678")
    (True, True)
    >>> looks_like_phone_number("gw-cloud"), looks_like_phone_number("trunk7")
    (False, False)
    """
    return _PHONE_LIKE.search(value) is not None


def safe_label(value: object) -> str:
    """``value`` as a label value, or ``"other"`` if it is not a short plain token
    or looks like a telephone number.

    >>> safe_label("gw-cloud"), safe_label("+8613812345678"), safe_label("a b"), safe_label(None)
    ('gw-cloud', 'other', 'other', 'other')
    """
    if not isinstance(value, str) or not _TOKEN.fullmatch(value) or looks_like_phone_number(value):
        return OTHER
    return value


class _BoundedLabels:
    """Maps raw values to label values, keeping at most ``limit`` distinct names."""

    def __init__(self, limit: int, reserved: Iterable[str] = ()) -> None:
        self.limit = limit
        self.reserved = frozenset(reserved) | {OTHER}
        self.kept: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: object) -> str:
        label = safe_label(value)
        if label in self.reserved or label in self.kept:
            return label
        with self._lock:
            if label in self.kept:
                return label
            if len(self.kept) >= self.limit:
                return OTHER
            self.kept.add(label)
            return label


class DialguardMetrics:
    """The metrics of one pipeline, registered in ``registry`` (a new one by default).

    Pass ``registry=prometheus_client.REGISTRY`` to use the process-global
    registry.  ``profiles`` are the rule-profile names to pre-create at zero
    (so that Prometheus sees the first alert as an increase); by default the
    shipped profiles and ``"model"``.

    >>> from detectors.alerts import Alert
    >>> m = DialguardMetrics()
    >>> a = Alert(kind="number", caller="+8613800000001", score=2.5, reasons=["burst"],
    ...           detected_at=1.7e9, first_seen=1.7e9, profile="cloud_dialer", trunk="gw-cloud")
    >>> m.alert_raised(a, arrival_wall_time=100.0, now_wall=100.004)
    >>> m.value("dialguard_alerts_total", kind="number", profile="cloud_dialer")
    1.0
    >>> m.value("dialguard_trunk_alerts_total", trunk="gw-cloud")
    1.0
    >>> b"8613800000001" in m.exposition()
    False
    >>> ring = Alert(kind="ring", score=4.0, reasons=["5 numbers"], detected_at=1.7e9,
    ...              first_seen=1.7e9, profile="ring", members=["+8617100000001"] * 5,
    ...              new_members=["+8617100000001"] * 5, ring_id="ring-1")
    >>> m.alert_raised(ring, arrival_wall_time=100.0, now_wall=100.0)
    >>> m.value("dialguard_rings_found_total"), m.value("dialguard_ring_members_count")
    (1.0, 1.0)
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        profiles: Iterable[str] | None = None,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self._server: Any = None
        self._thread: threading.Thread | None = None

        self.cdrs_read = Counter(
            "dialguard_cdrs_read", "Call-detail records read, by input source.",
            ["source"], registry=r,
        )
        self.cdrs_rejected = Counter(
            "dialguard_cdrs_rejected", "Input records rejected, by reason code.",
            ["reason"], registry=r,
        )
        self.alerts = Counter(
            "dialguard_alerts", "Alerts raised, by kind (number, ring) and rule profile "
            "(or 'model' for model-only alerts).",
            ["kind", "profile"], registry=r,
        )
        self.trunk_alerts = Counter(
            "dialguard_trunk_alerts", f"Alerts raised, by ingress trunk (first {MAX_TRUNKS} "
            "trunks by name, the rest as 'other'; 'none' when the records name no trunk).",
            ["trunk"], registry=r,
        )
        self.numbers_tracked = Gauge(
            "dialguard_numbers_tracked", "Calling numbers with live detection state.",
            registry=r,
        )
        self.withheld = Counter(
            "dialguard_withheld_callers", "Calls accepted whose caller withheld their number "
            "(no per-number state; judged per callee and ingress).", registry=r,
        )
        self.duplicates = Counter(
            "dialguard_duplicates", "Records dropped as duplicates (id seen within the "
            "dedup window).", registry=r,
        )
        self.detection_latency = Histogram(
            "dialguard_detection_latency_seconds", "Wall time from the arrival of the record "
            "that raised an alert to the alert.", buckets=DETECTION_LATENCY_BUCKETS, registry=r,
        )
        self.event_time_lag = Histogram(
            "dialguard_event_time_lag_seconds", "Wall clock minus event time of the newest "
            "record of each processed batch.", buckets=EVENT_TIME_LAG_BUCKETS, registry=r,
        )
        self.consumer_lag = Gauge(
            "dialguard_consumer_lag_messages", "Kafka consumer lag (messages behind the "
            "partition end), by topic and partition.", ["topic", "partition"], registry=r,
        )
        self.model_score = Histogram(
            "dialguard_model_score", "Anomaly-model scores (0..1) reported by the pipeline.",
            buckets=MODEL_SCORE_BUCKETS, registry=r,
        )
        self.alert_model_score = Histogram(
            "dialguard_alert_model_score", "Anomaly-model scores (0..1) carried by raised "
            "alerts.", buckets=MODEL_SCORE_BUCKETS, registry=r,
        )
        self.last_event_time = Gauge(
            "dialguard_last_event_time_seconds", "Event time (epoch seconds) of the newest "
            "record processed.", registry=r,
        )
        self.last_record_wall_time = Gauge(
            "dialguard_last_record_wall_time_seconds", "Wall-clock time (epoch seconds) at "
            "which the latest record was processed.", registry=r,
        )
        self.rings_found = Counter(
            "dialguard_rings_found", "Rings (groups of numbers judged to be one operation) "
            "found: counted at each ring's first alert.", registry=r,
        )
        self.ring_members = Histogram(
            "dialguard_ring_members", "Members of a ring at each of its alerts (when found "
            "and as it grows).", buckets=RING_MEMBER_BUCKETS, registry=r,
        )
        self.config_changes = Counter(
            "dialguard_config_changes", "Live configuration changes, by result (applied, "
            "rejected).", ["result"], registry=r,
        )
        self.detect_partitions = Gauge(
            "dialguard_detect_partitions", "Partitions of the internal calls topic this worker "
            "detects on (0 while it owns none: its share of the calls waits).", registry=r,
        )
        self.calls_partitions = Gauge(
            "dialguard_calls_partitions", "Partitions of the internal calls topic (configured); "
            "summed over workers, dialguard_detect_partitions should reach it.", registry=r,
        )
        self.detect_errors = Counter(
            "dialguard_detect_errors", "Calls whose detection raised an error, by side "
            "(outbound calls are rejected to cdr.rejected as detect_error).", ["side"],
            registry=r,
        )
        self.partition_stalls = Counter(
            "dialguard_partition_stalls", "Stage partitions whose committed offset stayed "
            "short of the log end for stall_after_s, then resumed and sought back to it "
            "(streams.watchdog), by stage (detect, groups).", ["stage"], registry=r,
        )
        self.late_calls = Counter(
            "dialguard_late_calls", "Calls older than the partition's event-time watermark "
            "minus the allowed lateness when they reached detection.", registry=r,
        )

        self._trunks = _BoundedLabels(MAX_TRUNKS, reserved=(NO_TRUNK,))
        self._profiles = _BoundedLabels(MAX_PROFILES, reserved=(*JUDGEMENTS, "ring"))
        self._partitions: set[tuple[str, str]] = set()
        self._newest_event = float("-inf")

        # Pre-create every series of a closed label set at zero: a counter that
        # appears already at 1 is invisible to increase()/rate().
        for source in SOURCES:
            self.cdrs_read.labels(source=source)
        for reason in (*REASONS, OTHER):
            self.cdrs_rejected.labels(reason=reason)
        for result in CONFIG_RESULTS:
            self.config_changes.labels(result=result)
        for side in SIDES:
            self.detect_errors.labels(side=side)
        for stage in STAGES:
            self.partition_stalls.labels(stage=stage)
        self.set_profiles(DEFAULT_PROFILES if profiles is None else profiles)

    # -- set-up ---------------------------------------------------------------

    def set_profiles(self, names: Iterable[str]) -> None:
        """Pre-create the alert counters of these rule profiles (and of ``reach``, ``model``
        and rings) at zero.

        Call again after a configuration change that adds a profile.
        """
        for name in (*names, *JUDGEMENTS, "ring"):
            profile = self._profiles(name)
            for kind in KINDS:
                self.alerts.labels(kind=kind, profile=profile)

    # -- what the pipeline calls ----------------------------------------------

    def record_read(self, n: int, source: str) -> None:
        """``n`` input records read from ``source`` (``"file"`` or ``"kafka"``).

        Count every record, including those then rejected or dropped as
        duplicates: ``DialguardRejectRateHigh`` divides rejected by read.
        """
        if n > 0:
            self.cdrs_read.labels(source=source if source in SOURCES else OTHER).inc(n)

    def record_withheld(self, n: int) -> None:
        """``n`` calls accepted with a withheld caller."""
        if n > 0:
            self.withheld.inc(n)

    def record_rejected(self, reason: str, n: int = 1) -> None:
        """``n`` records rejected for ``reason`` (one of :data:`REASONS`)."""
        if n > 0:
            self.cdrs_rejected.labels(reason=reason if reason in REASONS else OTHER).inc(n)

    def alert_raised(self, alert: Alert, arrival_wall_time: float, now_wall: float) -> None:
        """Count one alert; ``arrival_wall_time`` is when its record arrived (wall clock)."""
        kind = alert.kind if alert.kind in KINDS else OTHER
        profile = self._profiles(alert.profile or "model")
        self.alerts.labels(kind=kind, profile=profile).inc()
        trunk = NO_TRUNK if alert.trunk is None else self._trunks(alert.trunk)
        self.trunk_alerts.labels(trunk=trunk).inc()
        self.detection_latency.observe(max(0.0, now_wall - arrival_wall_time))
        if alert.model_score is not None:
            self.alert_model_score.observe(alert.model_score)
        if alert.kind == "ring":
            members = len(alert.members or ())
            if members and len(alert.new_members or ()) == members:
                self.rings_found.inc()  # a ring's first alert lists every member as new
            self.ring_members.observe(members)

    def observe_batch(
        self, n_records: int, newest_event_time: float | None, now_wall: float
    ) -> None:
        """A batch of ``n_records`` calls was processed at ``now_wall``.

        ``newest_event_time`` is the largest event time in the batch (``None``
        if it held no call).  Sets the last-record gauges and observes the
        event-time lag once per batch.
        """
        if n_records <= 0:
            return
        self.last_record_wall_time.set(now_wall)
        if newest_event_time is None:
            return
        self.event_time_lag.observe(max(0.0, now_wall - newest_event_time))
        if newest_event_time > self._newest_event:
            self._newest_event = newest_event_time
            self.last_event_time.set(newest_event_time)

    def set_tracked(self, n: int) -> None:
        """The number of calling numbers with live state."""
        self.numbers_tracked.set(n)

    def duplicate(self, n: int = 1) -> None:
        """``n`` duplicate records dropped."""
        if n > 0:
            self.duplicates.inc(n)

    def set_consumer_lag(self, topic: str, partition: int | str, lag: float) -> None:
        """Consumer lag of one partition (messages)."""
        key = (safe_label(topic), str(int(partition)) if str(partition).isdigit() else OTHER)
        if key not in self._partitions:
            if len(self._partitions) >= MAX_PARTITIONS:
                return
            self._partitions.add(key)
        self.consumer_lag.labels(topic=key[0], partition=key[1]).set(max(0.0, float(lag)))

    def config_change(self, ok: bool) -> None:
        """A live configuration change was applied (``ok``) or rejected."""
        self.config_changes.labels(result="applied" if ok else "rejected").inc()

    def set_detect_partitions(self, owned: int, total: int) -> None:
        """This worker detects on ``owned`` of the ``total`` calls partitions."""
        self.detect_partitions.set(owned)
        self.calls_partitions.set(total)

    def detect_error(self, side: str, n: int = 1) -> None:
        """``n`` calls whose detection raised, on their ``outbound`` or ``inbound`` side."""
        if n > 0:
            self.detect_errors.labels(side=side if side in SIDES else OTHER).inc(n)

    def partition_stall(self, stage: str) -> None:
        """A partition of ``stage`` stalled and was nudged (see :mod:`streams.watchdog`)."""
        self.partition_stalls.labels(stage=stage if stage in STAGES else OTHER).inc()

    def late(self, n: int = 1) -> None:
        """``n`` calls arrived later than the allowed lateness."""
        if n > 0:
            self.late_calls.inc(n)

    def model_scored(self, score: float) -> None:
        """The anomaly model scored a number (feeds ``dialguard_model_score``).

        :meth:`alert_raised` does not touch that histogram (it records alert
        scores in ``dialguard_alert_model_score``), so reporting a score here as
        well never counts it twice in one histogram.
        """
        self.model_score.observe(score)

    # -- exposition -------------------------------------------------------------

    def serve(self, port: int = DEFAULT_METRICS_PORT, addr: str = "0.0.0.0") -> Any:
        """Serve ``/metrics`` on ``addr:port`` from a daemon thread; returns the server.

        ``port=0`` picks a free port: read it back from ``server.server_port``.
        Stop with :meth:`close` (or ``server.shutdown()``).
        """
        started = start_http_server(port, addr, registry=self.registry)
        if isinstance(started, tuple):
            self._server, self._thread = started
        else:  # older prometheus-client returned nothing useful
            self._server = started
        return self._server

    def close(self) -> None:
        """Stop the server started by :meth:`serve`, if any."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format (what a scrape returns)."""
        return generate_latest(self.registry)

    def value(self, name: str, **labels: str) -> float | None:
        """Current value of one sample, e.g. ``value("dialguard_alerts_total", kind=...)``."""
        return self.registry.get_sample_value(name, labels)

    def metric_names(self) -> set[str]:
        """Every series name a scrape can return, e.g. ``dialguard_alerts_total``,
        ``dialguard_detection_latency_seconds_bucket``; labelled metrics count even
        before their first sample."""
        suffixes = {
            "counter": ("_total", "_created"),
            "histogram": ("_bucket", "_sum", "_count", "_created"),
            "summary": ("", "_sum", "_count", "_created"),
            "gauge": ("",),
            "info": ("_info",),
        }
        names: set[str] = set()
        for family in self.registry.collect():
            for suffix in suffixes.get(family.type, ("",)):
                names.add(family.name + suffix)
            names.update(sample.name for sample in family.samples)
        return names


class PipelineMetrics(Protocol):
    """What the stream stages report (:class:`DialguardMetrics`, or :class:`NullMetrics`)."""

    def record_read(self, n: int, source: str) -> None: ...
    def record_withheld(self, n: int) -> None: ...
    def record_rejected(self, reason: str, n: int = 1) -> None: ...
    def alert_raised(self, alert: Alert, arrival_wall_time: float, now_wall: float) -> None: ...
    def observe_batch(self, n_records: int, newest_event_time: float | None,
                      now_wall: float) -> None: ...
    def set_tracked(self, n: int) -> None: ...
    def duplicate(self, n: int = 1) -> None: ...
    def set_consumer_lag(self, topic: str, partition: int | str, lag: float) -> None: ...
    def config_change(self, ok: bool) -> None: ...
    def set_profiles(self, names: Iterable[str]) -> None: ...
    def set_detect_partitions(self, owned: int, total: int) -> None: ...
    def detect_error(self, side: str, n: int = 1) -> None: ...
    def partition_stall(self, stage: str) -> None: ...
    def late(self, n: int = 1) -> None: ...
    def model_scored(self, score: float) -> None: ...


class NullMetrics:
    """Reports nothing: a :class:`PipelineMetrics` for pipelines built without metrics.

    Every method is written out (a misspelt call is an ``AttributeError``, not a no-op).

    >>> NullMetrics().record_read(3, "kafka")
    >>> NullMetrics().record_raed(3, "kafka")
    Traceback (most recent call last):
    ...
    AttributeError: 'NullMetrics' object has no attribute 'record_raed'
    """

    def record_read(self, n: int, source: str) -> None:
        pass

    def record_withheld(self, n: int) -> None:
        pass

    def record_rejected(self, reason: str, n: int = 1) -> None:
        pass

    def alert_raised(self, alert: Alert, arrival_wall_time: float, now_wall: float) -> None:
        pass

    def observe_batch(self, n_records: int, newest_event_time: float | None,
                      now_wall: float) -> None:
        pass

    def set_tracked(self, n: int) -> None:
        pass

    def duplicate(self, n: int = 1) -> None:
        pass

    def set_consumer_lag(self, topic: str, partition: int | str, lag: float) -> None:
        pass

    def config_change(self, ok: bool) -> None:
        pass

    def set_profiles(self, names: Iterable[str]) -> None:
        pass

    def set_detect_partitions(self, owned: int, total: int) -> None:
        pass

    def detect_error(self, side: str, n: int = 1) -> None:
        pass

    def partition_stall(self, stage: str) -> None:
        pass

    def late(self, n: int = 1) -> None:
        pass

    def model_scored(self, score: float) -> None:
        pass


#: Monotonic time of the last lag-sampling failure logged (one warning a minute at most).
_lag_failure_logged = [-math.inf]


async def sample_lag(consumer: Any, topics: Iterable[str], metrics: Any) -> None:
    """Set the lag (high watermark - position) of ``consumer``'s partitions of ``topics``.

    Works on an aiokafka or a Faust consumer; a failure is logged (a warning a minute at
    most: a lag gauge that stopped moving must be explained in the log), never raised.
    """
    wanted = set(topics)
    try:
        for tp in consumer.assignment():
            if tp.topic not in wanted:
                continue
            highwater = consumer.highwater(tp)
            if highwater is None:  # nothing fetched from it yet
                continue
            # position() waits while the partition's offset is being reset: never for long
            position = await asyncio.wait_for(consumer.position(tp), 1.0)
            if position is not None:
                metrics.set_consumer_lag(tp.topic, tp.partition, highwater - position)
    except Exception as exc:  # metrics must never stop the worker
        if time.monotonic() - _lag_failure_logged[0] >= 60.0:
            _lag_failure_logged[0] = time.monotonic()
            logging.getLogger("dialguard.metrics").warning(
                "consumer lag not sampled (%s: %s); the lag gauge keeps its last value",
                type(exc).__name__, exc)
