"""The broker restarts under a running worker: it resumes, nothing is lost or doubled."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streams.app import alert_rows
from streams.brokers import KafkaBroker, unique_tag

from .helpers import make_day, produce, read_json, settle, topic_names


def test_worker_survives_a_broker_restart(tmp_path: Path,
                                          start_worker: Callable[..., Any]) -> None:
    day = make_day(seed=25, hours=3.0)
    with KafkaBroker(partitions=1, workdir=tmp_path / "kafka") as broker:
        names = topic_names("restart")
        broker.create_topics([names["raw"]], partitions=1)
        app_id = f"dg-br-{unique_tag()}"
        proc, log = start_worker(broker, names, app_id, tmp_path, "w", 2, "--duration", "400")
        half = len(day.lines) // 2
        produced = produce(broker, names["raw"], [day.lines[:half]])
        settle(broker, app_id, names, produced)
        broker.restart()
        produced += produce(broker, names["raw"], [day.lines[half:]])
        counts = settle(broker, app_id, names, produced)
        alerts = read_json(broker, names["alerts"])
        assert proc.poll() is None, log.read_text()[-3000:]
        proc.send_signal(signal.SIGTERM)  # while its broker is still there
        proc.wait(timeout=60)
    print(f"broker restart: {len(alerts)} alerts, replay {len(day.alerts)}; {counts.render()}")
    assert counts.balanced, counts.render()
    assert alert_rows(alerts) == alert_rows(day.alerts)
