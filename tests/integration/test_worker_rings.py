"""Replay and the stream workers report the same rings, on Apache Kafka with 4 partitions.

A simulated day of the wide world (seed 4: a rotating pool of 211 numbers, which replay
links whole, and a few small rings; in the first test the city switches' calls name no
ingress, so that their callers are judged under population shares) goes through
``dialguard replay`` and through a ``dialguard worker`` whose calls and groups topics have
4 partitions: the ring stage runs as one group detector per groups partition, each key's
calls on the partition of its key.
Every ring alert must be replay's: the same ``ring_id``, members, new members and event
time; the number alerts name the same numbers, and a number alert that carries a ``ring_id``
names a ring its number joins in replay (whether it carries one depends on how fast the
membership travelled from the group stage: not checked).  The worker's metrics count
the rings it found.  A worker stopped halfway through the pool's life and replaced by a
new one (same app id) resumes the group state from the changelog: together they raise
replay's ring alerts over the whole day.  Waits are on committed offsets (every stage
done), bounded.
"""

from __future__ import annotations

import asyncio
import math
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from detectors.config import load_settings
from detectors.numbers import NumberNormaliser
from detectors.records import Call
from detectors.rings.detector import GroupDetector
from detectors.rings.keys import population_keys
from formats.json_lines import JsonLines, parse_time, write_json_lines
from formats.reading import read_paths
from streams.brokers import unique_tag
from streams.ingest import GROUP_DECODER
from streams.options import Topics, kafka_bootstrap
from streams.reconcile import Reconciliation, read_topic, reconcile
from testbed.simulation import SimConfig
from testbed.worlds import simulate_world

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from streams.cli import main; main()"]
PARTITIONS = 4
SEED = 4
WAIT_S = 240.0  # bound of every wait on the broker or the worker


def _without_city_ingress(record: dict[str, Any]) -> dict[str, Any]:
    """A record of a city switch's subscribers as a feed without trunk or address gives it."""
    if str(record.get("trunk") or "").startswith(("mob-", "msc-", "ims-")):
        return {k: v for k, v in record.items() if k not in ("trunk", "src_ip")}
    return record


def _start_of(record: dict[str, Any]) -> float:
    """A record's start as the JSON reader reads it, for sorting; first for a record it
    rejects for its start."""
    try:
        return parse_time(record.get("start"))
    except ValueError:
        return -math.inf


def _ring_alerts(alerts: list[dict[str, Any]]) -> list[tuple[str, float, tuple[str, ...],
                                                              tuple[str, ...]]]:
    return sorted((a["ring_id"], a["detected_at"], tuple(sorted(a["members"])),
                   tuple(sorted(a["new_members"]))) for a in alerts if a["kind"] == "ring")


def _settle(broker: Any, app_id: str, topics: Topics, produced: int) -> Reconciliation:
    """Wait until ingest, detect and the group stage committed everything produced."""
    deadline = time.monotonic() + WAIT_S
    while True:
        result = asyncio.run(reconcile(kafka_bootstrap(broker.url), app_id, topics))
        if result.produced >= produced and result.forwarded > 0 and not result.pending:
            return result
        assert time.monotonic() < deadline, f"not settled in {WAIT_S:.0f} s:\n{result.render()}"
        time.sleep(1.0)


def _replay(data: Path, tmp_path: Path) -> list[dict[str, Any]]:
    out = tmp_path / "replay.jsonl"
    subprocess.run([*CLI, "replay", str(data), "--alerts", str(out), "--no-progress"],
                   cwd=ROOT, capture_output=True, timeout=300, check=True)
    return [orjson.loads(line) for line in out.read_bytes().splitlines()]


def _replay_joins(data: Path) -> set[tuple[str, str]]:
    """(number, ring id) of every number replay's group detection enrols in a ring."""
    settings = load_settings()
    groups = GroupDetector(settings, track_memberships=True)
    for record in read_paths([data], "auto", NumberNormaliser(settings.input.region),
                             settings.input):
        if type(record) is Call:
            groups.observe(record)
    return {(c.number, c.ring_id) for c in groups.drain_memberships() if c.joined}


def _produce(broker: Any, data: Path, topic: str) -> None:
    subprocess.run([*CLI, "produce", str(data), "--broker", broker.url, "--topic", topic],
                   cwd=ROOT, capture_output=True, timeout=120, check=True)


def _read_alerts(broker: Any, topic: str) -> list[dict[str, Any]]:
    messages = asyncio.run(read_topic(kafka_bootstrap(broker.url), topic))
    return [orjson.loads(v) for _, _, v in messages if v is not None]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


