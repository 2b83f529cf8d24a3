"""The group (ring) stage without a broker: ingest's routing by grouping key, the stage's
rings against replay's, its table and changelog, duplicates and resumption."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any
from unittest.mock import patch

import orjson
import pytest
from msgspec.structs import replace

from detectors.alerts import Alert
from detectors.composite import DetectorChain
from detectors.config import load_settings
from detectors.records import WITHHELD, Call
from detectors.rings.cohort import KeyState
from detectors.rings.detector import GroupDetector, Membership
from detectors.rings.keys import route
from streams.app import Pipeline
from streams.ingest import BATCH_DECODER, GROUP_DECODER, group_keys, partition_for
from streams.memberships import DECODER as MEMBERSHIPS_DECODER
from streams.memberships import is_memberships
from streams.state import KeyStateCodec, StateCodec

from ..detectors.helpers import T0, dialer_calls, pool_calls
from .helpers import FakeBatchProducer, Sent, of

PARTITIONS = 4


def day() -> list[Call]:
    """Three rotating pools (one behind its own gateway, one sweeping blocks on a shared
    trunk, one in calls that name no ingress), ordinary traffic on that trunk, and withheld
    callers."""
    calls = pool_calls(members=10, calls_each=12) + pool_calls(
        "+86162000", members=6, calls_each=30, trunk="mob-1", t0=T0 + 600, every=30.0)
    calls += pool_calls("+86163000", members=12, calls_each=8, trunk="", t0=T0 + 900)
    calls += [Call(f"+86138{p:08d}", f"+86137{p * 7919 % 10**8:08d}", T0 + 17 * p, 60, True,
                   3.0, id=f"town-{p}", trunk="mob-1") for p in range(300)]
    calls += [Call(WITHHELD, f"+86139{i:08d}", T0 + 40 * i, 0, False, 5.0, id=f"w-{i}",
                   trunk="gw-pool") for i in range(20)]
    return sorted(calls, key=lambda c: (c.start, c.caller, c.callee))


def ingest(pipeline: Pipeline, calls: list[Call], per_message: int = 50) -> None:
    values = [orjson.dumps([c.to_dict() for c in calls[i:i + per_message]])
              for i in range(0, len(calls), per_message)]
    asyncio.run(pipeline.ingest.ingest_messages(
        (value, "cdr.raw", 0, offset) for offset, value in enumerate(values)))


def events(sent: Sent, topic: str = "dialguard.groups",
           offsets: dict[int, int] | None = None) -> list[Any]:
    """The messages sent to ``topic`` as Faust events of the partitions they were sent to;
    ``offsets`` (partition -> last offset given, updated) continues an earlier numbering."""
    offsets = {} if offsets is None else offsets
    out = []
    for kw in of(sent, topic):
        p = kw["partition"]
        offsets[p] = offsets.get(p, -1) + 1
        out.append(SimpleNamespace(value=kw["value"], message=SimpleNamespace(
            topic=topic, partition=p, offset=offsets[p])))
    return out


def rings(alerts: list[Alert] | list[dict[str, Any]]) -> dict[str, list[str]]:
    """Each ring's members at its last alert, by ring id."""
    out: dict[str, list[str]] = {}
    for a in alerts:
        d = a.to_dict() if isinstance(a, Alert) else a
        if d["kind"] == "ring":
            out[d["ring_id"]] = sorted(d["members"])
    return out


def replayed(calls: list[Call]) -> list[Alert]:
    chain = DetectorChain.for_settings(load_settings())
    return [a for c in calls for a in chain.observe(c)]


def joined(calls: list[Call]) -> set[tuple[str, str]]:
    """(number, ring id) of every number that joins a ring over ``calls`` (replay's)."""
    groups = GroupDetector(load_settings(), track_memberships=True)
    for call in calls:
        groups.observe(call)
    return {(c.number, c.ring_id) for c in groups.drain_memberships() if c.joined}


