"""Each partition's learned references in their changelog table, without a broker: written
after a buffer (at most once per interval of event time), resumed by a new detector."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from detectors.config import build_settings, load_settings
from detectors.records import Call
from detectors.references import References
from streams.app import Pipeline
from streams.detection import PartitionDetectors
from streams.ingest import IN, OUT, encode_batch, partition_for
from streams.metrics import DialguardMetrics
from streams.sinks import ListAlertSink
from streams.state import ChangelogWriter, ReferencesChangelog

from ..detectors.helpers import T0, courier_calls, dialer_calls, pool_calls
from .helpers import Sent

PARTITIONS = 2
CHANGELOG = "dialguard-references-changelog"


def settings() -> Any:
    """The defaults, with references warmed up after 5 busy callers (a short stream)."""
    raw = dict(load_settings().raw)
    raw["reach"] = {**raw["reach"], "min_samples": 5}
    return build_settings(raw)


def stream() -> list[Call]:
    calls = (dialer_calls(n=600, every=1.5) + courier_calls(n=200, every=10.0)
             + courier_calls("+8613800000078", n=150, every=12.0)
             + dialer_calls("+8616500000002", n=300, every=4.0, answer_rate=0.0, seed=5)
             + pool_calls(members=12, calls_each=8, t0=T0 + 120))
    return sorted(calls, key=lambda c: (c.start, c.caller, c.callee))


def buffers(calls: list[Call], per_batch: int = 25, per_buffer: int = 4) -> list[list[Any]]:
    """The calls as buffers of ``dialguard.calls`` events, each call on its caller's partition
    (caller side) and its callee's (callee side), as ingest sends them."""
    events: list[Any] = []
    offsets = [0] * PARTITIONS
    for i in range(0, len(calls), per_batch):
        rows: dict[int, list[tuple[int, Call]]] = {}
        for c in calls[i:i + per_batch]:
            out, inn = partition_for(c.caller, PARTITIONS), partition_for(c.callee, PARTITIONS)
            if out == inn:
                rows.setdefault(out, []).append((OUT | IN, c))
            else:
                rows.setdefault(out, []).append((OUT, c))
                rows.setdefault(inn, []).append((IN, c))
        for p, flagged in sorted(rows.items()):
            events.append(SimpleNamespace(value=encode_batch(flagged, 1.0), message=SimpleNamespace(
                topic="dialguard.calls", partition=p, offset=offsets[p])))
            offsets[p] += 1
    return [events[i:i + per_buffer] for i in range(0, len(events), per_buffer)]


def run(pipeline: Pipeline, calls: list[Call]) -> None:
    for buffer in buffers(calls):
        asyncio.run(pipeline.detect_events(buffer))


def restarted(pipeline: Pipeline) -> PartitionDetectors:
    """A new detect stage on the tables ``pipeline`` wrote (what a new worker recovers)."""
    topo = pipeline.topology
    return PartitionDetectors(
        pipeline.tuning, PARTITIONS, topo.state, ChangelogWriter(pipeline.app, topo.state),
        ListAlertSink(), DialguardMetrics(), {},
        references=ReferencesChangelog(ChangelogWriter(pipeline.app, topo.references), 60.0))


FARM = {"attempts": 40.0, "strangers": 38.0, "inbound": 0.0, "contact_ratio": 0.0,
        "stranger_repeat_ratio": 0.0}


def test_a_new_detect_stage_resumes_the_references_the_first_one_wrote(
    make_pipeline: Callable[..., Pipeline], sent: Sent, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline = make_pipeline(partitions=PARTITIONS, settings=settings(), rings=False,
                             references_every=0)
    assert CHANGELOG in {spec.name for spec in pipeline.topology.internal_topics()}
    run(pipeline, stream())
    first = pipeline.detection.detectors
    learned = {p: d.reach.references for p, d in first.items()}
    assert all(refs.samples >= 5 for refs in learned.values()), {
        p: r.samples for p, r in learned.items()}
    # written to changelog partition p under key "p", the newest record being the references
    written = pipeline.references_sent  # type: ignore[attr-defined]
    assert {(topic, p, key) for topic, p, key, _ in written} == {
        (CHANGELOG, p, str(p).encode()) for p in range(PARTITIONS)}
    newest = {p: value for _, p, _, value in written}
    assert all(newest[p] == refs.to_bytes() for p, refs in learned.items())

    caplog.set_level(logging.INFO, logger="dialguard.worker")
    resumed = restarted(pipeline)
    for p, refs in learned.items():
        det = resumed.detector(p)
        got = det.reach.references
        assert got is not refs and got.samples == refs.samples
        assert got.to_bytes() == refs.to_bytes()
        for feature in ("inbound_ratio", "strangers"):
            for q in (0.1, 0.5, 0.9, 0.99):
                assert got.quantile(feature, q) == refs.quantile(feature, q)
        # ... and hence judge a number as the first detector does (a fresh one cannot yet)
        for settled in (10.0, 30.0, 60.0):
            theirs = first[p].reach.judge(FARM, settled)
            ours = det.reach.judge(FARM, settled)
            assert (ours and (ours.score, ours.reasons)) == (theirs and (theirs.score,
                                                                         theirs.reasons))
        assert first[p].reach.judge(FARM, 60.0) is not None
        tracked = len(det.states)
        assert (f"partition {p}: resumed {tracked:,} tracked numbers and the references of "
                f"{refs.samples:,} busy callers") in caplog.text
    fresh = PartitionDetectors(pipeline.tuning, PARTITIONS, pipeline.topology.state,
                               pipeline.changelog, ListAlertSink(), DialguardMetrics(), {})
    assert fresh.detector(0).reach.references.samples == 0
    assert fresh.detector(0).reach.judge(FARM, 60.0) is None


def test_references_are_written_at_most_once_per_interval_of_event_time(
    make_pipeline: Callable[..., Pipeline], sent: Sent
) -> None:
    calls = stream()
    every = make_pipeline(partitions=PARTITIONS, settings=settings(), rings=False,
                          references_every=0)
    run(every, calls)
    throttled = make_pipeline(partitions=PARTITIONS, settings=settings(), rings=False,
                              references_every=600.0)
    run(throttled, calls)
    all_writes = every.references_sent  # type: ignore[attr-defined]
    writes = throttled.references_sent  # type: ignore[attr-defined]
    assert 0 < len(writes) < len(all_writes)
    span = calls[-1].start - calls[0].start
    for p in range(PARTITIONS):
        mine = [References.from_bytes(v) for _, q, _, v in writes if q == p]  # type: ignore[arg-type]
        # the first change is written at once, then at most one write per 600 s of event time
        assert 1 <= len(mine) <= 1 + span // 600
        assert [r.samples for r in mine] == sorted({r.samples for r in mine})
        # what a restart resumes is the last write, at most 600 s of learning behind
        live = throttled.detection.detectors[p].reach.references
        assert mine[-1].samples <= live.samples
        assert restarted(throttled).detector(p).reach.references.to_bytes() == mine[-1].to_bytes()
