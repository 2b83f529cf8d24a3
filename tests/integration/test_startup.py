"""Start-up on a fresh app id: the internal topics exist, with metadata, before any consumer.

Issue 11 finding 3: in 3 of 9 fresh starts the detect group formed before
``<app>.calls`` was visible (``Ignoring missing topic``) and detection had no
partitions for ~5 minutes.  ``Pipeline.prepare`` (run by ``dialguard worker``
before the Faust worker starts) creates them and waits for their metadata.
"""

from __future__ import annotations

from typing import Any

from kafka import KafkaConsumer
from kafka.admin import ConfigResource, KafkaAdminClient

from streams.app import create_pipeline
from streams.brokers import unique_tag
from streams.options import Topics, WorkerOptions


def test_prepare_creates_the_internal_topics_before_any_consumer(kafka_broker: Any) -> None:
    tag = unique_tag()
    topics = Topics(raw=f"st-{tag}.raw", rejected=f"st-{tag}.rejected", alerts=f"st-{tag}.alerts",
                    control=f"st-{tag}.control", calls=f"st-{tag}.calls")
    options = WorkerOptions(broker=kafka_broker.url, topics=topics, partitions=3,
                            app_id=f"dg-st-{tag}", control_consumer=False, lag_interval=0)
    pipeline = create_pipeline(options)
    changelog = f"dg-st-{tag}-state-changelog"
    references = f"dg-st-{tag}-references-changelog"
    expected = {topics.calls: 3, changelog: 3, references: 3, topics.groups: 3,
                f"dg-st-{tag}-groups-changelog": 3, topics.control: 1}
    assert topics.groups == f"st-{tag}.groups"
    assert pipeline.prepare() == expected
    assert pipeline.prepare() == expected  # a second worker: nothing to create, same answer

    consumer = KafkaConsumer(bootstrap_servers=kafka_broker.bootstrap,
                             allow_auto_create_topics=False)
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
    try:
        for name, partitions in expected.items():
            assert consumer.partitions_for_topic(name) == set(range(partitions))
        for name in (changelog, references):
            configs = admin.describe_configs([ConfigResource("TOPIC", name)])
            assert "'cleanup.policy': {'value': 'compact'" in str(configs), name
    finally:
        consumer.close()
        admin.close()
