"""A restarted ``dialguard worker`` resumes its per-number state from the changelog.

One cloud-dialer campaign is split in two.  The first part (not yet enough to
alert) goes through a first worker, which is then stopped; a second worker
process with the same app id (so the same state-table changelog topic and the
same consumer groups) gets the second part.  The alert it raises must be the one
:class:`~detectors.engine.Detector` raises over BOTH parts in one go: its
``first_seen`` is the first call of the first part and its ``attempts`` counts
calls of both parts.  A worker that rebuilt the state from the second part alone
would raise a different alert (checked below with the real detector), and one
that re-read the first part would count its calls twice.  The caller is judged once
as a busy caller in the first part, which the owning partition's learned references
count: the second worker resumes them from the references changelog (one sample, not
none; written at once, as the first change after a load is).
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer

from detectors.alerts import Alert
from detectors.config import load_settings
from detectors.engine import Detector
from detectors.features import NumberState
from detectors.records import Call
from detectors.references import References
from streams.brokers import unique_tag
from streams.ingest import partition_for
from streams.state import StateCodec

pytestmark = pytest.mark.integration

PARTITIONS = 2
WAIT_S = 90.0  # bound of every wait on the broker or a worker
CALLER = "+8613912340001"
T0 = 1_700_000_000.0
FIRST_PART, SECOND_PART = 15, 30
SUMMARY = re.compile(r"stopped; (\d+) messages, (\d+) calls, (\d+) rejected, (\d+) alerts")


def _campaign(tag: str) -> list[dict[str, Any]]:
    """One calling number, distinct callees, its first two calls and one in six answered and
    cut short: the first part is judged (its calls counted from the first) and not alerted."""
    records = []
    for i in range(FIRST_PART + SECOND_PART):
        answered = i % 6 == 5 or i < 2
        records.append({"caller": CALLER, "callee": f"+86138{i * 7919 + 1:08d}",
                        "start": T0 + 10 * i, "duration": 4 if answered else 0,
                        "answered": answered, "ring": 6 if answered else 20,
                        "id": f"{tag}-{i}"})
    return records


def _as_call(r: dict[str, Any]) -> Call:
    return Call(r["caller"], r["callee"], float(r["start"]), r["duration"], r["answered"],
                float(r["ring"]), r["id"])


def _observe(records: list[dict[str, Any]], detector: Detector | None = None) -> list[Alert]:
    detector = detector if detector is not None else Detector(load_settings())
    return [a for r in records for a in detector.observe(_as_call(r))]


def _stop(proc: subprocess.Popen[bytes], log: Path) -> tuple[int, ...]:
    """SIGTERM, wait (bounded) and return the worker's summary counts."""
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=WAIT_S)
    text = log.read_text(errors="replace")
    match = SUMMARY.search(text)
    assert match, text[-3000:]
    return tuple(map(int, match.groups()))


def _partitions(broker: Any, topic: str, timeout: float = WAIT_S) -> set[int]:
    """The partitions of ``topic`` once a worker has created it (this never creates it)."""
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None,
                             enable_auto_commit=False, allow_auto_create_topics=False)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if topic in consumer.topics():
                return consumer.partitions_for_topic(topic) or set()
            time.sleep(0.5)
    finally:
        consumer.close()
    raise AssertionError(f"topic {topic} not created within {timeout:.0f} s")


def _read(broker: Any, topic: str, until: Callable[[list[Any]], bool],
          timeout: float = WAIT_S) -> list[Any]:
    """Messages of ``topic`` from the start until ``until(messages)`` or ``timeout``.

    Waits for a worker to create the topic first: a reader that auto-created it would
    give it the broker's default partition count, not the worker's.
    """
    deadline = time.monotonic() + timeout
    _partitions(broker, topic, timeout)
    consumer = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             group_id=None, consumer_timeout_ms=500,
                             allow_auto_create_topics=False)
    messages: list[Any] = []
    try:
        while time.monotonic() < deadline:
            messages.extend(consumer)
            if until(messages):
                break
    finally:
        consumer.close()
    return messages


def _produce(broker: Any, topic: str, records: list[dict[str, Any]]) -> None:
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    try:
        for r in records:
            producer.send(topic, key=r["caller"].encode(), value=orjson.dumps(r))
        producer.flush(timeout=WAIT_S)
    finally:
        producer.close(timeout=10)


def _caller_states(messages: list[Any]) -> list[NumberState]:
    codec = StateCodec()
    return [codec.loads(m.value) for m in messages
            if m.key == CALLER.encode() and m.value is not None]


