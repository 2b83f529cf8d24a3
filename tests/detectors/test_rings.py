"""The group detector: rings found, legitimate pools left alone, state bounded and shardable."""

from __future__ import annotations

import copy
import random
import zlib

import msgspec
import pytest

from detectors.alerts import Alert
from detectors.allowlist import Allowlist
from detectors.composite import DetectorChain
from detectors.config import (
    ConfigError,
    RingSettings,
    Settings,
    build_settings,
    load_settings,
    with_override,
)
from detectors.records import Call
from detectors.rings.cohort import KeyState
from detectors.rings.detector import GroupDetector

from .helpers import T0, pool_calls


def started_with(dotted: str, value: object) -> Settings:
    """Default settings with a key that is fixed at start set (as a config file would)."""
    raw = copy.deepcopy(dict(load_settings().raw))
    section, key = dotted.split(".")
    raw[section][key] = value
    return build_settings(raw)


def run(detector: GroupDetector | DetectorChain, calls: list[Call]) -> list[Alert]:
    out: list[Alert] = []
    for call in sorted(calls, key=lambda c: (c.start, c.caller, c.callee)):
        out += detector.observe(call)
    return out


def members(alerts: list[Alert]) -> set[str]:
    return {m for a in alerts if a.kind == "ring" for m in a.members or ()}


def town(trunk: str = "mob-1", people: int = 600, hours: float = 6.0, seed: int = 11,
         t0: float = T0) -> list[Call]:
    """A switch's whole population on one trunk: a few calls each, most answered and talked."""
    rng = random.Random(seed)
    calls = []
    for p in range(people):
        me = f"+86138{p:08d}"
        for _ in range(rng.randint(1, 8)):
            answered = rng.random() < 0.7
            calls.append(Call(me, f"+86139{rng.randrange(10**8):08d}",
                              t0 + rng.uniform(0, hours * 3600),
                              duration=int(rng.lognormvariate(4, 1)) + 1 if answered else 0,
                              answered=answered, ring=rng.uniform(2, 25), trunk=trunk))
    return calls


def couriers(trunk: str = "mob-1", n: int = 20, t0: float = T0) -> list[Call]:
    """Delivery privacy numbers / couriers: many distinct callees, answered, listened to."""
    rng = random.Random(5)
    calls = []
    for c in range(n):
        me = f"+86170900{c:05d}"
        for i in range(40):
            answered = rng.random() < 0.85
            calls.append(Call(me, f"+86137{rng.randrange(10**8):08d}", t0 + c * 30 + i * 90,
                              duration=rng.randint(35, 90) if answered else 0,
                              answered=answered, ring=4.0, trunk=trunk))
    return calls


def test_a_pool_behind_one_gateway_is_one_ring_with_a_stable_id() -> None:
    pool = pool_calls(members=12, calls_each=8)
    alerts = run(GroupDetector.example(), pool)
    rings = [a for a in alerts if a.kind == "ring"]
    assert rings and len({a.ring_id for a in rings}) == 1
    assert members(rings) == {c.caller for c in pool}
    listed: set[str] = set()
    for a in rings:  # new members are exactly those not in an earlier alert; all are listed
        assert set(a.new_members or ()) == set(a.members or ()) - listed
        listed |= set(a.new_members or ())
        assert set(a.members or ()) == listed
    gaps = [b.detected_at - a.detected_at for a, b in zip(rings, rings[1:], strict=False)]
    assert all(g >= load_settings().rings.update_interval_s for g in gaps)
    again = run(GroupDetector.example(), pool)
    assert [a.to_dict() for a in again] == [a.to_dict() for a in alerts]
    assert "all via gw-pool" in rings[0].reasons


def test_no_callee_number_in_the_clear_and_blocks_are_masked() -> None:
    # three callers sweep one callee block; the feed names no trunk
    calls = []
    for k in range(4):
        for i in range(30):
            calls.append(Call(f"+86165000000{k:02d}", f"+8613812{3000 + k * 50 + i:04d}",
                              T0 + k * 7 + i * 20, 0, False, ring=1.0))
    alerts = run(GroupDetector.example(), calls)
    assert alerts and members(alerts) == {c.caller for c in calls}
    text = " ".join(r for a in alerts for r in a.reasons)
    assert "number block +861381xxxx" in text or "number block +8613812xxxx" in text
    assert not any(c.callee[1:] in str(a.to_dict()) for a in alerts for c in calls)


