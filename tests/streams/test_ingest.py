"""The ingest stage without a broker: sends captured, reports as an ingest process sends them."""

from __future__ import annotations

import asyncio
import unittest.mock
from typing import Any

import orjson

from detectors.numbers import NumberNormaliser
from detectors.records import Call
from streams.ingest import (
    BATCH_DECODER,
    OUT,
    ForwardedMetrics,
    Ingest,
    apply_report,
    partition_for,
)
from streams.metrics import DialguardMetrics
from streams.options import WorkerOptions

call = Call("+8613800000001", "+8613900000002", 1.7e9, 0, False)
GOOD = {"caller": "13800000001", "callee": "13900000002", "start": 1.7e9, "duration": 0}


def _ingest(metrics: Any, partitions: int = 4) -> tuple[Ingest, list[tuple[str, bytes, Any]]]:
    sent: list[tuple[str, bytes, Any]] = []

    def sender(topic: str) -> Any:
        async def send(value: bytes, partition: int | None) -> Any:
            sent.append((topic, value, partition))
            future = asyncio.get_running_loop().create_future()
            future.set_result(None)
            return future
        return send

    options = WorkerOptions(partitions=partitions, max_batch_rows=3)
    return Ingest(options, NumberNormaliser("CN"), metrics, sender("calls"),
                  sender("rejected")), sent


def test_ingest_splits_batches_and_reports_what_a_worker_adds_up() -> None:
    forwarded = ForwardedMetrics()
    ingest, sent = _ingest(forwarded)
    records = [{**GOOD, "callee": f"1390000{i:04d}"} for i in range(10)]
    messages = [(orjson.dumps(records), "cdr.raw", 0, 7),
                (b'[{"caller": "x"}]', "cdr.raw", 0, 8), (None, "cdr.raw", 1, 3)]
    futures = asyncio.run(ingest.ingest_messages(messages))
    assert len(futures) == len(sent)
    calls = [(p, BATCH_DECODER.decode(v)) for t, v, p in sent if t == "calls"]
    assert all(len(b.calls) <= 3 for _, b in calls)  # max_batch_rows
    outs = sorted(c.callee for p, b in calls for f, c in zip(b.flags, b.calls, strict=True)
                  if f & OUT and partition_for(c.caller, 4) == p)
    assert outs == sorted(f"+861390000{i:04d}" for i in range(10))
    rejected = [orjson.loads(v) for t, v, _ in sent if t == "rejected"]
    assert sorted(r["source"] for r in rejected) == ["cdr.raw/0@8[0]", "cdr.raw/1@3"]
    assert ingest.counts == {"messages": 3, "calls": 10, "rejected": 2}

    forwarded.set_consumer_lag("cdr.raw", 1, 40.0)
    forwarded.set_consumer_lag("cdr.raw", 1, 25.0)  # only the newest sample travels
    report = {**forwarded.take(), "counts": dict(ingest.counts)}
    assert forwarded.take() == {"read": 0, "rejected": {}, "lag": []}  # taken once
    metrics, counts = DialguardMetrics(), {"messages": 1}
    apply_report(report, metrics, counts)
    assert counts == {"messages": 4, "calls": 10, "rejected": 2}
    assert metrics.value("dialguard_cdrs_read_total", source="kafka") == 12
    assert metrics.value("dialguard_cdrs_rejected_total", reason="missing_field") == 1
    assert metrics.value("dialguard_cdrs_rejected_total", reason="malformed") == 1
    assert metrics.value("dialguard_consumer_lag_messages", topic="cdr.raw", partition="1") == 25