def test_restarted_worker_resumes_state(kafka_broker: Any, tmp_path: Path,
                                        start_worker: Callable[..., Any]) -> None:
    tag = unique_tag()
    topics = {name: f"rs-{tag}.{name}" for name in ("raw", "alerts", "rejected", "control",
                                                    "calls")}
    kafka_broker.create_topics([topics["raw"]], partitions=1)
    app_id = f"dg-rs-{tag}"
    changelog = f"{app_id}-state-changelog"
    references = f"{app_id}-references-changelog"
    records = _campaign(tag)
    first, second = records[:FIRST_PART], records[FIRST_PART:]

    # ---- what the detector says: nothing after the first part, one alert after both
    settings = load_settings()
    assert settings.features.promote_after < FIRST_PART  # the caller has persisted state
    after_first = Detector(settings)
    assert _observe(first, after_first) == []
    expected_state = after_first.states[CALLER]
    learned = after_first.reach.references
    assert learned.samples == 1  # the caller, judged once as a busy caller
    assert expected_state.calls == FIRST_PART  # its first calls counted when it got state
    expected = _observe(records)
    assert [(a.caller, a.profile) for a in expected] == [(CALLER, "cloud_dialer")]
    want = expected[0]
    assert want.first_seen == first[0]["start"]
    # the calls of the second part up to the alert are not enough on their own ...
    in_second = sum(1 for r in second if r["start"] <= want.detected_at)
    assert want.features["attempts"] > in_second
    # ... and a worker that forgot the first part would raise a different alert
    forgetful = _observe(second)
    assert forgetful and forgetful[0].first_seen == second[0]["start"]
    assert (forgetful[0].detected_at, forgetful[0].features) != (want.detected_at, want.features)

    # ---- first worker: the first part, until the caller's state is in the changelog
    proc1, log1 = start_worker(kafka_broker, topics, app_id, tmp_path, "w1",
                              partitions=PARTITIONS)
    _produce(kafka_broker, topics["raw"], first)
    # the state table's changelog has one partition per calls partition
    assert _partitions(kafka_broker, changelog) == set(range(PARTITIONS))
    entries = _read(kafka_broker, changelog, lambda ms: any(
        s.calls == expected_state.calls for s in _caller_states(ms)))
    states = _caller_states(entries)
    assert states, f"no state of the caller in {changelog}\n{log1.read_text()[-3000:]}"
    assert states[-1].calls == expected_state.calls
    assert states[-1].first_seen == first[0]["start"]
    # the owning partition's references are in their changelog, under the partition's key
    owner = partition_for(CALLER, PARTITIONS)
    assert _partitions(kafka_broker, references) == set(range(PARTITIONS))
    written = _read(kafka_broker, references, lambda ms: any(
        m.key == str(owner).encode() and m.value is not None for m in ms))
    refs = [References.from_bytes(m.value) for m in written if m.key == str(owner).encode()]
    assert refs, f"no references in {references}\n{log1.read_text()[-3000:]}"
    assert [m.partition for m in written if m.key == str(owner).encode()] == [owner] * len(refs)
    assert refs[-1].to_bytes() == learned.to_bytes()
    assert _stop(proc1, log1) == (FIRST_PART, FIRST_PART, 0, 0)
    assert _read(kafka_broker, topics["alerts"], lambda ms: False, timeout=2) == []

    # ---- a new worker process, same app id: the second part
    proc2, log2 = start_worker(kafka_broker, topics, app_id, tmp_path, "w2",
                              partitions=PARTITIONS)
    _produce(kafka_broker, topics["raw"], second)
    alerts = _read(kafka_broker, topics["alerts"], lambda ms: len(ms) >= 1)
    assert alerts, f"no alert within {WAIT_S:.0f} s\n{log2.read_text()[-3000:]}"
    time.sleep(2)  # a second (wrong) alert would show up now
    alerts = _read(kafka_broker, topics["alerts"], lambda ms: False, timeout=3)
    summary = _stop(proc2, log2)
    text2 = log2.read_text(errors="replace")

    got = [orjson.loads(m.value) for m in alerts]
    assert len(got) == 1, got
    alert = got[0]
    assert alert["caller"] == CALLER and alert["profile"] == want.profile
    assert alert["first_seen"] == first[0]["start"]  # restored, not rebuilt from part two
    assert alert["detected_at"] == want.detected_at
    assert alert["features"] == want.features
    assert alert["features"]["attempts"] > in_second  # counts calls of both parts
    # the second worker read only the second part, and resumed the caller's state
    assert summary == (SECOND_PART, SECOND_PART, 0, 1)
    assert (f"partition {owner}: resumed 1 tracked numbers and the references of 1 busy "
            "callers") in text2, text2[-3000:]
