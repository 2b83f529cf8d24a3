"""The watchdog of stage partitions that stop being fetched (streams.watchdog), broker-free."""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple

import pytest

from streams.watchdog import PartitionWatchdog, StalledPartition, StallWatch


class TP(NamedTuple):  # as Faust's
    topic: str
    partition: int


CALLS_0, CALLS_1, RAW_0 = TP("calls", 0), TP("calls", 1), TP("raw", 0)


def test_a_committed_offset_short_of_the_log_end_that_stops_moving_is_a_stall() -> None:
    watch: StallWatch[TP] = StallWatch(stall_after_s=30)
    watch.assigned([CALLS_0, CALLS_1], now=0.0)
    assert watch.stalled({CALLS_0: 10, CALLS_1: 5}, {CALLS_0: 2, CALLS_1: 5}, now=20.0) == []
    assert watch.stalled({CALLS_0: 10, CALLS_1: 5}, {CALLS_0: 4, CALLS_1: 5}, now=25.0) == []
    # CALLS_1 is committed to its end: nothing waits there, however long it stays
    assert watch.stalled({CALLS_0: 10, CALLS_1: 5}, {CALLS_0: 4, CALLS_1: 5}, now=54.0) == []
    [stall] = watch.stalled({CALLS_0: 25, CALLS_1: 5}, {CALLS_0: 4, CALLS_1: 5}, now=55.0)
    assert (stall.partition, stall.resume_at, stall.waiting, stall.nudged) == (CALLS_0, 4, 21,
                                                                               False)
    assert stall.idle_s == 30.0


def test_the_wait_starts_at_the_assignment_and_counts_from_offset_0_without_a_commit() -> None:
    watch: StallWatch[TP] = StallWatch(stall_after_s=30)
    watch.assigned([CALLS_0], now=0.0)
    [stall] = watch.stalled({CALLS_0: 100}, {CALLS_0: 70}, now=31.0)  # first look, 31 s in
    assert (stall.resume_at, stall.waiting) == (70, 30)
    watch.assigned([CALLS_0], now=40.0)
    [stall] = watch.stalled({CALLS_0: 100}, {}, now=71.0)
    assert (stall.resume_at, stall.waiting) == (None, 100)


def test_progress_a_nudge_a_rebalance_or_recovery_restart_the_wait() -> None:
    watch: StallWatch[TP] = StallWatch(stall_after_s=30)
    watch.assigned([CALLS_0], now=0.0)
    ends = {CALLS_0: 50}
    watch.nudged(CALLS_0, now=40.0)
    assert watch.stalled(ends, {CALLS_0: 3}, now=69.0) == []
    [stall] = watch.stalled(ends, {CALLS_0: 3}, now=70.0)
    assert stall.nudged
    # it moved: the next stall is a first one again
    assert watch.stalled(ends, {CALLS_0: 9}, now=71.0) == []
    [stall] = watch.stalled(ends, {CALLS_0: 9}, now=101.0)
    assert not stall.nudged
    watch.hold(now=101.0)
    assert watch.stalled(ends, {CALLS_0: 9}, now=130.0) == []
    watch.assigned([CALLS_0], now=131.0)
    assert watch.stalled(ends, {CALLS_0: 9}, now=160.0) == []
    watch.revoked([CALLS_0])
    assert watch.stalled(ends, {CALLS_0: 9}, now=1000.0) == [] and watch.partitions == []


def test_stall_after_must_be_positive() -> None:
    with pytest.raises(ValueError):
        StallWatch(stall_after_s=0)


