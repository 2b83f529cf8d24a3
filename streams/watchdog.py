"""Stage partitions whose committed offset stops moving: noticed, nudged, else the worker stops.

After a rebalance, faust-streaming can leave a partition a worker owns without progress
while the broker holds messages for it (faust-streaming issue 629 reports one form of
it).  Seen here in the kill -9 failover test, in two forms: the survivor never again
fetched partitions it kept across the rebalance; or it processed a taken-over
partition to its end while the partition's committed offset stayed where the dead
worker had left it (Faust commits the acknowledged offsets that follow the committed
one without a hole, and the first messages after it were never delivered to the
stage).  Nothing fails, so nothing is logged: lag is the only sign, and a restart is
what resumed it.

:class:`StallWatch` is the pure part: per assigned partition of a stage's input topic,
the committed offset and when it last moved; given the broker's log ends it names the
partitions with messages past their committed offset whose committed offset has not
moved for ``stall_after_s`` (time spent recovering tables does not count).
:class:`PartitionWatchdog` runs it on a Faust consumer, acting only while no stage
buffer is being processed and no offset commit is under way: a stalled partition is
logged with the consumer's view of it, resumed and sought back to its committed
offset, which delivers the missing messages again (number and key states skip what they
already applied, as after a takeover); one still stalled ``stall_after_s`` later stops
the worker with an error, for its supervisor to restart it, as a restart resumes every
partition.

>>> watch = StallWatch(stall_after_s=60)
>>> watch.assigned(["calls-0", "calls-1"], now=0.0)
>>> ends = {"calls-0": 50, "calls-1": 10}
>>> watch.stalled(ends, {"calls-0": 20, "calls-1": 10}, now=30.0)
[]
>>> [s.partition for s in watch.stalled(ends, {"calls-0": 45, "calls-1": 10}, now=61.0)]
[]
>>> [(s.partition, s.resume_at, s.waiting) for s in watch.stalled(ends, {"calls-0": 45,
...  "calls-1": 10}, now=121.0)]  # calls-0 at 45 since 61 s; calls-1 is at its end
[('calls-0', 45, 5)]
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

P = TypeVar("P", bound=Hashable)

log = logging.getLogger("dialguard.watchdog")


_UNSEEN = -2  # no committed offset observed since the partition was assigned


@dataclass
class _Progress:
    committed: int | None  # the partition's committed offset when last observed
    moved_at: float  # when it last moved (or the partition was assigned, or nudged)
    nudged: bool = False


@dataclass(frozen=True)
class Stall(Generic[P]):
    """A partition with ``waiting`` messages past its committed offset, which has not
    moved for ``idle_s`` seconds."""

    partition: P
    #: the committed offset, where a nudge seeks to (None: no offset committed yet)
    resume_at: int | None
    waiting: int
    idle_s: float
    #: it was nudged (resumed and sought) once already and did not move since
    nudged: bool


class StallWatch(Generic[P]):
    """Committed offsets per assigned partition against the broker's log ends; see the
    module doc."""

    def __init__(self, stall_after_s: float) -> None:
        if stall_after_s <= 0:
            raise ValueError("stall_after_s must be positive")
        self.stall_after_s = stall_after_s
        self._parts: dict[P, _Progress] = {}

    def assigned(self, partitions: Iterable[P], now: float) -> None:
        """A rebalance gave these partitions: every one starts its wait afresh."""
        self._parts = {p: _Progress(_UNSEEN, now) for p in partitions}

    def revoked(self, partitions: Iterable[P]) -> None:
        for partition in partitions:
            self._parts.pop(partition, None)

    def hold(self, now: float) -> None:
        """Work that is not the stages' is under way (tables recovering): nobody is idle."""
        for progress in self._parts.values():
            progress.moved_at = now

    def nudged(self, partition: P, now: float) -> None:
        """``partition`` was resumed and sought: it gets ``stall_after_s`` more to move."""
        progress = self._parts.get(partition)
        if progress is not None:
            progress.moved_at = now
            progress.nudged = True

    @property
    def partitions(self) -> list[P]:
        return list(self._parts)

    def stalled(self, log_ends: Mapping[P, int], committed: Mapping[P, int | None],
                now: float) -> list[Stall[P]]:
        """Partitions with messages past their committed offset, which has not moved for
        ``stall_after_s``."""
        found = []
        for partition, progress in self._parts.items():
            offset = committed.get(partition)
            if offset != progress.committed:
                if progress.committed != _UNSEEN:
                    progress.moved_at = now
                    progress.nudged = False
                progress.committed = offset
            end = log_ends.get(partition)
            idle = now - progress.moved_at
            if end is not None and end > (offset or 0) and idle >= self.stall_after_s:
                found.append(Stall(partition, offset, end - (offset or 0), idle,
                                   progress.nudged))
        return found