def test_a_whole_town_on_one_trunk_is_no_ring() -> None:
    assert run(GroupDetector.example(), town()) == []


def test_a_pool_hidden_in_a_busy_trunk_is_found_once_it_stands_out() -> None:
    pool = pool_calls(members=10, calls_each=30, every=40.0, trunk="mob-1", t0=T0 + 3 * 3600)
    alerts = run(GroupDetector.example(), town() + pool)
    found = members(alerts)
    assert found == {c.caller for c in pool}


def without_ingress(calls: list[Call]) -> list[Call]:
    return [msgspec.structs.replace(c, trunk=None, src_ip=None) for c in calls]


@pytest.mark.parametrize("shards", [1, 8])
def test_a_pool_in_a_feed_without_ingress_is_found_in_its_population_share(shards: int) -> None:
    """No trunk, no source address, random callees: only the population share links it."""
    settings = started_with("rings.population_shards", shards)
    pool = without_ingress(pool_calls(members=40, calls_each=8, every=20.0, t0=T0 + 3 * 3600))
    calls = without_ingress(town()) + pool
    alerts = run(GroupDetector(settings), calls)
    found, numbers = members(alerts), {c.caller for c in pool}
    assert found <= numbers and len(found) >= 0.8 * len(numbers)  # nobody from the town
    assert all(any(r.startswith("all via calls without trunk or source address, callers in "
                                "share ") and r.endswith(f" of {shards}") for r in a.reasons)
               and "; the share's own traffic would give ~" in a.reasons[3] for a in alerts)
    off = started_with("rings.population_shards", 0)
    assert members(run(GroupDetector(off), calls)) == set()


def test_couriers_and_privacy_numbers_never_join() -> None:
    pool = pool_calls(members=8, calls_each=10, trunk="mob-1", t0=T0 + 600)
    alerts = run(GroupDetector.example(), couriers() + pool)
    assert members(alerts) == {c.caller for c in pool}


def test_allowlisted_numbers_never_join() -> None:
    pool = pool_calls(members=8, calls_each=10)
    allowed = pool[0].caller
    detector = GroupDetector(load_settings(), Allowlist([allowed]))
    found = members(run(detector, pool))
    assert found and allowed not in found


def test_withheld_callers_count_towards_their_ingress() -> None:
    pool = pool_calls(members=8, calls_each=10)
    withheld = [Call("", f"+86139{i:08d}", T0 + 200 + i, 0, False, trunk="gw-pool")
                for i in range(30)]
    alerts = run(GroupDetector.example(), pool + withheld)
    assert any("caller withheld" in r for a in alerts for r in a.reasons)
    assert "" not in members(alerts)


def test_number_alerts_carry_their_ring_id() -> None:
    pool = pool_calls(members=6, calls_each=60, every=4.0)
    alerts = run(DetectorChain.example(), pool)
    ring_ids = {a.ring_id for a in alerts if a.kind == "ring"}
    tagged = [a for a in alerts if a.kind == "number" and a.ring_id is not None]
    assert len(ring_ids) == 1 and tagged and {a.ring_id for a in tagged} == ring_ids


def test_membership_changes_name_every_member_once_and_every_member_of_an_ended_ring() -> None:
    pool = pool_calls(members=12, calls_each=8)
    detector = GroupDetector(load_settings(), track_memberships=True)
    alerts = run(detector, pool)
    [ring_id] = {a.ring_id for a in alerts if a.kind == "ring"}
    joins = detector.drain_memberships()
    assert all(c.joined for c in joins) and detector.drain_memberships() == []
    assert sorted(c.number for c in joins) == sorted(members(alerts))
    assert {c.ring_id for c in joins} == {ring_id}
    assert all(detector.ring_of(c.number) == ring_id for c in joins)
    # a member joins at the call that made it one, before the alert that lists it as new
    listed_at = {m: a.detected_at for a in reversed(alerts) for m in a.new_members or ()}
    assert all(c.at <= listed_at[c.number] for c in joins)
    assert all(min(p.start for p in pool if p.caller == c.number) <= c.at for c in joins)
    last = max(c.start for c in pool)
    detector.expire(last + 2 * load_settings().rings.ring_idle_s)
    ends = detector.drain_memberships()
    assert sorted(c.number for c in ends) == sorted(members(alerts))
    assert {(c.ring_id, c.joined) for c in ends} == {(ring_id, False)}
    assert all(c.at > last for c in ends) and not detector.memberships
    untracked = GroupDetector.example()
    run(untracked, pool)
    assert untracked.membership_changes is None and untracked.drain_memberships() == []


