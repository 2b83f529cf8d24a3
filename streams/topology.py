"""The worker's Faust topology: the app, its topics and its table, declared top to bottom.

Data flow (topic names are options; defaults shown)::

    cdr.raw ─ingest─▶ dialguard.calls (repartitioned by calling number) ─detect─▶ dialguard.alerts
               │                                                           │
               └──▶ cdr.rejected                       state table ◀──────┘ (changelog topic)
    dialguard.control ──(every worker reads all of it)──▶ live settings and allowlist

The agents that read these topics are attached in :mod:`streams.app`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust

from streams.options import WorkerOptions
from streams.state import declare_state_table


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

    def internal_topics(self) -> list[Any]:
        """Topics the worker creates itself, before any consumer joins."""
        return [self.calls, self.state.changelog_topic, self.control]

    def output_topics(self) -> list[Any]:
        return [self.rejected, self.alerts, self.calls]


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
    return Topology(app, raw, rejected, alerts, control, calls, state)
