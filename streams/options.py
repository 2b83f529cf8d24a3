"""Options of a stream worker: broker, topics, partitions and the knobs of each stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detectors.allowlist import Allowlist
from detectors.config import Settings


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
    #: calls repartitioned by grouping key for the group (ring) stage; by default named
    #: after ``calls`` (``dialguard.calls`` -> ``dialguard.groups``)
    groups: str = ""

    def __post_init__(self) -> None:
        if not self.groups:
            stem = self.calls[:-len(".calls")] if self.calls.endswith(".calls") else self.calls
            self.groups = f"{stem}.groups"


#: The topic names every command defaults to.
DEFAULT_TOPICS = Topics()


@dataclass
class WorkerOptions:
    broker: str = "kafka://127.0.0.1:9092"
    settings: Settings | None = None
    allowlist: Allowlist | None = None
    topics: Topics = field(default_factory=Topics)
    #: partitions of the repartition topics and of the state tables (fixed once created)
    partitions: int = 8
    #: run the group (ring) stage; None: ``[rings].enabled`` of ``settings``
    rings: bool | None = None
    app_id: str = "dialguard"
    data_dir: str | Path = "dialguard-data"
    #: ``kafka``: ingest with one aiokafka consumer (fast); ``faust``: a Faust agent
    #: (``stream.take_events``), whose per-message overhead is ~10x higher
    ingest: str = "kafka"
    #: ``kafka`` ingest in this many processes of its own (0: inside the worker process);
    #: decoding then runs beside detection instead of taking turns with it
    ingest_processes: int = 0
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
    #: the group stage takes up to this many batches of ``dialguard.groups`` (or
    #: ``groups_within`` s) at a time; its keys' states are written once per buffer, and a
    #: busy ingress key's state is large, so its buffers are longer than detect's
    groups_batch: int = 64
    groups_within: float = 0.25
    #: ingest decodes and sends on a fetch in slices of about this many bytes of CDRs,
    #: yielding to the detect agent between slices
    ingest_slice_bytes: int = 1 << 20
    #: most calls in one repartition message (keeps messages around a megabyte)
    max_batch_rows: int = 8000
    #: a partition's learned references are written to their table when they changed and
    #: at least this many seconds of event time passed since their last write (what a
    #: restart can forget of them); 0: whenever they changed
    references_every: float = 60.0
    #: Faust table store; ``memory://`` (state rebuilt from the changelog on start)
    store: str = "memory://"
    #: read the control topic with a real consumer (off in broker-free tests)
    control_consumer: bool = True
    #: seconds between consumer-lag samples for the metrics (0: never)
    lag_interval: float = 5.0
    #: seconds between progress lines in the log (counts so far, when they moved; 0: never)
    progress_interval: float = 60.0
    #: a buffer of one stage still being processed after this many seconds is logged (a
    #: stalled send shows in the log, not only as lag)
    slow_buffer_s: float = 30.0
    #: a detect or groups partition whose committed offset stays short of the log end without
    #: moving for this many seconds is resumed and sought back to it; if it stays stalled as
    #: long again the worker stops for its supervisor to restart it (0: never watched); see
    #: :mod:`streams.watchdog`
    stall_after_s: float = 60.0
    #: seconds of event time a raw partition may run ahead of the slowest one with a backlog
    #: before ingest pauses it (replay's ``--slack``); 0: never pause
    align_slack: float = 300.0
    #: seconds without a heartbeat after which Kafka gives a worker's partitions (detect
    #: and ingest groups) to the others: how long a crashed worker's share waits
    session_timeout: float = 10.0
    faust_conf: dict[str, Any] = field(default_factory=dict)

    @property
    def group_detection(self) -> bool:
        """Whether the group stage runs (``rings``, else the settings' ``[rings].enabled``)."""
        if self.rings is not None:
            return self.rings
        return self.settings.rings.enabled if self.settings is not None else True
