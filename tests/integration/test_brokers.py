"""Round trips through brokers the project starts itself (streams/brokers.py).

kafka-python produces, aiokafka consumes in a consumer group, on real Apache
Kafka and on Tansu.  Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient

from streams.brokers import (
    Broker,
    BrokerError,
    KafkaBroker,
    TansuBroker,
    start_broker,
    unique_topic_name,
)

pytestmark = pytest.mark.integration

N_KEYS = 5
PER_KEY = 20


def _produce(bootstrap: str, topic: str) -> list[tuple[bytes, bytes]]:
    """Send PER_KEY numbered messages for each of N_KEYS keys; return what was sent."""
    sent = []
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        futures = []
        for i in range(PER_KEY):
            for k in range(N_KEYS):
                key, value = f"k{k}".encode(), f"k{k}:{i}".encode()
                futures.append(producer.send(topic, key=key, value=value))
                sent.append((key, value))
        producer.flush(timeout=20)
        for fut in futures:
            fut.get(timeout=20)  # raises if the broker refused a record
    finally:
        producer.close(timeout=10)
    return sent


async def _consume(bootstrap: str, topic: str, expected: int, timeout: float) -> list:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=unique_topic_name("group"),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    got: list = []
    deadline = time.monotonic() + timeout
    await consumer.start()
    try:
        while len(got) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                got.extend(records)
        await consumer.commit()
    finally:
        await consumer.stop()
    return got


def _round_trip(broker: Broker, topic: str, timeout: float) -> None:
    sent = _produce(broker.bootstrap, topic)
    got = asyncio.run(
        asyncio.wait_for(_consume(broker.bootstrap, topic, len(sent), timeout), timeout + 15)
    )
    assert sorted((r.key, r.value) for r in got) == sorted(sent)
    # one key always lands on one partition, in the order it was sent
    by_key: dict[bytes, list[int]] = {}
    partitions: dict[bytes, set[int]] = {}
    for r in got:
        by_key.setdefault(r.key, []).append(int(r.value.split(b":")[1]))
        partitions.setdefault(r.key, set()).add(r.partition)
    assert all(seq == list(range(PER_KEY)) for seq in by_key.values()), by_key
    assert all(len(p) == 1 for p in partitions.values())


@pytest.mark.timeout(120)
def test_kafka_round_trip(kafka_broker: KafkaBroker, make_topic: Callable[..., str]) -> None:
    assert kafka_broker.running
    assert kafka_broker.url == f"kafka://127.0.0.1:{kafka_broker.port}"
    topic = make_topic(partitions=3)
    _round_trip(kafka_broker, topic, timeout=45)


@pytest.mark.timeout(120)
def test_kafka_creates_topics_on_first_use(kafka_broker: KafkaBroker) -> None:
    topic = unique_topic_name("auto")
    _round_trip(kafka_broker, topic, timeout=45)
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
    try:
        (info,) = admin.describe_topics([topic])
    finally:
        admin.close()
    assert len(info["partitions"]) == kafka_broker.partitions > 1


@pytest.mark.timeout(60)
def test_create_topics_is_idempotent(kafka_broker: KafkaBroker) -> None:
    names = [unique_topic_name("idem-a"), unique_topic_name("idem-b")]
    kafka_broker.create_topics(names, partitions=2)
    kafka_broker.create_topics(names, partitions=2)  # existing: left alone, no error
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
    try:
        infos = admin.describe_topics(names)
    finally:
        admin.close()
    assert sorted(len(i["partitions"]) for i in infos) == [2, 2]
    with pytest.raises(ValueError):
        kafka_broker.create_topics(["x"], partitions=0)


@pytest.mark.timeout(180)
def test_tansu_round_trip(tansu_broker: TansuBroker, make_topic: Callable[..., str]) -> None:
    # Tansu creates no topic on first use, so create it explicitly
    topic = make_topic(partitions=3, broker=tansu_broker)
    _round_trip(tansu_broker, topic, timeout=90)


async def _consume_some(bootstrap: str, topic: str, group: str, count: int) -> list[bytes]:
    """Read exactly ``count`` records as ``group`` and commit them; bounded."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group,
        auto_offset_reset="earliest", enable_auto_commit=False, max_poll_records=1,
    )
    got: list[bytes] = []
    await consumer.start()
    try:
        while len(got) < count:
            record = await asyncio.wait_for(consumer.getone(), 30)
            got.append(record.value)
        await consumer.commit()
    finally:
        await consumer.stop()
    return got


@pytest.mark.timeout(180)
def test_kafka_restart_keeps_records_and_committed_offsets() -> None:
    with KafkaBroker(partitions=1) as broker:
        topic = unique_topic_name("restart")
        broker.create_topics([topic], partitions=1)
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
        for i in range(10):
            producer.send(topic, f"r{i}".encode())
        producer.flush(timeout=20)
        producer.close(timeout=10)
        group = unique_topic_name("restart-group")
        first = asyncio.run(_consume_some(broker.bootstrap, topic, group, 4))
        port, workdir = broker.port, broker.workdir
        broker.restart()
        assert broker.running and broker.port == port and broker.workdir == workdir
        rest = asyncio.run(_consume_some(broker.bootstrap, topic, group, 6))
    assert first == [f"r{i}".encode() for i in range(4)]
    assert rest == [f"r{i}".encode() for i in range(4, 10)]
    assert workdir is not None and not workdir.exists()


@pytest.mark.timeout(60)
def test_stop_ends_process_group_and_cleans_up() -> None:
    broker = TansuBroker()
    with broker:
        assert broker.running
        pid, workdir = broker.proc.pid, broker.workdir  # type: ignore[union-attr]
        assert workdir is not None and (workdir / "broker.log").exists()
    assert not broker.running
    assert workdir is not None and not workdir.exists()
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
    with pytest.raises(BrokerError):
        _ = broker.bootstrap


def test_missing_jars_name_the_install_command(tmp_path: Path) -> None:
    broker = KafkaBroker(libs=tmp_path / "no-such-libs")
    with pytest.raises(BrokerError, match="fetch-kafka.sh"):
        broker.start()
    assert not broker.running


def test_missing_java_names_the_install_command(tmp_path: Path) -> None:
    broker = KafkaBroker(java=str(tmp_path / "java"))
    with pytest.raises(BrokerError, match="apt-get install"):
        broker.start()
    assert not broker.running


@pytest.mark.timeout(60)
def test_auto_falls_back_to_tansu_without_kafka_jars(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIALGUARD_KAFKA_LIBS", str(tmp_path / "empty"))
    broker = start_broker("auto", partitions=2, heap="256m")  # heap: Kafka-only, dropped
    try:
        assert isinstance(broker, TansuBroker) and broker.running
        topic = unique_topic_name("auto-tansu")
        broker.create_topics([topic])  # the broker's default partitions
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        try:
            (info,) = admin.describe_topics([topic])
        finally:
            admin.close()
        assert len(info["partitions"]) == 2
    finally:
        broker.stop()


def test_start_broker_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown broker kind"):
        start_broker("rabbitmq")
