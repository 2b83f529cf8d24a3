"""Poison messages into a running worker: each is rejected with a reason, the others go on.

Issue 11 findings 1-2: a message nested too deep for the decoder killed the ingest
process (and every restart); a talk time past the 32-bit counters made Faust
restart the detect agent, drop its whole buffer and still commit it (0 of 3
expected alerts).  Here the same messages sit between the calls of three
cloud-dialer campaigns: the worker must stay up, raise replay's alerts for the
good records, reject every poison message with a reason, and reconcile.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from streams.app import alert_rows
from streams.brokers import unique_tag

from .helpers import produce, read_json, replay_alerts, settle, topic_names

T0 = 1_709_596_800


def _campaign_lines() -> list[bytes]:
    lines = []
    for i in range(150):
        for k, caller in enumerate(("13800000002", "13800000003", "13800000004")):
            lines.append(orjson.dumps({"caller": caller, "callee": f"139{i * 7919 + k:08d}",
                                       "start": T0 + 3 * i + k, "duration": 0, "ring": 12}))
    return lines


def _poison() -> list[bytes]:
    deep_object = b'{"a": ' * 1000 + b"1" + b"}" * 1000
    valid = {"caller": "13800000002", "callee": "13900000010", "start": T0 + 100}
    return [
        b"[" * 100_000 + b"]" * 100_000,
        deep_object,
        orjson.dumps(valid)[:-1] + b', "extra": ' + deep_object + b', "duration": 0}',
        b"[" * 300 + b"]" * 300,
        orjson.dumps({**valid, "duration": 4_294_967_295, "answered": True}),
        orjson.dumps({**valid, "duration": 10 ** 18, "answered": True}),
        orjson.dumps(valid)[:-1] + b', "duration": 1e308, "answered": true}',
        orjson.dumps(valid)[:-1] + b', "duration": ' + b"9" * 100 + b"}",
        b"{not json",
        b"",
    ]


def test_poison_messages_are_rejected_and_the_others_alert(
        kafka_broker: Any, tmp_path: Path, start_worker: Callable[..., Any]) -> None:
    names = topic_names("poison")
    kafka_broker.create_topics([names["raw"]], partitions=1)
    app_id = f"dg-poison-{unique_tag()}"
    good = _campaign_lines()
    poison = _poison()
    lines = list(good)
    for i, bad in enumerate(poison):  # spread between the campaigns' calls
        lines.insert(20 + i * 40, bad)
    expected = replay_alerts(lines)
    assert {a.caller for a in expected} == {"+8613800000002", "+8613800000003",
                                            "+8613800000004"}

    proc, log = start_worker(kafka_broker, names, app_id, tmp_path, "w", 2)
    produced = produce(kafka_broker, names["raw"], [lines])
    counts = settle(kafka_broker, app_id, names, produced)
    alerts = read_json(kafka_broker, names["alerts"])
    rejected = read_json(kafka_broker, names["rejected"])

    assert proc.poll() is None, log.read_text()[-3000:]  # still running
    # a fresh app id: the internal topics existed before the detect group formed
    text = log.read_text(errors="replace")
    assert text.index("internal topics ready") < text.index("detect: partitions [0, 1]")
    assert "Ignoring missing topic" not in text
    assert alert_rows(alerts) == alert_rows(expected)
    reasons = Counter(r["reason"] for r in rejected)
    print(f"poison: rejected {dict(reasons)}; {counts.render()}")
    assert all(r["reason"] and r["detail"] for r in rejected)
    assert counts.balanced, counts.render()
    # every poison message is accounted for as a rejection or a processed call, never lost
    assert counts.produced == len(lines) == counts.processed + counts.rejected
    assert counts.rejected >= 3  # the undecodable ones at least