def test_workers_report_the_rings_replay_reports(kafka_broker: Any, tmp_path: Path,
                                                 start_worker: Callable[..., Any]) -> None:
    tag = unique_tag()
    names = {name: f"rg-{tag}.{name}" for name in ("raw", "alerts", "rejected", "control",
                                                   "calls")}
    topics = Topics(**names)
    kafka_broker.create_topics([names["raw"]], partitions=1)
    day = simulate_world("wide", SimConfig.preset("small"), seed=SEED)
    data = tmp_path / "day.jsonl"
    # The city's switches' calls name no ingress: population shares.  In event-time order:
    # replay re-orders a late record within its slack, a worker within the batch it came in,
    # whose bounds depend on how much the consumer fetched at once.
    with data.open("w") as out:
        n_records = write_json_lines(sorted(map(_without_city_ingress, day.records()),
                                            key=_start_of), out)

    expected = _replay(data, tmp_path)
    expected_rings = _ring_alerts(expected)
    ring_members = {m for _, _, members, _ in expected_rings for m in members}
    pools = [c.members for c in day.labels.campaigns if c.cls == "rotating_pool"]
    assert pools and all(set(p) <= ring_members for p in pools)  # the seed's pools are found
    assert len({r for r, *_ in expected_rings}) >= 2

    _produce(kafka_broker, data, names["raw"])
    app_id = f"dg-rg-{tag}"
    proc, log = start_worker(kafka_broker, names, app_id, tmp_path, "w", PARTITIONS,
                             "--duration", "400")
    _settle(kafka_broker, app_id, topics, n_records)
    alerts = _read_alerts(kafka_broker, names["alerts"])

    assert _ring_alerts(alerts) == expected_rings
    # The same numbers alerted.  Which profile and when is the per-number stage's matter
    # and need not be replay's with 4 partitions: each partition's model has its own seed,
    # and a callee's inbound side is counted on another partition than its caller's calls.
    assert {a["caller"] for a in alerts if a["kind"] == "number"} == {
        a["caller"] for a in expected if a["kind"] == "number"}
    # a number alert's ring id comes from the group stage through dialguard.calls: how many
    # carry one depends on timing, but the ring named is one its number joins in replay
    joins = _replay_joins(data)
    assert {ring_id for _, ring_id in joins} >= {r for r, *_ in expected_rings}
    tagged = {(a["caller"], a["ring_id"]) for a in alerts
              if a["kind"] == "number" and a.get("ring_id")}
    assert tagged <= joins

    # the groups topic and the group table's changelog have the partitions asked for
    groups = asyncio.run(read_topic(kafka_bootstrap(kafka_broker.url), topics.groups))
    assert {p for p, _, _ in groups} == set(range(PARTITIONS))
    keys = {k for _, _, v in groups if v is not None for k in GROUP_DECODER.decode(v).keys}
    assert {k for k in keys if k.startswith("pop:")} == set(population_keys(
        load_settings().rings.population_shards))
    changelog = asyncio.run(read_topic(kafka_bootstrap(kafka_broker.url),
                                       f"{app_id}-groups-changelog"))
    assert {p for p, _, _ in changelog} == set(range(PARTITIONS))

    # the worker counts the rings it found, as replay's metrics do
    port = re.search(r"metrics on http://[\d.]+:(\d+)/metrics", log.read_text())
    assert port, log.read_text()[-2000:]
    exposition = urllib.request.urlopen(f"http://127.0.0.1:{port.group(1)}/metrics",
                                        timeout=10).read().decode()
    found = re.search(r"^dialguard_rings_found_total (\S+)$", exposition, re.M)
    assert found and float(found.group(1)) == len({r for r, *_ in expected_rings})
    members = re.search(r"^dialguard_ring_members_count (\S+)$", exposition, re.M)
    assert members and float(members.group(1)) == len(expected_rings)

    _stop(proc)
    summary = re.search(r"(\d+) ring alerts", log.read_text())
    assert summary and int(summary.group(1)) == len(expected_rings), log.read_text()[-2000:]
    # every membership the group stage sent reached the detect stage, on its number's
    # partition (settled: none is pending in dialguard.calls); more if some came twice
    news = re.search(r"(\d+) ring memberships sent, (\d+) applied, (\d+) skipped",
                     log.read_text())
    assert news, log.read_text()[-2000:]
    sent, applied, skipped = map(int, news.groups())
    assert skipped == 0 and applied >= sent >= len(joins)


def test_a_replaced_worker_resumes_the_rings_from_the_changelog(
        kafka_broker: Any, tmp_path: Path, start_worker: Callable[..., Any]) -> None:
    tag = unique_tag()
    names = {name: f"rr-{tag}.{name}" for name in ("raw", "alerts", "rejected", "control",
                                                   "calls")}
    topics = Topics(**names)
    kafka_broker.create_topics([names["raw"]], partitions=1)
    day = simulate_world("wide", SimConfig.preset("small"), seed=SEED)
    data = tmp_path / "day.jsonl"
    with data.open("w") as out:
        write_json_lines(day.records(), out)
    expected_rings = _ring_alerts(_replay(data, tmp_path))
    pool = max((c for c in day.labels.campaigns if c.cls == "rotating_pool"),
               key=lambda c: len(c.members))
    # cut halfway through the pool's life: its ring is founded before, grows after
    cut = (pool.start + pool.end) / 2
    spanning = {r for r, t, _, _ in expected_rings if t < cut} & {
        r for r, t, _, _ in expected_rings if t >= cut}
    assert spanning  # a worker that forgot the first part would give it another id
    reader = JsonLines(NumberNormaliser("CN"))

    def late_call(line: bytes) -> bool:  # a rejected line goes with the early part
        return any(type(r) is Call and r.start >= cut for r in reader.decode(line))

    lines = data.read_bytes().splitlines(keepends=True)
    early = [line for line in lines if not late_call(line)]
    late = [line for line in lines if late_call(line)]
    parts = []
    for name, part in (("early", early), ("late", late)):
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(b"".join(part))
        parts.append((path, len(part)))

    app_id = f"dg-rr-{tag}"
    produced = 0
    logs = []
    for i, (path, n) in enumerate(parts):
        _produce(kafka_broker, path, names["raw"])
        produced += n
        proc, log = start_worker(kafka_broker, names, app_id, tmp_path, f"w{i}", PARTITIONS,
                                 "--duration", "400")
        _settle(kafka_broker, app_id, topics, produced)
        _stop(proc)
        logs.append(log.read_text(errors="replace"))
    # the second worker found the first one's rings in the group table
    resumed = [int(m) for m in re.findall(r"groups partition \d+: resumed \d+ keys \((\d+) rings\)",
                                          logs[1])]
    assert sum(resumed) >= 1, logs[1][-3000:]
    assert _ring_alerts(_read_alerts(kafka_broker, names["alerts"])) == expected_rings