def test_ingest_sends_each_call_once_per_grouping_key_to_the_key_partition(
    make_pipeline: Callable[..., Pipeline], sent: Sent
) -> None:
    pipeline = make_pipeline(partitions=PARTITIONS)
    calls = day()
    ingest(pipeline, calls)
    got: list[tuple[str, str, str, float]] = []
    for kw in of(sent, "dialguard.groups"):
        batch = GROUP_DECODER.decode(kw["value"])
        assert [c.start for c in batch.calls] == sorted(c.start for c in batch.calls)
        for key, call in zip(batch.keys, batch.calls, strict=True):
            assert partition_for(key, PARTITIONS) == kw["partition"]
            got.append((key, call.caller, call.callee, call.start))
    shards = load_settings().rings.population_shards
    expected = [(key, c.caller, c.callee, c.start) for c in calls
                for key in group_keys(c, True, shards)]
    assert sorted(got) == sorted(expected)
    assert {g[0] for g in got if g[1].startswith("+86163000")} >= {"pop:0/8", "pop:7/8"}
    # a withheld caller counts on its ingress only; everyone else also on the callee block
    withheld = [g for g in got if g[1] == WITHHELD]
    assert len(withheld) == 20 and {g[0] for g in withheld} == {"in:gw-pool"}
    assert len(got) == 2 * len(calls) - 20
    assert {p for p in range(PARTITIONS)} == {kw["partition"] for kw in of(sent,
                                                                           "dialguard.groups")}
    # the per-number path is as it was: every call on its caller's and callee's partition
    numbered = [c for kw in of(sent, "dialguard.calls")
                for c in BATCH_DECODER.decode(kw["value"]).calls]
    assert len(numbered) >= len(calls)


def test_without_group_detection_there_is_no_groups_topic(
    make_pipeline: Callable[..., Pipeline], sent: Sent
) -> None:
    pipeline = make_pipeline(partitions=PARTITIONS, rings=False)
    assert pipeline.groups is None and pipeline.group_agent is None
    assert pipeline.topology.groups is None
    names = {spec.name for spec in pipeline.topology.internal_topics()}
    assert "dialguard.groups" not in names and "dialguard-groups-changelog" not in names
    ingest(pipeline, day()[:200])
    assert of(sent, "dialguard.calls") and not of(sent, "dialguard.groups")


def test_the_group_stage_reports_the_rings_replay_reports(
    make_pipeline: Callable[..., Pipeline], sent: Sent
) -> None:
    pipeline = make_pipeline(partitions=PARTITIONS)
    names = {spec.name for spec in pipeline.topology.internal_topics()}
    assert {"dialguard.groups", "dialguard-groups-changelog"} <= names
    calls = day()
    ingest(pipeline, calls)
    batches = events(sent)
    # buffers of a few batches, as the agent takes them
    for i in range(0, len(batches), 5):
        asyncio.run(pipeline.group_events(batches[i:i + 5]))

    expected = replayed(calls)
    expected_rings = rings(expected)
    assert len(expected_rings) >= 2
    alerts = [orjson.loads(kw["value"]) for kw in of(sent, "dialguard.alerts")]
    assert rings(alerts) == expected_rings
    assert sorted((a["ring_id"], a["detected_at"]) for a in alerts) == sorted(
        (a.ring_id, a.detected_at) for a in expected if a.kind == "ring")
    assert {kw["key"] for kw in of(sent, "dialguard.alerts")} == {
        r.encode() for r in expected_rings}
    assert not any(m == WITHHELD or m.startswith("+86138") for ms in expected_rings.values()
                   for m in ms)
    m = pipeline.metrics
    assert m.value("dialguard_rings_found_total") == len(expected_rings)
    assert m.value("dialguard_alerts_total", kind="ring", profile="ring") == len(alerts)
    assert pipeline.counts["ring_alerts"] == len(alerts)

    # every key's state is in the table, and the newest changelog record per key is it
    live = {k: s for det in pipeline.groups.detectors.values()  # type: ignore[union-attr]
            for k, s in det.states.items()}
    table = pipeline.topology.group_state
    assert set(table.keys()) == set(live)
    newest = {key.decode(): value for _, p, key, value in pipeline.group_changelog_sent}  # type: ignore[attr-defined]
    assert {k for k, v in newest.items() if v is not None} == set(live)
    codec = KeyStateCodec()
    assert all(codec.loads(newest[k]) == s for k, s in live.items())
    assert all(partition_for(k, PARTITIONS) == p
               for _, p, key, _ in pipeline.group_changelog_sent  # type: ignore[attr-defined]
               for k in [key.decode()])


