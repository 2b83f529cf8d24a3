"""kill -9 of one of two workers: the survivor takes over, counts reconcile, alerts hold.

Issue 11 finding 5: failover took ~61 s (Faust's 60 s session timeout) and the
survivor's alerts for the dead worker's numbers differed.  With the session
timeout at 10 s (``--session-timeout``) the survivor owns the dead worker's
partitions ~10-12 s after the kill (printed; asserted well below Faust's 60 s default,
not as a timing test); afterwards produced = processed + rejected (from Kafka alone)
and the alerted numbers match replay's (Jaccard >= 0.95).  Delivery is at least once:
the calls the dead worker had not committed are detected again (counted twice in
their numbers' windows, see README "What a crash or a restart loses"), so one number
more than replay's ~47 (Jaccard 0.979) is within what a takeover may do.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streams.brokers import unique_tag

from .helpers import (
    alerted,
    jaccard,
    make_day,
    produce,
    read_json,
    settle,
    skewed_partitions,
    topic_names,
    wait_for_text,
)

ALL = "detect: partitions [0, 1, 2, 3]"


def test_survivor_takes_over_after_kill_9(kafka_broker: Any, tmp_path: Path,
                                          start_worker: Callable[..., Any]) -> None:
    day = make_day(seed=23)
    names = topic_names("failover")
    kafka_broker.create_topics([names["raw"]], partitions=4)
    app_id = f"dg-fo-{unique_tag()}"
    parts = skewed_partitions(day.lines, weights=(0.25, 0.25, 0.25, 0.25))
    first = [p[: len(p) // 2] for p in parts]
    second = [p[len(p) // 2:] for p in parts]

    doomed, doomed_log = start_worker(kafka_broker, names, app_id, tmp_path, "a", 4,
                                      "--duration", "400")
    survivor, log = start_worker(kafka_broker, names, app_id, tmp_path, "b", 4,
                                 "--duration", "400")
    for path in (doomed_log, log):
        wait_for_text(path, "detect: partitions [")
    half = produce(kafka_broker, names["raw"], first)
    settle(kafka_broker, app_id, names, half)
    # the two share the partitions now (the first to join may have held all four before)
    shares = [_last_assignment(path) for path in (doomed_log, log)]
    assert all("detect: partitions [" in a and ALL not in a for a in shares), shares

    before = log.read_text(errors="replace").count(ALL)
    os.kill(doomed.pid, signal.SIGKILL)
    killed = time.monotonic()
    total = half + produce(kafka_broker, names["raw"], second)
    took_over = wait_for_text(log, ALL, timeout=120, count=before + 1)
    counts = settle(kafka_broker, app_id, names, total)
    alerts = read_json(kafka_broker, names["alerts"])

    similarity = jaccard(alerted(alerts), day.alerted)
    # a partition the survivor stopped fetching or committing after the rebalance, which its
    # watchdog resumed (streams.watchdog; README "Limits")
    nudged = log.read_text(errors="replace").count("past its committed offset")
    print(f"failover: partitions taken over {took_over - killed:.1f} s after kill -9; "
          f"Jaccard {similarity:.3f} ({len(alerted(alerts))} vs {len(day.alerted)} numbers); "
          f"stalled partitions nudged by the watchdog: {nudged}; {counts.render()}")
    assert took_over - killed <= 45.0  # Faust's own 60 s session timeout would not do
    assert counts.produced == len(day.lines) and counts.lost == 0, counts.render()
    assert similarity >= 0.95
    assert survivor.poll() is None


def _last_assignment(path: Path) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines()
             if "detect: partitions [" in line or "owns no partition" in line]
    return lines[-1].split("] ", 3)[-1] if lines else ""