def test_members_beyond_max_members_are_counted_not_listed_nor_tagged() -> None:
    settings = with_override(load_settings(), "rings.max_members", 3)
    pool = pool_calls(members=12, calls_each=8)
    detector = GroupDetector(settings, track_memberships=True)
    alerts = run(detector, pool)
    listed = members(alerts)
    joined = {c.number for c in detector.drain_memberships()}
    assert len(listed) == 3 and joined == listed
    assert max(a.features["members"] for a in alerts if a.kind == "ring") > 3
    assert set(detector.memberships) == listed
    detector.expire(max(c.start for c in pool) + 2 * settings.rings.ring_idle_s)
    assert not detector.memberships  # the ring's end leaves nobody tagged


def test_state_is_bounded_and_expires() -> None:
    detector = GroupDetector.example()
    peak = 0
    for hour in range(24):
        run(detector, town(trunk=f"mob-{hour % 3}", people=200, hours=1.0, seed=hour,
                           t0=T0 + hour * 3600))
        peak = max(peak, detector.tracked_numbers)
    assert peak < 2 * 200 * 3 * 2  # callers under at most a few hours of keys, not a day
    detector.observe(Call("+8613800000001", "+8613900000001", T0 + 30 * 3600, 0, False,
                          trunk="mob-0"))
    detector.expire(T0 + 30 * 3600)
    # only the last caller, under its trunk and as its callee block's lone sweeper: an idle
    # key keeps only its small baseline
    assert detector.tracked_numbers <= 2
    assert all(len(s.baseline) == load_settings().rings.max_strength + 1
               for s in detector.states.values())
    assert len(detector.states) <= 3 + 1


def test_partitioned_by_key_gives_the_same_rings() -> None:
    """A stage per key partition (calls routed by ``route``) finds what one detector finds."""
    calls = sorted(town(people=300) + pool_calls(members=10, calls_each=12, t0=T0 + 1800)
                   + pool_calls("+86162000", members=6, calls_each=30, trunk="mob-1",
                                t0=T0 + 7200, every=30.0)
                   + without_ingress(pool_calls("+86163000", members=20, calls_each=8,
                                                t0=T0 + 9000, every=20.0)),
                   key=lambda c: (c.start, c.caller, c.callee))
    single = run(GroupDetector.example(), calls)
    stages = [GroupDetector.example() for _ in range(4)]
    sharded: list[Alert] = []
    for call in calls:
        for key in stages[0].route(call):
            alert = stages[zlib.crc32(key.encode()) % 4].observe_keyed(call, key)
            if alert is not None:
                sharded.append(alert)
    assert single and any(a.trunk is None and "without trunk" in a.reasons[2] for a in single)
    assert {a.ring_id: a.members for a in single} == {a.ring_id: a.members for a in sharded}


def test_key_state_binary_form_refuses_garbage() -> None:
    with pytest.raises(ValueError, match="not a ring key state"):
        KeyState.from_bytes(b"\x93garbage")


@pytest.mark.parametrize(("key", "value"), [("rings.min_members", 1), ("rings.prior_tail", 1.0),
                                            ("rings.max_false_share", 2), ("rings.youth_s", 0),
                                            ("rings.min_strength", 30), ("rings.weight", "x"),
                                            ("rings.join_strength", 4),
                                            ("rings.quorum_strength", 4),
                                            ("rings.quorum_members", 0),
                                            ("rings.quiet_min_members", 1),
                                            ("rings.quiet_min_members", 4)])
def test_bad_ring_settings_are_refused(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=key.split(".")[1]):
        with_override(load_settings(), key, value)