def test_a_duplicate_delivery_and_a_resumed_partition_change_nothing(
    make_pipeline: Callable[..., Pipeline], sent: Sent
) -> None:
    pipeline = make_pipeline(partitions=PARTITIONS)
    calls = day()
    half = len(calls) // 2
    ingest(pipeline, calls[:half] + calls[half - 50:half])  # 50 calls delivered again
    offsets: dict[int, int] = {}
    first = events(sent, offsets=offsets)
    asyncio.run(pipeline.group_events(first))
    groups = pipeline.groups
    assert groups is not None
    # each duplicate call is dropped once under each key it was sent under
    assert pipeline.counts["group_duplicates"] == sum(
        len(group_keys(c, True, load_settings().rings.population_shards))
        for c in calls[half - 50:half])
    before = {p: (d.table_state(), dict(d.memberships)) for p, d in groups.detectors.items()}
    assert any(memberships for _, memberships in before.values())
    # the partitions are revoked and assigned again: their detectors come back from the table
    groups.revoke(range(PARTITIONS))
    assert not groups.detectors
    assert {p: (groups.detector(p).table_state(), groups.detector(p).memberships)
            for p in before} == before
    sent.clear()
    ingest(pipeline, calls[half:])
    asyncio.run(pipeline.group_events(events(sent, offsets=offsets)))  # the topic goes on
    assert pipeline.counts["group_redelivered"] == 0
    alerts = [orjson.loads(kw["value"]) for kw in of(sent, "dialguard.alerts")]
    # the alerts of the second part are replay's alerts of the whole day after the first part
    expected = replayed(calls)
    cut = calls[half - 1].start
    later = [a for a in expected if a.kind == "ring" and a.detected_at >= cut]
    assert sorted((a["ring_id"], a["detected_at"]) for a in alerts) == sorted(
        (a.ring_id, a.detected_at) for a in later)


def test_a_takeover_counts_redelivered_group_calls_once(
    make_pipeline: Callable[..., Pipeline], sent: Sent
) -> None:
    ingest(make_pipeline(partitions=PARTITIONS), day())
    grouped = events(sent)
    sent.clear()
    once = make_pipeline(partitions=PARTITIONS)
    asyncio.run(once.group_events(grouped))
    alerts_once = [kw["value"] for kw in of(sent, "dialguard.alerts")]
    sent.clear()
    # the owner saved its keys after the first part and died before committing the last
    # eight messages: the next owner resumes the keys from the table and gets them again
    again = make_pipeline(partitions=PARTITIONS)
    half = len(grouped) // 2
    asyncio.run(again.group_events(grouped[:half]))
    assert again.groups is not None and once.groups is not None
    again.groups.revoke(range(PARTITIONS))
    asyncio.run(again.group_events(grouped[half - 8:]))
    alerts_again = [kw["value"] for kw in of(sent, "dialguard.alerts")]
    assert again.counts["group_redelivered"] > 0 and again.counts["group_duplicates"] == 0
    assert alerts_again == alerts_once and rings([orjson.loads(v) for v in alerts_once])
    def keys(pipeline: Pipeline) -> dict[str, bytes]:
        assert pipeline.groups is not None
        return {k: v for d in pipeline.groups.detectors.values()
                for k, v in d.table_state().items()}

    # a block's first sweeper is kept in memory only (README "Limits"): ingress keys are exact
    ingress_once = {k: v for k, v in keys(once).items() if k.startswith(("in:", "ip:"))}
    assert ingress_once and ingress_once == {
        k: v for k, v in keys(again).items() if k.startswith(("in:", "ip:"))}

    # so are population shares, but for when a key gone quiet was last swept: with the
    # owner's other keys, on its schedule (retirement and decay are as of event time)
    def shares(pipeline: Pipeline) -> dict[str, KeyState]:
        return {k: replace(KeyState.from_bytes(v), swept_at=0.0, baseline_at=0.0)
                for k, v in keys(pipeline).items() if k.startswith("pop:")}

    assert shares(once) and shares(once) == shares(again)


