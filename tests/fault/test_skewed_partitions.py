"""Worker vs replay on 4 raw partitions fed by skewed producers: as a backlog, and live.

One day of CDRs is spread over 4 partitions of ``cdr.raw`` with weights 0.55 /
0.25 / 0.15 / 0.05.  Backlog: sent partition after partition before the worker
starts, so that a consumer reading them side by side meets the first partition's
whole day before the others'.  Live: the worker runs while the four are sent side
by side in the day's order.  Without event-time alignment (``--align-slack 0``)
numbers were alerted twice within their cool-down; with it the worker must alert
the numbers replay alerts (Jaccard >= 0.98), none twice within its cool-down, and
its counts must reconcile.  (Data that reaches Kafka hours late, after the others'
newest, is late data: counted as ``dialguard_late_calls_total``, not aligned.)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from streams.brokers import unique_tag

from .helpers import (
    Day,
    alerted,
    alerted_twice_within_cooldown,
    jaccard,
    make_day,
    produce,
    produce_pairs,
    read_json,
    settle,
    skewed_pairs,
    skewed_partitions,
    topic_names,
    wait_for_text,
)

#: worker arguments; ALIGN_SLACK is an environment knob to measure the unaligned baseline
WORKER_ARGS = ("--duration", "400", "--align-slack",
               os.environ.get("DIALGUARD_TEST_ALIGN_SLACK", "300"))


@pytest.fixture(scope="module")
def day() -> Day:
    return make_day()


@pytest.mark.parametrize("mode", ["backlog", "live"])
def test_skewed_partitions_give_replays_alerts(kafka_broker: Any, tmp_path: Path,
                                               start_worker: Callable[..., Any], day: Day,
                                               mode: str) -> None:
    names = topic_names(f"skew-{mode}")
    kafka_broker.create_topics([names["raw"]], partitions=4)
    app_id = f"dg-skew-{unique_tag()}"
    parts = skewed_partitions(day.lines)
    if mode == "backlog":
        produced = produce(kafka_broker, names["raw"], parts)
        _, log = start_worker(kafka_broker, names, app_id, tmp_path, "w", 2, *WORKER_ARGS)
    else:
        _, log = start_worker(kafka_broker, names, app_id, tmp_path, "w", 2, *WORKER_ARGS)
        wait_for_text(log, "detect: partitions [0, 1]")
        produced = produce_pairs(kafka_broker, names["raw"], skewed_pairs(day.lines))
    counts = settle(kafka_broker, app_id, names, produced)
    alerts = read_json(kafka_broker, names["alerts"])

    similarity = jaccard(alerted(alerts), day.alerted)
    print(f"{mode}: {len(alerts)} alerts on {len(alerted(alerts))} numbers, replay "
          f"{len(day.alerts)} on {len(day.alerted)}; Jaccard {similarity:.3f}")
    assert len(day.alerted) >= 30  # enough numbers for the ratio to mean something
    assert similarity >= 0.98
    twice = alerted_twice_within_cooldown(alerts)
    assert twice == [], sorted((a["caller"][-4:], a["detected_at"], a["profile"], a["first_seen"])
                               for a in alerts if a["caller"] in twice)
    assert counts.produced == len(day.lines) and counts.lost == 0
    assert counts.balanced, counts.render()
