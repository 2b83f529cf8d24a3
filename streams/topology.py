"""The worker's Faust topology: the app, its topics and its tables, declared top to bottom.

Data flow (topic names are options; defaults shown)::

    cdr.raw ─ingest─▶ dialguard.calls (repartitioned by calling number) ─detect─▶ dialguard.alerts
               │              ▲                        references table ◀──┤        ▲
               │              │                         state table ◀──────┘        │
               │              └── ring memberships (by member) ─┐                   │
               ├──▶ dialguard.groups (by grouping key) ─groups──┴───────────────────┘ (rings)
               │                                           └──▶ groups table
               └──▶ cdr.rejected
    dialguard.control ──(every worker reads all of it)──▶ live settings and allowlist

Every table is changelog-backed: the state table (per number), the references table
(one entry per partition of ``dialguard.calls``: its detector's learned references) and
the groups table.  ``dialguard.groups`` and the groups table exist only
with group detection on (``[rings].enabled``, ``dialguard worker --rings/--no-rings``);
the group stage then also sends ring memberships to ``dialguard.calls``, each to the
partition of its member (:mod:`streams.memberships`): no topic of their own, so that they
reach the partition, detector and state-table entry of their number whatever the
assignment.

The agents that read these topics are attached in :mod:`streams.app`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import faust

from streams.options import WorkerOptions, kafka_bootstrap
from streams.state import GROUP_CODEC, REFERENCES_CODEC, declare_state_table

log = logging.getLogger("dialguard.worker")


def faust_config(options: WorkerOptions) -> dict[str, Any]:
    """The Faust settings of a worker (``options.faust_conf`` overrides them)."""
    conf: dict[str, Any] = {
        "broker": options.broker,
        "store": options.store,
        "datadir": str(options.data_dir),
        "web_enabled": False,
        "topic_partitions": options.partitions,
        "topic_replication_factor": 1,
        "broker_commit_interval": 1.0,
        "broker_session_timeout": options.session_timeout,
        "broker_heartbeat_interval": options.session_timeout / 4,
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
    return conf


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)


class TopicsNotReady(RuntimeError):
    """Topics a worker needs could not be created or did not show all their partitions."""


async def ensure_topics(bootstrap: list[str], specs: list[TopicSpec],
                        timeout: float = 60.0) -> dict[str, int]:
    """Create the missing ``specs`` and wait until the metadata shows every partition with a leader.

    A consumer group whose leader assigns partitions before its topic's metadata is
    visible leaves that topic unassigned until the next metadata refresh (~5 min by
    default): Faust logs ``Ignoring missing topic`` and the calls sent meanwhile wait.
    Returns the partitions found per topic; an existing topic keeps its partition
    count (a mismatch is logged: partitions are fixed once created).
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker was first
                await admin.create_topics(
                    [NewTopic(s.name, s.partitions, 1, topic_configs=s.configs) for s in missing],
                    timeout_ms=int(timeout * 1000))
        deadline = time.monotonic() + timeout
        while True:
            found = _ready_partitions(await admin.describe_topics([s.name for s in specs]))
            if all(s.name in found for s in specs):
                break
            if time.monotonic() > deadline:
                absent = sorted(s.name for s in specs if s.name not in found)
                raise TopicsNotReady(f"topics not ready after {timeout:.0f} s: {absent}")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()
    for s in specs:
        if found[s.name] != s.partitions:
            log.warning("topic %s has %d partitions, configured %d: the existing count is used",
                        s.name, found[s.name], s.partitions)
    return found


def _ready_partitions(described: list[Any]) -> dict[str, int]:
    """``{topic: partitions}`` of the described topics whose every partition has a leader."""
    ready: dict[str, int] = {}
    for topic in described:
        parts = topic["partitions"]
        if topic["error_code"] == 0 and parts and all(p["leader"] >= 0 for p in parts):
            ready[topic["topic"]] = len(parts)
    return ready


@dataclass
class Topology:
    app: faust.App
    #: raw CDRs in (CONTRACT 1a)
    raw: Any
    #: rejected input, each with its reason
    rejected: Any
    #: alerts out (CONTRACT 2)
    alerts: Any
    #: live tuning, read whole by every worker
    control: Any
    #: calls repartitioned by number (internal: ``<app id>`` is not prefixed, the name is an option)
    calls: Any
    #: E.164 number -> NumberState, partitioned like ``calls``, changelog-backed
    state: Any
    #: partition of ``calls`` -> its detector's References (bytes), changelog-backed
    references: Any
    #: calls repartitioned by grouping key (internal, named by an option like ``calls``);
    #: None when group detection is off
    groups: Any = None
    #: grouping key -> KeyState, partitioned like ``groups``, changelog-backed (or None)
    group_state: Any = None

    def internal_topics(self) -> list[TopicSpec]:
        """Topics the worker creates before any consumer joins (:func:`ensure_topics`)."""
        specs = [TopicSpec(self.calls.get_topic_name(), self.calls.partitions),
                 _changelog_spec(self.state), _changelog_spec(self.references)]
        if self.groups is not None:
            specs += [TopicSpec(self.groups.get_topic_name(), self.groups.partitions),
                      _changelog_spec(self.group_state)]
        return [*specs, TopicSpec(self.control.get_topic_name(), 1)]

    def output_topics(self) -> list[Any]:
        out = [self.rejected, self.alerts, self.calls]
        return out if self.groups is None else [*out, self.groups]


def _changelog_spec(table: Any) -> TopicSpec:
    changelog = table.changelog_topic
    return TopicSpec(changelog.get_topic_name(), changelog.partitions,
                     {"cleanup.policy": "compact"})


def declare_topology(options: WorkerOptions) -> Topology:
    t = options.topics
    app = faust.App(options.app_id, **faust_config(options))
    raw = app.topic(t.raw, key_type=bytes, value_type=bytes)
    rejected = app.topic(t.rejected, key_type=bytes, value_type=bytes)
    alerts = app.topic(t.alerts, key_type=bytes, value_type=bytes)
    control = app.topic(t.control, key_type=bytes, value_type=bytes, partitions=1,
                        internal=True)
    calls = app.topic(t.calls, key_type=bytes, value_type=bytes,
                      partitions=options.partitions, internal=True)
    state = declare_state_table(app, "state", options.partitions, "per-number detection state")
    references = declare_state_table(app, "references", options.partitions,
                                     "learned references of busy callers per partition",
                                     REFERENCES_CODEC)
    topology = Topology(app, raw, rejected, alerts, control, calls, state, references)
    if options.group_detection:
        topology.groups = app.topic(t.groups, key_type=bytes, value_type=bytes,
                                    partitions=options.partitions, internal=True)
        topology.group_state = declare_state_table(app, "groups", options.partitions,
                                                   "group (ring) detection state per key",
                                                   GROUP_CODEC)
    return topology


def prepare_topics(options: WorkerOptions, topology: Topology,
                   timeout: float = 60.0) -> dict[str, int]:
    """:func:`ensure_topics` of the internal topics, on a loop of its own (before the worker's)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(
            ensure_topics(kafka_bootstrap(options.broker), topology.internal_topics(), timeout))
    finally:
        loop.close()
