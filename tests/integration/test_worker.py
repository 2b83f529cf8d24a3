"""``dialguard produce`` + ``dialguard worker`` on a real Kafka broker.

The worker must raise the alerts that replay's detectors (:class:`DetectorChain`:
per number and rings) raise over the same records (caller, profile, detected_at),
route rejected records to ``cdr.rejected`` with their reasons, and account for every
record.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer

from detectors.alerts import Alert
from detectors.composite import DetectorChain
from detectors.config import Settings, load_settings, with_override
from detectors.engine import Detector
from detectors.numbers import NumberNormaliser
from detectors.records import Call, Rejected
from formats.json_lines import JsonLines, write_json_lines
from formats.ordering import event_time_order
from streams.app import alert_rows
from streams.brokers import unique_tag
from testbed.simulation import SimConfig, simulate

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from streams.cli import main; main()"]


def _topics(prefix: str) -> dict[str, str]:
    # letters only: a topic name with a run of digits ("w1p0-1234567b.raw") looks like a phone
    # number, and metric labels carry such values as "other" (no subscriber numbers in labels)
    tag = unique_tag()
    return {name: f"{prefix}-{tag}.{name}" for name in ("raw", "alerts", "rejected", "control",
                                                        "calls")}


def _read(broker: Any, topic: str, until: Callable[[list[bytes]], bool],
          timeout: float = 120.0) -> list[bytes]:
    consumer = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             group_id=None, consumer_timeout_ms=1000)
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for message in consumer:
                values.append(message.value)
            if until(values):
                break
    finally:
        consumer.close()
    return values


@pytest.mark.parametrize("ingest_processes", [0, 1])
def test_worker_matches_replay(kafka_broker: Any, tmp_path: Path,
                               start_worker: Callable[..., Any], ingest_processes: int) -> None:
    topics = _topics(f"w1p{ingest_processes}")
    kafka_broker.create_topics([topics["raw"]], partitions=1)
    data = tmp_path / "day.jsonl"
    with data.open("w") as out:
        n_records = write_json_lines(simulate(SimConfig.preset("small"), seed=11).records(), out)

    # what replay's detectors (per number and rings) say over the same records, in order
    settings = load_settings()
    detector = DetectorChain.for_settings(settings)
    expected_alerts: list[Alert] = []
    expected_rejects: Counter[str] = Counter()
    with data.open("rb") as lines:
        # in event-time order within replay's slack, as `dialguard replay` and ingest read them
        decoded = JsonLines(NumberNormaliser(settings.input.region)).read(lines)
        for record in event_time_order(decoded, slack_s=300.0):
            if isinstance(record, Call):
                expected_alerts.extend(detector.observe(record))
            else:
                assert isinstance(record, Rejected)
                expected_rejects[record.reason] += 1
    assert any(a.profile == "cloud_dialer" for a in expected_alerts)
    assert sum(expected_rejects.values()) > 0

    produced = subprocess.run(
        [*CLI, "produce", str(data), "--broker", kafka_broker.url, "--topic", topics["raw"]],
        cwd=ROOT, capture_output=True, timeout=120, check=True)
    assert f"produced {n_records} CDRs".encode() in produced.stderr

    proc, log = start_worker(kafka_broker, topics, f"dg-{unique_tag()}", tmp_path, "w",
                             2, "--ingest-processes", str(ingest_processes),
                             "--progress-interval", "1")
    n_rejects = sum(expected_rejects.values())
    rejected = _read(kafka_broker, topics["rejected"], lambda v: len(v) >= n_rejects)
    alerts = _read(kafka_broker, topics["alerts"],
                   lambda v: len(v) >= len(expected_alerts), timeout=60)
    time.sleep(2)  # anything extra would show up now
    alerts = _read(kafka_broker, topics["alerts"], lambda v: True, timeout=5)
    # the worker's metrics count what its ingest read (in a process of its own or not),
    # and show the raw topic's consumer lag, which the Prometheus lag rule watches
    port = re.search(r"metrics on http://[\d.]+:(\d+)/metrics", log.read_text())
    assert port, log.read_text()[-2000:]
    lag_line = f'dialguard_consumer_lag_messages{{partition="0",topic="{topics["raw"]}"}} 0.0'
    # lag is sampled every 5 s; a loaded machine may take far longer (a bound, not a timing test)
    deadline = time.monotonic() + 120
    while True:
        exposition = urllib.request.urlopen(
            f"http://127.0.0.1:{port.group(1)}/metrics", timeout=10).read().decode()
        if lag_line in exposition or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if lag_line not in exposition:  # in full: an assertion's message is cut short
        pytest.fail("\n".join([
            "raw lag never 0:",
            *(x for x in exposition.splitlines() if "consumer_lag" in x or "cdrs_read" in x),
            log.read_text()[-3000:]]))
    read = re.search(r'^dialguard_cdrs_read_total\{source="kafka"\} (\S+)$', exposition, re.M)
    assert read and float(read.group(1)) == n_records
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    summary = log.read_text()

    got = [orjson.loads(v) for v in alerts]
    assert alert_rows(got) == alert_rows(expected_alerts)
    reasons = Counter(orjson.loads(v)["reason"] for v in rejected)
    assert reasons == expected_rejects
    assert all(orjson.loads(v)["source"].startswith(topics["raw"]) for v in rejected)
    match = re.search(r"stopped; (\d+) messages, (\d+) calls, (\d+) rejected, (\d+) alerts",
                      summary)
    assert match, summary[-2000:]
    messages, calls, n_rejected, n_alerts = map(int, match.groups())
    assert messages == n_records
    assert calls + n_rejected == n_records
    assert n_rejected == n_rejects
    assert n_alerts == sum(a.kind == "number" for a in expected_alerts)
    # Faust's 1.5 s fetch wait, which stalled detection, was shortened on this Faust version
    assert "consumer fetch wait set to 50 ms" in summary
    # progress lines, with the offset commits Faust's sensor hooks counted
    commits = [int(n) for n in re.findall(r"progress: .* (\d+) offset commits", summary)]
    assert commits and max(commits) > 0, summary[-2000:]


def test_control_message_reaches_both_workers(kafka_broker: Any, tmp_path: Path,
                                              start_worker: Callable[..., Any]) -> None:
    topics = _topics("w2")
    kafka_broker.create_topics([topics["raw"]], partitions=2)
    kafka_broker.create_topics([topics["control"]], partitions=1)
    app_id = f"dg-{unique_tag()}"
    first, log1 = start_worker(kafka_broker, topics, app_id, tmp_path, "a")
    second, log2 = start_worker(kafka_broker, topics, app_id, tmp_path, "b")

    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    producer.send(topics["control"], orjson.dumps(
        {"op": "set", "key": "alerts.min_attempts", "value": 150}))
    producer.send(topics["control"], b'{"op": "set", "key": "model.seed", "value": 1}')
    producer.flush()

    # both workers report the change (their logs carry the key, never a number) and have
    # their ingest processes running (one joining late moves raw partitions: see below)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        texts = [log1.read_text(), log2.read_text()]
        if all("control: set alerts.min_attempts" in t and "process(es) started" in t
               for t in texts):
            break
        time.sleep(0.5)
    assert all("control: set alerts.min_attempts" in t for t in texts), texts
    assert all("control message refused" in t for t in texts)

    # a burst that alerts with the defaults, from callers spread over both calls partitions
    # (with record ids: a rebalance while they are read may deliver some twice, and counted
    # twice a caller's 120 calls would pass the raised floor)
    callers = [f"+861700000{i:04d}" for i in range(8)]
    records: list[dict[str, Any]] = [
        {"caller": c, "callee": f"+86139{i * 7919 + k:08d}", "start": 1.7e9 + 3 * i,
         "duration": 0, "ring": 12, "id": f"burst-{k}-{i}"}
        for k, c in enumerate(callers) for i in range(120)]
    # and a sentinel caller with more calls than the new floor: once it alerts, the burst
    # before it was processed
    records += [{"caller": "+8613300000001", "callee": f"+86188{i * 7:08d}",
                 "start": 1.7e9 + 400 + 2 * i, "duration": 0, "ring": 1, "id": f"sentinel-{i}"}
                for i in range(200)]
    records.sort(key=lambda r: r["start"])

    def flagged(settings: Settings) -> set[str | None]:
        detector = Detector(settings)
        return {a.caller for r in records for a in detector.observe(
            Call(r["caller"], r["callee"], r["start"], 0, False, float(r["ring"])))}

    assert flagged(load_settings()) == {*callers, "+8613300000001"}
    tuned = with_override(load_settings(), "alerts.min_attempts", 150)
    assert flagged(tuned) == {"+8613300000001"}
    for r in records:
        producer.send(topics["raw"], key=r["caller"].encode(), value=orjson.dumps(r))
    producer.flush()
    producer.close()

    alerts = _read(kafka_broker, topics["alerts"],
                   lambda v: any(b"+8613300000001" in x for x in v), timeout=90)
    callers_alerted = {orjson.loads(v).get("caller") for v in alerts}
    assert "+8613300000001" in callers_alerted  # the pipeline ran
    assert not callers_alerted & set(callers)  # the raised threshold held on both workers
    for log in (log1, log2):
        assert "partition" in log.read_text()  # each worker owned a calls partition