def test_an_undecodable_groups_message_is_skipped(
    make_pipeline: Callable[..., Pipeline], sent: Sent
) -> None:
    pipeline = make_pipeline(partitions=1)
    calls = pool_calls(members=10, calls_each=12)
    calls.sort(key=lambda c: c.start)
    ingest(pipeline, calls)
    good = events(sent)
    bad = SimpleNamespace(value=b"{not msgpack", message=SimpleNamespace(
        topic="dialguard.groups", partition=0, offset=99))
    asyncio.run(pipeline.group_events([bad, *good]))
    assert pipeline.counts["bad_group_batches"] == 1
    assert rings([orjson.loads(kw["value"]) for kw in of(sent, "dialguard.alerts")]) == rings(
        replayed(calls))


@pytest.mark.parametrize("callee_blocks", [True, False])
@pytest.mark.parametrize("shards", [0, 8])
def test_group_keys_follow_route(callee_blocks: bool, shards: int) -> None:
    call = Call("+8617000000001", "+8613812345678", T0, 0, False, src_ip="10.0.0.9")
    assert group_keys(call, callee_blocks, shards) == route(call, callee_blocks, shards)
    hidden = replace(call, caller=WITHHELD)
    assert group_keys(hidden, callee_blocks, shards) == ("ip:10.0.0.9",)
    bare = replace(call, src_ip=None)  # no ingress: its caller's population share, if any
    assert group_keys(bare, callee_blocks, shards) == route(bare, callee_blocks, shards)
    assert (group_keys(bare, callee_blocks, shards)[:1] == ("pop:7/8",)) is (shards == 8)
    assert group_keys(replace(bare, caller=WITHHELD), callee_blocks, shards) == ()


# ---------------------------------------------------------------------- ring memberships


def memberships(sent: Sent) -> list[tuple[int, Membership]]:
    """The ring-membership changes sent to ``dialguard.calls``, with their partitions."""
    return [(kw["partition"], change) for kw in of(sent, "dialguard.calls")
            if is_memberships(kw["value"])
            for change in MEMBERSHIPS_DECODER.decode(kw["value"]).changes]


def test_the_group_stage_sends_each_member_to_the_calls_partition_of_its_number(
    make_pipeline: Callable[..., Pipeline], sent: Sent
) -> None:
    pipeline = make_pipeline(partitions=PARTITIONS)
    calls = day()
    ingest(pipeline, calls)
    from_ingest = len(of(sent, "dialguard.calls"))
    assert not memberships(sent)  # ingest's batches are never taken for memberships
    batches = events(sent)
    for i in range(0, len(batches), 5):
        asyncio.run(pipeline.group_events(batches[i:i + 5]))
    sent_news = memberships(sent)
    assert len(of(sent, "dialguard.calls")) > from_ingest
    assert all(partition_for(c.number, PARTITIONS) == p for p, c in sent_news)
    assert len({p for p, _ in sent_news}) > 1
    expected = rings(replayed(calls))
    joined = sorted((c.number, c.ring_id) for _, c in sent_news if c.joined)
    assert joined == sorted((m, ring_id) for ring_id, ms in expected.items() for m in ms)
    ended = {(c.number, c.ring_id) for _, c in sent_news if not c.joined}
    assert ended <= set(joined)
    assert pipeline.counts["memberships_sent"] == len(sent_news)