class PartitionWatchdog:
    """Runs a :class:`StallWatch` over the stage topics of a Faust app's consumer.

    ``busy()`` tells whether a stage buffer is being processed or a commit is under way
    (then nothing is done: it may be the stalled partition's own work); ``crash`` stops the
    worker (Faust's ``app.crash``); ``on_stall`` counts a nudge (metrics).
    """

    def __init__(self, app: Any, topics: Iterable[str], stall_after_s: float,
                 busy: Callable[[], bool], crash: Callable[[BaseException], Awaitable[None]],
                 on_stall: Callable[[str], None] = lambda topic: None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.topics = frozenset(topics)
        self.watch: StallWatch[Any] = StallWatch(stall_after_s)
        self.busy = busy
        self.crash = crash
        self.on_stall = on_stall
        self.clock = clock

    def assigned(self, assigned: Iterable[Any]) -> None:
        self.watch.assigned((tp for tp in assigned if tp.topic in self.topics), self.clock())

    def revoked(self, revoked: Iterable[Any]) -> None:
        self.watch.revoked(revoked)

    async def check(self) -> list[Stall[Any]]:
        """One round: nudge partitions that stalled, stop the worker on a second stall."""
        consumer = self.app.consumer
        if getattr(self.app, "in_recovery", False):
            self.watch.hold(self.clock())
            return []
        partitions = self.watch.partitions
        if not partitions or self.busy():
            return []
        try:
            log_ends = await asyncio.wait_for(consumer.highwaters(*partitions),
                                              self.watch.stall_after_s / 2)
        except Exception as exc:  # the broker is away, or a rebalance: not ours to judge
            log.debug("log ends not read: %s", exc)
            return []
        if self.busy():
            return []
        committed = dict(getattr(consumer, "_committed_offset", {}))
        stalls = self.watch.stalled(log_ends, committed, self.clock())
        for stall in stalls:
            tp = stall.partition
            if stall.nudged:
                log.error("partition %d of %s: %d messages past its committed offset, which "
                          "has not moved for %.0f s, also after a resume and seek; stopping "
                          "this worker so that its supervisor restarts it (a restart resumes "
                          "every partition); %s", tp.partition, tp.topic, stall.waiting,
                          stall.idle_s, describe_partition(consumer, tp))
                await self.crash(StalledPartition(f"partition {tp.partition} of {tp.topic} "
                                                  f"stalled for {stall.idle_s:.0f} s"))
                break
            log.warning("partition %d of %s: %d messages past its committed offset %s, "
                        "which has not moved for %.0f s; resuming it and seeking there; %s",
                        tp.partition, tp.topic, stall.waiting, stall.resume_at,
                        stall.idle_s, describe_partition(consumer, tp))
            self.on_stall(tp.topic)
            await nudge(consumer, tp, stall.resume_at)
            self.watch.nudged(tp, self.clock())
        return stalls


class StalledPartition(RuntimeError):
    """A stage partition's committed offset stopped short of the broker's log end."""


async def nudge(consumer: Any, tp: Any, offset: int | None) -> None:
    """Make Faust fetch ``tp`` again: resume it and seek to ``offset`` (if known)."""
    consumer.resume_partitions([tp])
    buffered = getattr(consumer, "_buffered_partitions", None)
    if buffered is not None:
        buffered.discard(tp)
    if offset is not None:
        try:
            await consumer.seek(tp, offset)
        except Exception as exc:  # e.g. revoked meanwhile: the next rebalance decides
            log.warning("could not seek partition %d of %s: %s", tp.partition, tp.topic, exc)


def describe_partition(consumer: Any, tp: Any) -> str:
    """Faust's and aiokafka's view of a partition, for the log (never raises)."""
    facts = []
    for name, attribute in (("active", "_active_partitions"), ("paused", "_paused_partitions"),
                            ("buffered", "_buffered_partitions")):
        members = getattr(consumer, attribute, None)
        if members is not None:
            facts.append(f"{name}={tp in members}")
    for name, attribute in (("read", "_read_offset"), ("committed", "_committed_offset")):
        offsets = getattr(consumer, attribute, None)
        if offsets is not None:
            facts.append(f"{name}={offsets.get(tp)}")
    facts.append(f"flow_active={getattr(consumer, 'flow_active', '?')}")
    try:
        aiokafka = consumer._thread._ensure_consumer()
        state = aiokafka._fetcher._subscriptions.subscription.assignment.state_value(tp)
        if state is None:
            facts.append("aiokafka: not assigned")
        else:
            facts.append(f"aiokafka: paused={state.paused} position="
                         f"{state.position if state.has_valid_position else None} "
                         f"highwater={state.highwater} last_fetch_ms={state.timestamp}")
    except Exception as exc:
        facts.append(f"aiokafka: ? ({type(exc).__name__})")
    return ", ".join(facts)
