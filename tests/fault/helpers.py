"""What the fault tests share: a day of CDRs, replay's verdict on it, Kafka reads and waits."""

from __future__ import annotations

import asyncio
import contextlib
import io
import random
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from kafka import KafkaProducer

from detectors.alerts import Alert
from detectors.composite import DetectorChain
from detectors.config import load_settings
from detectors.numbers import NumberNormaliser
from detectors.records import Call, Rejected
from formats.json_lines import JsonLines, write_json_lines
from formats.ordering import event_time_order
from streams.brokers import unique_tag
from streams.options import Topics, kafka_bootstrap
from streams.reconcile import Reconciliation, read_topic, reconcile
from testbed.simulation import SimConfig, simulate

WAIT_S = 180.0  # bound of every wait on a worker or the broker
COOLDOWN_S = load_settings().alerts.cooldown_s


def topic_names(prefix: str) -> dict[str, str]:
    tag = unique_tag()
    return {name: f"{prefix}-{tag}.{name}" for name in ("raw", "alerts", "rejected", "control",
                                                        "calls")}


def as_topics(names: dict[str, str]) -> Topics:
    return Topics(raw=names["raw"], rejected=names["rejected"], alerts=names["alerts"],
                  control=names["control"], calls=names["calls"])


@dataclass
class Day:
    """Simulated CDR lines (as produced) and what replay alerts on them."""

    lines: list[bytes]
    alerts: list[Alert]

    @property
    def alerted(self) -> set[str]:
        return {a.caller for a in self.alerts if a.caller}


def make_day(seed: int = 21, hours: float = 6.0) -> Day:
    """~50k CDRs over ``hours`` with a few dozen alerted numbers; replay's alerts on them."""
    config = SimConfig.preset("small", subscribers=6000, hours=hours, cloud_dialer=8,
                              ring_once=8, marketing_blast=10, repeat_refused=8)
    out = io.StringIO()
    write_json_lines(simulate(config, seed=seed).records(), out)
    lines = out.getvalue().encode().splitlines()
    return Day(lines, replay_alerts(lines))


def replay_alerts(lines: Iterable[bytes]) -> list[Alert]:
    """What ``dialguard replay`` alerts: its detectors over the calls in event-time order
    (within its 300 s slack), each line decoded as ingest decodes a message; a line the
    decoder fails on, or a call whose detection raises, is rejected (skipped)."""
    detector = DetectorChain.for_settings(load_settings())  # per number and rings
    reader = JsonLines(NumberNormaliser("CN"))

    def decoded() -> Iterator[Call | Rejected]:
        for line in lines:
            with contextlib.suppress(Exception):
                yield from reader.decode(line)

    alerts: list[Alert] = []
    for record in event_time_order(decoded(), slack_s=300.0):
        if type(record) is Call:
            with contextlib.suppress(Exception):
                alerts.extend(detector.observe(record))
    return alerts


def skewed_partitions(lines: list[bytes], partitions: int = 4, seed: int = 5,
                      weights: tuple[float, ...] = (0.55, 0.25, 0.15, 0.05)) -> list[list[bytes]]:
    """Each line to a partition drawn with ``weights`` (switches of very different sizes)."""
    parts: list[list[bytes]] = [[] for _ in range(partitions)]
    for partition, line in skewed_pairs(lines, partitions, seed, weights):
        parts[partition].append(line)
    return parts


def produce(broker: Any, topic: str, by_partition: list[list[bytes]]) -> int:
    """Send partition after partition (the first all before the second: maximal skew)."""
    return produce_pairs(broker, topic, ((p, line) for p, lines in enumerate(by_partition)
                                         for line in lines))


def produce_pairs(broker: Any, topic: str, pairs: Iterable[tuple[int, bytes]]) -> int:
    """Send ``(partition, line)`` pairs in the order given."""
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5,
                             batch_size=1 << 18)
    n = 0
    try:
        for partition, line in pairs:
            producer.send(topic, value=line, partition=partition)
            n += 1
        producer.flush(timeout=WAIT_S)
    finally:
        producer.close(timeout=10)
    return n


def skewed_pairs(lines: list[bytes], partitions: int = 4, seed: int = 5,
                 weights: tuple[float, ...] = (0.55, 0.25, 0.15, 0.05)) -> list[tuple[int, bytes]]:
    """Each line (in the day's order) to a partition drawn with ``weights``: switches of very
    different sizes sending side by side."""
    rng = random.Random(seed)
    return [(rng.choices(range(partitions), weights[:partitions])[0], line) for line in lines]


def settle(broker: Any, app_id: str, names: dict[str, str], produced: int,
           timeout: float = WAIT_S) -> Reconciliation:
    """Wait until the workers have processed everything produced (per committed offsets)."""
    deadline = time.monotonic() + timeout
    bootstrap = kafka_bootstrap(broker.url)
    while True:
        try:
            result: Reconciliation | None = asyncio.run(
                reconcile(bootstrap, app_id, as_topics(names)))
        except Exception as exc:  # e.g. the broker restarting: ask again
            result, error = None, exc
        if (result is not None and result.produced >= produced and not result.pending
                and result.forwarded > 0):
            return result
        if time.monotonic() > deadline:
            state = result.render() if result is not None else repr(error)
            raise AssertionError(f"not settled within {timeout:.0f} s:\n{state}")
        time.sleep(1.0)


def read_json(broker: Any, topic: str) -> list[dict[str, Any]]:
    messages = asyncio.run(read_topic(kafka_bootstrap(broker.url), topic))
    return [orjson.loads(value) for _, _, value in messages if value is not None]


def alerted(alerts: Iterable[dict[str, Any]]) -> set[str]:
    return {a["caller"] for a in alerts if a.get("caller")}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def alerted_twice_within_cooldown(alerts: Iterable[dict[str, Any]]) -> list[str]:
    """Numbers with two distinct alerts closer than the cool-down in event time."""
    last: dict[str, float] = {}
    twice = []
    seen: set[tuple[str, float]] = set()
    for a in sorted((a for a in alerts if a.get("caller")), key=lambda a: a["detected_at"]):
        key = (a["caller"], a["detected_at"])
        if key in seen:  # the same alert delivered twice (at least once), not a second alert
            continue
        seen.add(key)
        if a["caller"] in last and a["detected_at"] - last[a["caller"]] < COOLDOWN_S:
            twice.append(a["caller"])
        last[a["caller"]] = a["detected_at"]
    return twice


def wait_for_text(path: Any, text: str, timeout: float = WAIT_S, count: int = 1) -> float:
    """Wait until ``path`` holds ``text`` ``count`` times; returns the monotonic time seen."""
    deadline = time.monotonic() + timeout
    while True:
        content = path.read_text(errors="replace") if path.exists() else ""
        if content.count(text) >= count:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} x{count} not in {path} within {timeout:.0f} s:\n"
                                 f"{content[-3000:]}")
        time.sleep(0.1)