def test_number_alerts_of_members_carry_the_ring_id_once_their_membership_arrived(
    make_pipeline: Callable[..., Pipeline], sent: Sent
) -> None:
    """Ingest, the group stage and the detect stage taking turns, each reading its topic in
    order: a member's membership reaches its partition after the calls that made it one,
    and its number alerts from then on carry the ring id, in the member's saved state too."""
    pipeline = make_pipeline(partitions=PARTITIONS)
    calls = sorted(pool_calls(members=6, calls_each=60, every=4.0)
                   + dialer_calls("+8617000000009", n=300, t0=T0 + 50),
                   key=lambda c: (c.start, c.caller, c.callee))
    step = 50  # the stages take turns every ~25 s of event time, as running workers would
    for i in range(0, len(calls), step):
        read = {topic: len(events(sent, topic)) for topic in ("dialguard.groups",
                                                              "dialguard.calls")}
        ingest(pipeline, calls[i:i + step])
        asyncio.run(pipeline.group_events(events(sent)[read["dialguard.groups"]:]))
        asyncio.run(pipeline.detect_events(events(sent, "dialguard.calls")[
            read["dialguard.calls"]:]))
    alerts = [orjson.loads(kw["value"]) for kw in of(sent, "dialguard.alerts")]
    numbers = [a for a in alerts if a["kind"] == "number"]
    tagged = {(a["caller"], a["ring_id"]) for a in numbers if a.get("ring_id")}
    # (the ring is re-alerted at most every update_interval_s: its last joiners, alerted as
    # numbers, may be in none of its ring alerts, in replay as here)
    assert tagged and tagged <= joined(calls)
    replay_tagged = {(a.caller, a.ring_id) for a in replayed(calls)
                     if a.kind == "number" and a.ring_id}
    assert tagged <= replay_tagged
    assert not any(a["caller"] == "+8617000000009" and a.get("ring_id") for a in numbers)
    assert pipeline.counts["memberships"] > 0 and pipeline.counts["bad_memberships"] == 0
    # the members' states hold it, written to the table's changelog, and resumed from it
    member, ring_id = min(tagged)
    p = partition_for(member, PARTITIONS)
    newest = {key.decode(): value for _, part, key, value in pipeline.changelog_sent  # type: ignore[attr-defined]
              if part == p}
    assert StateCodec().loads(newest[member]).ring_id == ring_id
    pipeline.detection.revoke([p])
    assert pipeline.detection.detector(p).states[member].ring_id == ring_id


def test_memberships_are_delivered_before_the_group_states_are_saved(
    make_pipeline: Callable[..., Pipeline], sent: Sent
) -> None:
    pipeline = make_pipeline(partitions=1)
    calls = sorted(pool_calls(members=10, calls_each=12), key=lambda c: c.start)
    ingest(pipeline, calls)
    grouped = events(sent)
    order: list[str] = []

    producer = FakeBatchProducer(order)
    assert pipeline.group_changelog is not None
    pipeline.group_changelog._producer = lambda: producer  # type: ignore[method-assign]

    async def run() -> None:
        loop = asyncio.get_running_loop()

        async def send(topic: Any, **kwargs: Any) -> asyncio.Future[None]:
            delivery = loop.create_future()
            what = "membership" if is_memberships(kwargs["value"]) else "alert"
            order.append(f"{what} sent")
            loop.call_later(0.05, lambda: (order.append(f"{what} delivered"),
                                           delivery.set_result(None)))
            return delivery

        with patch("faust.topics.Topic.send", new=send):  # over the ``sent`` fixture's
            await pipeline.group_events(grouped)

    asyncio.run(run())
    assert "membership sent" in order and order[-1] == "state saved"
    saved = order.index("state saved")
    assert order.count("membership delivered") == order.count("membership sent")
    assert all(order.index(what) < saved for what in ("membership delivered", "alert delivered"))