def thin_pool(members: int = 150, seed: int = 7) -> list[Call]:
    """A pool renting its own gateway: eight founders at once, then one number a minute,
    each making a call or three, a third of them answered and listened to for a while."""
    rng = random.Random(seed)
    calls = [Call(f"+8617300{m:06d}", f"+86139{rng.randrange(10**8):08d}", T0 + 30 * i + m,
                  0, False, ring=12.0, trunk="gw-rent") for m in range(8) for i in range(4)]
    for m in range(members):
        for i in range(rng.choice((1, 1, 2, 3))):
            answered = rng.random() < 0.35
            calls.append(Call(f"+8617200{m:06d}", f"+86139{rng.randrange(10**8):08d}",
                              T0 + 300 + 60 * m + 20 * i, 15 if answered else 0, answered,
                              ring=12.0, trunk="gw-rent"))
    return calls


@pytest.mark.parametrize("share, least, most", [(0.75, 0.95, 1.0), (1.0, 0.0, 0.5)])
def test_on_a_key_the_operation_owns_its_numbers_join_without_the_keys_judgement(
        share: float, least: float, most: float) -> None:
    """Judged against the traffic of a gateway the pool rents, the pool's numbers not in the
    ring yet count as the key's ordinary callers, and ask ever more of the next ones."""
    calls = thin_pool()
    with_evidence = {c.caller for c in calls if not c.answered}
    settings = with_override(load_settings(), "rings.own_key_share", share)
    found = members(run(GroupDetector(settings), calls))
    assert found <= with_evidence
    assert least * len(with_evidence) <= len(found) <= most * len(with_evidence)


@pytest.mark.parametrize("value", [0, 1.5, "x"])
def test_bad_own_key_share_is_refused(value: object) -> None:
    with pytest.raises(ConfigError, match="rings.own_key_share"):
        with_override(load_settings(), "rings.own_key_share", value)


@pytest.mark.parametrize("value", [-1, 2.5, 5000, "8"])
def test_bad_population_shards_are_refused(value: object) -> None:
    with pytest.raises(ConfigError, match="rings.population_shards must"):
        started_with("rings.population_shards", value)


def test_ring_settings_are_live_except_what_shapes_state() -> None:
    s = with_override(load_settings(), "rings.update_interval_s", 60)
    detector = GroupDetector.example()
    detector.update_settings(s)
    assert detector.settings.rings.update_interval_s == 60
    for key, value in (("rings.callee_blocks", False), ("rings.population_shards", 4)):
        with pytest.raises(ConfigError, match="fixed at start"):
            detector.update_settings(with_override(load_settings(), key, value))


def _unanswered_run(state: KeyState, caller: str, t0: float, callees: list[int]) -> None:
    rs = load_settings().rings
    for i, callee in enumerate(callees):
        state.account(caller, t0 + 60 * i, callee, False, 0, rs)