def test_a_message_the_decoder_fails_on_is_rejected_and_the_others_go_on() -> None:
    ingest, sent = _ingest(ForwardedMetrics())
    deep = b"[" * 100_000 + b"]" * 100_000  # the decoder may raise RecursionError on it
    with unittest.mock.patch.object(ingest, "decode",
                                    side_effect=[RecursionError("deep"), *[
                                        [c] for c in ([call] * 2)]]):
        asyncio.run(ingest.ingest_messages([(deep, "cdr.raw", 0, 1),
                                            (orjson.dumps(GOOD), "cdr.raw", 0, 2),
                                            (orjson.dumps(GOOD), "cdr.raw", 0, 3)]))
    rejected = [orjson.loads(v) for t, v, _ in sent if t == "rejected"]
    assert [(r["reason"], r["detail"], r["source"]) for r in rejected] == [
        ("malformed", "undecodable (RecursionError)", "cdr.raw/0@1")]
    assert len(rejected[0]["raw"]) == 4096  # a bounded excerpt, never re-serialised
    assert ingest.counts == {"messages": 3, "calls": 2, "rejected": 1}


def test_a_duration_the_repartition_encoding_cannot_carry_is_rejected() -> None:
    ingest, sent = _ingest(ForwardedMetrics())
    huge = orjson.dumps({k: v for k, v in GOOD.items() if k != "duration"})[:-1] + (
        b', "duration": ' + b"9" * 100 + b"}")
    asyncio.run(ingest.ingest_messages([(huge, "cdr.raw", 0, 1),
                                        (orjson.dumps(GOOD), "cdr.raw", 0, 2)]))
    rejected = [orjson.loads(v) for t, v, _ in sent if t == "rejected"]
    assert [(r["reason"], r["source"]) for r in rejected] == [("bad_duration", "cdr.raw/0@1")]
    batches = [BATCH_DECODER.decode(v) for t, v, _ in sent if t == "calls"]
    assert sum(f & OUT != 0 for b in batches for f in b.flags) == 1
    assert ingest.counts["calls"] == 1


class _FakeConsumer:
    """The parts of an aiokafka consumer that alignment uses."""

    def __init__(self, highwater: dict[Any, int], positions: dict[Any, int]) -> None:
        self._highwater, self._positions = highwater, positions
        self.paused: set[Any] = set()

    def assignment(self) -> set[Any]:
        return set(self._highwater)

    def highwater(self, tp: Any) -> int:
        return self._highwater[tp]

    async def position(self, tp: Any) -> int:
        return self._positions[tp]

    def pause(self, *tps: Any) -> None:
        self.paused.update(tps)

    def resume(self, *tps: Any) -> None:
        self.paused.difference_update(tps)


def test_ingest_holds_back_the_raw_partition_that_runs_ahead() -> None:
    from aiokafka import TopicPartition

    ingest, _ = _ingest(ForwardedMetrics())
    p0, p1 = TopicPartition("cdr.raw", 0), TopicPartition("cdr.raw", 1)
    consumer = _FakeConsumer({p0: 100, p1: 100}, {p0: 0, p1: 0})

    def message(partition: int, offset: int, start: float) -> Any:
        return (orjson.dumps({**GOOD, "start": start}), "cdr.raw", partition, offset)

    async def run() -> list[set[Any]]:
        seen = []
        # p0 read first: p1, with a backlog, is unread yet, so p0 waits for it
        await ingest.ingest_messages([message(0, 0, 1.7e9 + 3600)])
        assert await ingest._align(consumer, {p0: 1})
        seen.append(set(consumer.paused))
        # p1 read, an hour behind: p0 stays held (beyond the 300 s slack)
        await ingest.ingest_messages([message(1, 0, 1.7e9)])
        assert await ingest._align(consumer, {p0: 1, p1: 1})
        seen.append(set(consumer.paused))
        # p1 catches up to within the slack: p0 goes on
        await ingest.ingest_messages([message(1, 1, 1.7e9 + 3500)])
        assert not await ingest._align(consumer, {p0: 1, p1: 2})
        seen.append(set(consumer.paused))
        return seen

    assert asyncio.run(run()) == [{p0}, {p0}, set()]