class FakeConsumer:
    """What the watchdog uses of Faust's consumer."""

    def __init__(self) -> None:
        self.log_ends: dict[TP, int] = {}
        self._committed_offset: dict[TP, int | None] = {}
        self._active_partitions: set[TP] = set()
        self._paused_partitions: set[TP] = set()
        self._buffered_partitions: set[TP] = set()
        self.sought: list[tuple[TP, int]] = []

    async def highwaters(self, *partitions: TP) -> dict[TP, int]:
        return {tp: self.log_ends[tp] for tp in partitions if tp in self.log_ends}

    def resume_partitions(self, tps: Any) -> None:
        self._active_partitions.update(tps)
        self._paused_partitions.difference_update(tps)

    async def seek(self, tp: TP, offset: int) -> None:
        self.sought.append((tp, offset))


class Harness:
    def __init__(self) -> None:
        self.now = 0.0
        self.busy = False
        self.crashed: list[BaseException] = []
        self.stalls: list[str] = []
        self.consumer = FakeConsumer()
        self.app = type("App", (), {"consumer": self.consumer, "in_recovery": False})()

        async def crash(exc: BaseException) -> None:
            self.crashed.append(exc)

        self.watchdog = PartitionWatchdog(self.app, ["calls"], 30.0, lambda: self.busy, crash,
                                          self.stalls.append, clock=lambda: self.now)

    def check(self) -> list[Any]:
        return asyncio.run(self.watchdog.check())


def test_watchdog_resumes_and_seeks_a_stalled_partition_then_stops_the_worker() -> None:
    h = Harness()
    h.watchdog.assigned([CALLS_0, CALLS_1, RAW_0])  # raw is not a stage topic: not watched
    assert sorted(h.watchdog.watch.partitions) == [CALLS_0, CALLS_1]
    h.consumer._paused_partitions.add(CALLS_1)
    h.consumer.log_ends = {CALLS_0: 8, CALLS_1: 40, RAW_0: 1000}
    h.consumer._committed_offset = {CALLS_0: 8, CALLS_1: 12}
    h.now = 29.0
    assert h.check() == []
    h.now = 31.0
    [stall] = h.check()
    assert stall.partition == CALLS_1 and stall.resume_at == 12 and stall.waiting == 28
    assert h.consumer.sought == [(CALLS_1, 12)] and CALLS_1 not in h.consumer._paused_partitions
    assert h.stalls == ["calls"] and h.crashed == []
    h.now = 60.0
    assert h.check() == []  # 29 s after the nudge
    h.busy = True
    h.now = 100.0
    assert h.check() == []  # a buffer is being processed: maybe the stalled partition's
    h.busy = False
    [stall] = h.check()
    assert stall.nudged and len(h.crashed) == 1
    assert isinstance(h.crashed[0], StalledPartition) and "partition 1 of calls" in str(
        h.crashed[0])
    assert h.consumer.sought == [(CALLS_1, 12)]


def test_watchdog_waits_out_table_recovery_and_an_unreachable_broker() -> None:
    h = Harness()
    h.watchdog.assigned([CALLS_0])
    h.consumer.log_ends = {CALLS_0: 8}
    h.consumer._committed_offset = {CALLS_0: 5}
    h.app.in_recovery = True
    h.now = 100.0
    assert h.check() == []
    h.app.in_recovery = False
    h.now = 129.0
    assert h.check() == []  # recovery does not count as idle

    async def unreachable(*partitions: TP) -> dict[TP, int]:
        raise ConnectionError("broker away")

    h.consumer.highwaters = unreachable  # type: ignore[method-assign]
    h.now = 500.0
    assert h.check() == [] and h.consumer.sought == [] and h.crashed == []


def test_the_worker_watchdog_waits_while_a_buffer_or_a_commit_is_under_way(
    make_pipeline: Any
) -> None:
    pipeline = make_pipeline(stall_after_s=30.0)
    assert pipeline.watchdog is not None and not pipeline._stage_busy()
    pipeline.commits.on_commit_initiated(None)  # a commit held by a slow producer flush
    assert pipeline._stage_busy()
    pipeline.commits.on_commit_completed(None, None)
    pipeline._buffers_in_flight = 1
    assert pipeline._stage_busy()
    assert make_pipeline(stall_after_s=0).watchdog is None  # 0: not watched