def test_trying_numbers_again_is_engagement_not_a_sweep() -> None:
    sweeper, retrier = KeyState.new(24), KeyState.new(24)
    _unanswered_run(sweeper, "+8617000000001", T0, [8613900000000 + i for i in range(8)])
    _unanswered_run(retrier, "+8617000000002", T0,
                    [8613900000000 + i // 2 for i in range(8)])  # each callee tried twice
    assert sweeper.qualified_at_least(3) == 1
    assert retrier.qualified_at_least(1) == 0


@pytest.mark.parametrize("memory_s, qualifies", [(86400.0, False), (0.0, True)])
def test_a_number_back_after_a_quiet_spell_keeps_its_engagement(memory_s: float,
                                                                qualifies: bool) -> None:
    rs = with_override(load_settings(), "rings.engaged_memory_s", memory_s).rings
    state = KeyState.new(rs.max_strength, T0)
    line = "+862100000001"  # a notice line: its calls answered and listened to
    for i in range(20):
        state.account(line, T0 + 60 * i, 8613900000000 + i, True, 40, rs)
    later = T0 + 60 * 20 + rs.member_idle_s * 2
    state.expire(later, rs)
    assert line not in state.callers
    for i in range(5):  # then a run of unanswered calls to new numbers
        state.account(line, later + 60 * i, 8613800000000 + i, False, 0, rs)
    assert (state.qualified_at_least(3) == 1) is qualifies
    state.expire(later + rs.member_idle_s * 2 + max(memory_s, 1.0), rs)
    assert not state.engaged and KeyState.from_bytes(state.to_bytes()) == state


def test_a_block_only_talked_to_keeps_no_state() -> None:
    det = GroupDetector.example()
    block = "blk:+861381234"
    for i in range(6):  # two callers talking with numbers of one block: no sweep
        det.observe(Call(f"+8617000000{i % 2:03d}", f"+861381234{i:04d}", T0 + 60 * i, 60, True))
    assert block not in det.states and block not in det.lone_blocks
    for i in range(2):  # two callers leaving unanswered calls there: the block is watched
        det.observe(Call(f"+8617000000{i:03d}", f"+86138123499{i:02d}", T0 + 600 + i, 0, False))
    assert block in det.states


@pytest.mark.parametrize("busy_key, join_strength, joined", [
    (False, 1, True),   # a gateway nobody else uses: the pool's next number joins at once
    (False, 3, False),  # unless the analyst asks as much of joiners as of founders
    (True, 1, False),   # a town's switch asked more of the founders: so it does of joiners
])
def test_a_living_ring_takes_a_later_number_on_thin_evidence_where_its_key_is_quiet(
        busy_key: bool, join_strength: int, joined: bool) -> None:
    settings = with_override(load_settings(), "rings.join_strength", join_strength)
    trunk = "mob-1" if busy_key else "gw-pool"
    pool = pool_calls(members=10, calls_each=30, every=40.0, trunk=trunk, t0=T0 + 3 * 3600)
    end = max(c.start for c in pool)
    late = "+8617199999999"  # the pool's next number, retired after two unanswered calls
    thin = [Call(late, f"+86139{i:08d}", end - 300 + 30 * (i + 1), 0, False, trunk=trunk)
            for i in range(2)]
    alerts = run(GroupDetector(settings), (town() if busy_key else []) + pool + thin)
    assert {c.caller for c in pool} <= members(alerts)
    founders_needed = {a.features["threshold"] for a in alerts if a.kind == "ring"}
    assert founders_needed == ({6.0} if busy_key else {3.0})
    assert (late in members(alerts)) is joined


def test_a_few_answered_calls_do_not_rule_a_number_out_but_many_do() -> None:
    def account(state: KeyState, caller: str, answered: list[bool], rs: RingSettings) -> None:
        for i, a in enumerate(answered):  # answered calls cut short (3 s), distinct callees
            state.account(caller, T0 + 60 * i, 8613900000000 + 1000 * i + len(answered),
                          a, 3 if a else 0, rs)

    for grace, pool_number_qualifies in [(2.0, True), (0.0, False)]:
        rs = with_override(load_settings(), "rings.answer_grace_calls", grace).rings
        state = KeyState.new(rs.max_strength)
        account(state, "+8617100000001", [True, False, True], rs)  # two of three answered
        account(state, "+8613700000002", [True] * 7 + [False] * 3, rs)  # a courier's ten
        assert (state.qualified_at_least(1) == 1) is pool_number_qualifies
        assert state.qualified_at_least(1) <= 1  # the courier never qualifies


def test_a_busy_key_gives_founders_and_joiners_no_benefit_of_the_doubt() -> None:
    rs = load_settings().rings
    state = KeyState.new(rs.max_strength)
    # seven calls to distinct numbers, three answered and cut short: 3 > 0.4 * 7, but within
    # 0.4 * (7 + answer_grace_calls): the first calls of a courier as much as a dialer's
    for i, answered in enumerate([False, True, False, True, False, True, False]):
        state.account("+8613700000001", T0 + 60 * i, 8613900000000 + 1000 * i, answered,
                      3 if answered else 0, rs)
    assert state.qualified_at_least(rs.min_strength) == 1
    assert state.members_at(rs.min_strength, rs) == ["+8613700000001"]  # a quiet key
    assert state.members_at(rs.min_strength + 2, rs) == []  # a key that asks more


@pytest.mark.parametrize("z, courier_qualifies", [(0.0, True), (0.5, False)])
def test_a_busy_key_asks_for_a_low_answered_share_with_confidence(
        z: float, courier_qualifies: bool) -> None:
    rs = with_override(load_settings(), "rings.confidence_z", z).rings
    state = KeyState.new(rs.max_strength)
    calls = {"+8613700000001": [True, False, False, True, False],  # a courier's first five
             "+8617100000002": [False] * 4 + [True] + [False] * 5}  # a pool number's ten
    for n, (caller, answered) in enumerate(calls.items()):
        for i, a in enumerate(answered):  # answered calls cut short (3 s), distinct callees
            state.account(caller, T0 + 60 * i + n, 8613900000000 + 1000 * i + n, a,
                          3 if a else 0, rs)
    busy = rs.min_strength + 1  # a key that asks more than min_strength
    expected = ["+8613700000001"] if courier_qualifies else []
    assert state.members_at(busy, rs) == [*expected, "+8617100000002"]
    assert state.members_at(rs.min_strength, rs) == list(calls)  # a quiet key: both


@pytest.mark.parametrize("value", [-0.5, float("nan"), "1"])
def test_a_bad_ring_confidence_is_refused(value: object) -> None:
    with pytest.raises(ConfigError, match="rings.confidence_z"):
        with_override(load_settings(), "rings.confidence_z", value)


def test_a_key_state_without_an_applied_position_is_read() -> None:
    import msgspec

    state = KeyState.new(3)
    assert state.first_delivery(2, 1)
    old = msgspec.msgpack.encode(list(msgspec.structs.astuple(state))[:-4])  # before positions
    back = KeyState.from_bytes(old)
    assert (back.applied_offset, back.applied_index) == (-1, 0)
    assert KeyState.from_bytes(state.to_bytes()).first_delivery(2, 1) is False


def paced(seconds: float = 300.0) -> Settings:
    """The shipped settings with the pace of numbers' first minutes judged (``burst_s``)."""
    return with_override(load_settings(), "rings.burst_s", seconds)


def test_a_key_state_from_before_burst_evidence_is_read_and_judged() -> None:
    import msgspec

    rs = paced().rings
    state = KeyState.new(rs.max_strength, T0)
    for i in range(3):
        state.account("+8617100000001", T0 + 10 * i, 8613900000000 + i, False, 0, rs)
    fields = list(msgspec.structs.astuple(state))[:-2]  # without the burst bins
    fields[0] = {c: rec[:-1] for c, rec in state.callers.items()}  # records without BURST
    back = KeyState.from_bytes(msgspec.msgpack.encode(fields))
    assert back.active == state.active and back.qualified_at_least(3) == 1
    assert sum(back.burst_active) == sum(back.active) and back.burst_active[0] == 1
    back.account("+8617100000001", T0 + 40, 8613900000009, False, 0, rs)  # counted on
    assert back.qualified_at_least(4) == 1 and back.burst_active[1] == 1
    assert KeyState.from_bytes(back.to_bytes()) == back


def test_observe_keyed_counts_a_call_once_per_input_position() -> None:
    det = GroupDetector(load_settings())
    calls = pool_calls(members=4, calls_each=6)
    for i, call in enumerate(calls):
        det.observe_keyed(call, "in:" + str(call.trunk), offset=i // 10, index=i % 10)
    before = det.table_state()
    for i, call in enumerate(calls[-15:], start=len(calls) - 15):
        assert det.observe_keyed(call, "in:" + str(call.trunk), i // 10, i % 10) is None
    assert det.table_state() == before and det.stats.redelivered == 15


def _together(numbers: int, calls_each: int, trunk: str, t0: float) -> list[Call]:
    """``numbers`` fresh numbers starting at once, an unanswered call each every 30 s."""
    return [Call(f"+8617100{n:05d}", f"+86139{n:02d}{i:06d}", t0 + 30 * i + n, 0, False,
                 trunk=trunk) for n in range(numbers) for i in range(calls_each)]


@pytest.mark.parametrize("numbers, quorum_strength, threshold", [
    (5, 2, 2.0),   # five fresh numbers at once: a quorum, two unanswered calls each do
    (4, 2, 3.0),   # four are no quorum: three calls each, as ever
    (5, 3, 3.0),   # quorum_strength = min_strength: the quorum is off
])
def test_a_quorum_of_fresh_numbers_is_a_ring_on_less_evidence_each(
        numbers: int, quorum_strength: int, threshold: float) -> None:
    settings = with_override(load_settings(), "rings.quorum_strength", quorum_strength)
    alerts = run(GroupDetector(settings), _together(numbers, 6, "gw-new", T0))
    first = alerts[0]
    assert first.features["threshold"] == threshold
    assert first.detected_at < T0 + 30 * (threshold - 1) + numbers  # at the last founder's call
    assert ("numbers at once" in first.reasons[3]) is (threshold < 3)


def test_a_quorum_on_a_busy_key_is_judged_against_its_traffic() -> None:
    # five numbers with two unanswered calls each, on a town's switch: its own traffic gives
    # that many; they are a ring only once they show more than the town's callers do
    late = T0 + 3 * 3600
    by_hour = load_settings()
    for settings in (paced(), by_hour):
        assert run(GroupDetector(settings), town() + _together(5, 2, "mob-1", late)) == []
    many = run(GroupDetector(by_hour), town() + _together(5, 12, "mob-1", late))
    assert many and all(a.features["threshold"] > 3 for a in many)


def test_numbers_piling_up_unanswered_calls_in_their_first_minutes_stand_out_sooner() -> None:
    # the town's callers seldom make three unanswered calls within five minutes of their
    # first: on its switch, that pace is a ring long before the hour's count is
    late = T0 + 3 * 3600
    five = {f"+8617100{n:05d}" for n in range(5)}
    until = [c for c in town() if c.start < late + 400] + _together(5, 12, "mob-1", late)
    det = GroupDetector(paced())
    burst = run(det, until)
    by_hour = run(GroupDetector(load_settings()), until)
    assert burst[0].features["threshold"] == 3.0 and "within 5 min of its first" in \
        burst[0].reasons[3]
    assert burst[0].detected_at < by_hour[0].detected_at
    assert {det.ring_of(n) for n in five} == {burst[0].ring_id}  # all five joined
    assert members(burst) <= five and members(by_hour) <= five
    # numbers whose three unanswered calls are spread over their first hour are no ring
    slow = [Call(f"+8617100{n:05d}", f"+86139{n:02d}{i:06d}", late + 1200 * i + n, 0, False,
                 trunk="mob-1") for n in range(5) for i in range(3)]
    assert run(GroupDetector(paced()), town() + slow) == []


@pytest.mark.parametrize("quiet_min_members, ring", [(2, True), (3, False)])
def test_two_numbers_are_a_ring_where_their_key_asks_no_more_than_min_strength(
        quiet_min_members: int, ring: bool) -> None:
    settings = with_override(load_settings(), "rings.quiet_min_members", quiet_min_members)
    alerts = run(GroupDetector(settings), _together(2, 6, "gw-new", T0))
    assert bool(alerts) is ring
    if ring:
        assert alerts[0].features["threshold"] == 3.0 and len(alerts[0].members or ()) == 2
        assert alerts[0].detected_at < T0 + 30 * 2 + 2  # at the second number's third call


def test_two_numbers_on_a_busy_key_are_no_ring() -> None:
    # a town's switch asks more than min_strength of each number: there a pair is no ring,
    # however much each of the two shows
    alerts = run(GroupDetector.example(), town() + _together(2, 30, "mob-1", T0 + 3 * 3600))
    assert alerts == []


@pytest.mark.parametrize("gap_s, joins", [(40.0, True), (900.0, False)])
def test_a_ring_founded_on_pace_takes_joiners_by_pace_or_by_what_the_key_asks_by_the_hour(
        gap_s: float, joins: bool) -> None:
    # forty numbers each piling up unanswered calls in their first minutes: a ring on a
    # village's switch; a later number with three unanswered calls joins at that pace, not
    # with the same three spread over 45 minutes: by the hour, the village asks more than
    # three of founders, and a large ring's members must not make that less
    late = T0 + 3 * 3600
    det = GroupDetector(paced())
    later = [Call("+8617199999999", f"+86137{i:08d}", late + 600 + gap_s * i, 0, False,
                  trunk="mob-1") for i in range(3)]
    alerts = run(det, [c for c in town(people=40) if c.start < late + 3000]
                 + _together(40, 40, "mob-1", late) + later)
    assert alerts and alerts[0].reasons[3].find("within 5 min") > 0
    state = det.states["in:mob-1"]
    assert state.asked_by_the_hour(det.settings.rings) > 3
    assert (det.ring_of("+8617199999999") == alerts[0].ring_id) is joins
