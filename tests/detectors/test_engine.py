import copy
import random
import zlib

import pytest

from detectors.allowlist import Allowlist
from detectors.config import ConfigError, Settings, build_settings, load_settings, with_override
from detectors.engine import Detector
from detectors.records import Call
from detectors.rules import horizon_text

from .helpers import T0, courier_calls, dialer_calls


def run(det: Detector, calls: list[Call]) -> list:
    alerts = []
    for c in calls:
        alerts += det.observe(c)
    return alerts


def test_cloud_dialer_is_alerted_once_per_cooldown_with_readable_reasons() -> None:
    det = Detector(load_settings())
    alerts = run(det, dialer_calls(n=1500, every=2.0))  # 50 minutes of calls
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.kind == "number" and alert.caller == "+8617000000001"
    assert alert.profile in ("cloud_dialer", "dialer_burst", "marketing_blast")
    assert alert.detected_at - T0 < 120  # caught within two minutes of event time
    assert alert.first_seen == T0
    assert any(" calls in " in r for r in alert.reasons)
    assert any("distinct-callee share" in r for r in alert.reasons)
    assert alert.trunk == "gw-cloud"


def _burst(answered: int = 0, heard: bool = False, received: bool = False) -> list[Call]:
    """Fourteen calls in two minutes to distinct numbers from a new number (its first
    ``features.promote_after`` only counted, not judged), ``answered`` of the first judged
    ones answered (hung up within seconds, or heard through), perhaps a call received."""
    answered_at = range(5, 5 + answered)
    calls = [Call("+8617100000009", f"+86139{1000 + 37 * i:08d}", T0 + 9 * i,
                  duration=(35 if heard else 3) if i in answered_at else 0,
                  answered=i in answered_at, ring=12.0) for i in range(14)]
    if received:
        calls.insert(7, Call("+8613900005555", "+8617100000009", T0 + 55, duration=20,
                             answered=True, ring=5.0))
    return calls


def test_a_dialer_burst_is_alerted_at_ten_calls_only_if_its_evidence_is_clean() -> None:
    """dialer_burst: cloud_dialer's evidence at half the volume, asked to be twice as clean."""
    (alert,) = run(Detector(load_settings()), _burst())
    assert alert.profile == "dialer_burst"
    # ten calls with full state (the first promote_after are only counted), within 2 minutes
    assert "10 calls in 10 min (>= 10)" in alert.reasons
    assert alert.detected_at - T0 < 120
    # one answered and hung up at once is still clean; three answered (0.3) is not, nor is
    # one heard through (a recorded message listened to), nor one call received (a call-back)
    assert [a.profile for a in run(Detector(load_settings()), _burst(answered=1))] == [
        "dialer_burst"]
    for unclean in (_burst(answered=3), _burst(answered=1, heard=True), _burst(received=True)):
        assert run(Detector(load_settings()), unclean) == []


def _recorded_notice(listened: bool) -> list[Call]:
    """A burst to distinct numbers, a third answered; the answered ones listened to (a
    recorded notice, 25-40 s) or hung up at once (a dialer's, 1-6 s)."""
    rng = random.Random(9)
    calls = []
    for i in range(120):
        answered = i % 3 == 0
        talk = (rng.randint(25, 40) if listened else rng.randint(1, 6)) if answered else 0
        calls.append(Call("+862012345678", f"+86139{rng.randrange(10**8):08d}", T0 + 5 * i,
                          duration=talk, answered=answered, ring=rng.uniform(8, 20)))
    return calls


@pytest.mark.parametrize("listened", [False, True])
def test_cloud_dialer_needs_its_answered_calls_cut_short(listened: bool) -> None:
    settings = with_override(load_settings(), "rules.cloud_dialer.max_mean_talk_s", 60)
    profiles = {a.profile for a in run(Detector(settings), _recorded_notice(listened))}
    assert ("cloud_dialer" in profiles) is not listened


def test_alerts_again_after_the_cooldown() -> None:
    det = Detector(with_override(load_settings(), "alerts.cooldown_s", 600))
    alerts = run(det, dialer_calls(n=1500, every=2.0))
    assert len(alerts) == 5  # 3000 s of calls, one alert per 600 s
    gaps = [b.detected_at - a.detected_at for a, b in zip(alerts, alerts[1:], strict=False)]
    assert min(gaps) >= 600


def test_allowlisted_numbers_are_never_alerted() -> None:
    det = Detector(load_settings(), Allowlist(["+8617000000001"]))
    assert run(det, dialer_calls(n=500)) == []
    assert det.tracked_numbers >= 1  # still tracked: its call-backs matter to others


def test_courier_with_call_backs_is_not_alerted() -> None:
    det = Detector(load_settings())
    assert run(det, courier_calls(n=300, every=20.0)) == []


def test_ring_once_caller_is_alerted_as_ring_once() -> None:
    calls = [Call("+8616500000001", f"+86139{i * 104729 % 10**8:08d}", T0 + 40 * i, 0, False,
                  ring=1.5) for i in range(100)]
    alerts = run(Detector(load_settings()), calls)
    assert [a.profile for a in alerts] == ["ring_once"]


@pytest.mark.parametrize("ring_once_horizon_s, alerted", [(21600, True), (3600, False)])
def test_a_slow_ring_once_sweep_is_wangiri_too(ring_once_horizon_s: int, alerted: bool) -> None:
    settings = with_override(load_settings(), "rules.ring_once.horizon_s", ring_once_horizon_s)
    every = 3600 / 8  # eight rings of a second and a half an hour, four hours long
    calls = [Call("+8616500000002", f"+86139{i * 104729 % 10**8:08d}", T0 + every * i, 0,
                  False, ring=1.5) for i in range(32)]
    alerts = run(Detector(settings), calls)
    assert {a.profile for a in alerts} == ({"ring_once"} if alerted else set())
    if alerted:  # at about the rule's 20 calls (counted from promotion), whatever the rate
        assert calls[19].start <= alerts[0].detected_at <= calls[24].start


def test_repeated_calls_to_people_who_refused() -> None:
    # a call every two minutes (at one every 50 s the first round of twelve is itself a
    # dialer_burst: ten unanswered calls to distinct numbers within ten minutes)
    victims = [f"+86139000000{i:02d}" for i in range(12)]
    calls = [Call("+8613811112222", victims[i % 12], T0 + 120 * i, 0, False, ring=25.0)
             for i in range(70)]
    alerts = run(Detector(load_settings()), calls)
    # harassment's floor (10 calls) is lower than repeat_refused's: it speaks first
    assert alerts[0].profile == "harassment"
    assert any("refused" in r for r in alerts[0].reasons)
    assert any("share of calls that repeat a stranger" in r for r in alerts[0].reasons)


def test_calling_family_again_is_not_harassment() -> None:
    """The same few people called again and again, but they are contacts: they call back."""
    family = [f"+86139000001{i:02d}" for i in range(5)]
    calls = []
    for i in range(60):
        callee = family[i % 5]
        calls.append(Call("+8613811113333", callee, T0 + 300 * i, 0, False, ring=25.0))
        if i % 3 == 0:
            calls.append(Call(callee, "+8613811113333", T0 + 300 * i + 60, 40, True))
    assert run(Detector(load_settings()), sorted(calls, key=lambda c: c.start)) == []


def test_duplicate_ids_count_once() -> None:
    det = Detector(load_settings())
    calls = dialer_calls(n=30)
    run(det, calls + calls)
    assert det.stats.calls == 30 and det.stats.duplicates == 30


def test_idle_numbers_expire_by_event_time() -> None:
    settings = load_settings()
    det = Detector(settings)
    run(det, dialer_calls("+8617000000002", n=10))
    late = T0 + settings.features.idle_expiry_s * 2
    run(det, [Call("+8613800000001", "+8613900000001", late + i * 1000, 30, True)
              for i in range(5)])
    assert "+8617000000002" not in det.states
    assert det.stats.expired >= 1


def test_live_threshold_change_alters_the_next_decision() -> None:
    settings = load_settings()
    calls = dialer_calls(n=1500, every=2.0)
    det = Detector(settings)
    run(det, calls[:100])
    det.update_settings(with_override(settings, "rules.cloud_dialer.enabled", False))
    det.update_settings(with_override(det.settings, "rules.marketing_blast.enabled", False))
    det.update_settings(with_override(det.settings, "rules.slow_dialer.enabled", False))
    det.update_settings(with_override(det.settings, "rules.dialer_burst.enabled", False))
    fresh = dialer_calls("+8617000000009", n=300, every=2.0)
    assert run(det, fresh) == []
    det.update_settings(with_override(det.settings, "rules.cloud_dialer.enabled", True))
    assert [a.caller for a in run(det, dialer_calls("+8617000000009", n=10, every=2.0,
                                                    t0=T0 + 600))] == ["+8617000000009"]


def test_fixed_keys_cannot_change_live() -> None:
    det = Detector(load_settings())
    other = load_settings()
    raw = dict(other.raw)
    raw["features"] = dict(raw["features"], horizons_s=[60, 600, 3600, 21600])
    with pytest.raises(ConfigError, match="fixed at start"):
        det.update_settings(build_settings(raw))


def test_partitioned_state_gives_the_same_alerts_as_one_detector() -> None:
    """Outbound on the caller's partition, inbound on the callee's: no cross-partition state."""
    settings = with_override(load_settings(), "model.enabled", False)
    calls = sorted(dialer_calls(n=400) + courier_calls(n=200) +
                   dialer_calls("+8617000000003", n=300, every=5.0, seed=9),
                   key=lambda c: c.start)
    single = run(Detector(settings), calls)

    def part(number: str) -> int:
        return zlib.crc32(number.encode()) % 3

    shards = [Detector(settings) for _ in range(3)]
    sharded = []
    for c in calls:
        alert = shards[part(c.caller)].observe_outbound(c)
        shards[part(c.callee)].observe_inbound(c)
        if alert:
            sharded.append(alert)
    assert [a.to_dict() for a in sharded] == [a.to_dict() for a in single]
    assert len(single) == 2


def test_model_only_alerts_when_enabled() -> None:
    raw = copy.deepcopy(dict(load_settings().raw))
    raw["model"].update(window_size=50, alert_threshold=0.6, score_every=1)
    for profile in raw["rules"].values():
        profile["enabled"] = False
    det = Detector(build_settings(raw))
    # teach it ordinary busy callers first, then show it a dialer
    for k in range(30):
        run(det, courier_calls(f"+86138000001{k:02d}", n=40, every=15.0, seed=k))
    assert det.model.warmed_up
    alerts = run(det, dialer_calls(n=400, every=1.0, t0=T0 + 200))
    assert [(a.profile, a.caller) for a in alerts] == [("model", "+8617000000001")]
    assert alerts[0].model_score is not None and alerts[0].model_score >= 0.6


def test_quiet_numbers_get_a_bare_count_until_they_call_often() -> None:
    settings = load_settings()
    fs = settings.features
    det = Detector(settings)
    quiet = [Call("+8613800000001", f"+861390000000{i}", T0 + i * (fs.horizons_s[-1] + 1), 30,
                  True) for i in range(6)]
    run(det, quiet)
    assert "+8613800000001" in det.light and "+8613800000001" not in det.states
    busy = [Call("+8613800000002", f"+861390000001{i}", T0 + i, 30, True)
            for i in range(fs.promote_after)]
    run(det, busy)
    assert "+8613800000002" in det.states and "+8613800000002" not in det.light
    assert det.states["+8613800000002"].first_seen == T0
    assert det.tracked_numbers == 2
    det.expire(T0 + 100 * fs.idle_expiry_s)
    assert det.tracked_numbers == 0


def test_a_number_given_full_state_counts_the_calls_it_made_before() -> None:
    """The first ``promote_after - 1`` calls, kept packed with the bare count, are counted on
    the state in the order they came: a dialer's opening calls are evidence, not lost."""
    settings = load_settings()
    fs = settings.features
    det = Detector(settings)
    me = "+8617000000009"
    calls = [Call(me, f"+86139000000{i:02d}", T0 + 10 * i, 0 if i % 2 else 4, i % 2 == 0,
                  None if i == 1 else 3.0) for i in range(fs.promote_after)]
    calls[0], calls[1] = calls[1], calls[0]  # one came late
    run(det, calls)
    f = det.states[me].features(600, T0 + 60, fs)
    assert f["attempts"] == fs.promote_after
    assert f["answered"] == sum(c.answered for c in calls)
    assert f["distinct_ratio"] == 1.0
    # a window that lapsed forgets its calls with its count
    det2 = Detector(settings)
    run(det2, [calls[0], Call(me, "+8613900000099", T0 + fs.horizons_s[-1] + 100, 0, False),
               *[Call(me, f"+86139000001{i:02d}", T0 + fs.horizons_s[-1] + 101 + i, 0, False)
                 for i in range(fs.promote_after - 1)]])
    assert det2.states[me].attempts(fs.horizons_s[-1], T0 + fs.horizons_s[-1] + 200,
                                    fs) == fs.promote_after


def test_a_first_call_delivered_again_is_counted_once() -> None:
    """After a takeover the record-id dedup window is gone and the survivor re-reads what the
    dead worker had not committed: a quiet number's early call delivered again must not be
    counted twice on its state (found by the ``kill -9`` failover test: pool numbers at
    "10 calls in 10 min" on their calls and their copies)."""
    settings = load_settings()
    fs = settings.features
    det = Detector(settings)
    me = "+8617000000010"
    calls = [Call(me, f"+86139000002{i:02d}", T0 + 30 * i, 0, False, 20.0)
             for i in range(fs.promote_after)]
    for call in calls[:-1]:
        det.observe_outbound(call)
        det.observe_outbound(call)  # the copy (observe_outbound does not deduplicate)
    assert me not in det.states
    det.observe_outbound(calls[-1])
    f = det.states[me].features(600, calls[-1].start, fs)
    assert f["attempts"] == fs.promote_after and f["distinct_ratio"] == 1.0


def test_one_record_from_a_bad_clock_does_not_age_everyone_out() -> None:
    settings = load_settings()
    det = Detector(settings)
    run(det, dialer_calls("+8617000000002", n=10))
    future = T0 + 30 * 86400
    run(det, [Call("+8613800000001", "+8613900000001", future, 30, True)])
    run(det, [Call("+8613800000003", "+8613900000003", T0 + 40 + i, 30, True) for i in range(3)])
    assert det.watermark < T0 + 3600
    assert "+8617000000002" in det.states  # not expired by the bogus time
    # a real jump (many records agree) is followed
    run(det, [Call(f"+86138000001{i:02d}", "+8613900000001", future + i, 30, True)
              for i in range(100)])
    assert det.watermark >= future


def _circle_settings() -> Settings:
    raw = copy.deepcopy(dict(load_settings().raw))
    raw["circles"] = dict(raw["circles"], enabled=True, bits=16)
    raw["rules"] = {"circle": {"description": "calls a circle", "horizon_s": 21600,
                               "min_attempts": 10, "min_circle_callees": 4}}
    return build_settings(raw)


@pytest.mark.parametrize("connected", [True, False])
def test_circle_callees_need_strangers_who_call_each_other(connected: bool) -> None:
    family = [f"+86139000002{i:02d}" for i in range(5)]
    calls = []
    if connected:  # the family members call each other before the collector starts
        calls += [Call(family[i], family[(i + 1) % 5], T0 + i, 60, True) for i in range(5)]
    calls += [Call("+8613811114444", family[i % 5], T0 + 100 + 600 * i, 0, False, ring=25.0)
              for i in range(15)]
    alerts = run(Detector(_circle_settings()), calls)
    assert [a.profile for a in alerts] == (["circle"] if connected else [])
    if connected:
        assert "5 callees who call each other (>= 4)" in alerts[0].reasons


def test_a_call_side_is_applied_once_per_input_position() -> None:
    det = Detector(with_override(load_settings(), "features.promote_after", 1))
    a, b = "+8613800000001", "+8613800000002"
    first = Call(a, b, T0, 30, True, 2.0)
    det.observe(Call(b, a, T0 - 1, 30, True, 2.0))  # b is tracked: the inbound side counts
    det.observe_sides(first, True, True, offset=5, index=0)
    before = {k: s.to_bytes() for k, s in det.states.items()}
    det.observe_sides(first, True, True, offset=5, index=0)  # delivered again
    assert {k: s.to_bytes() for k, s in det.states.items()} == before
    assert det.stats.redelivered == 2  # both sides
    det.observe_sides(Call(a, b, T0 + 1, 30, True, 2.0), True, True, offset=5, index=1)
    assert det.stats.redelivered == 2 and det.states[a].calls == 2
    # a number calling itself: its two sides are two applications, not one delivered twice
    me = "+8613800000003"
    det.observe_sides(Call(me, me, T0, 10, True, 2.0), True, True, offset=6, index=0)
    assert det.stats.redelivered == 2
    assert det.states[me].features(600, T0, det.settings.features)["inbound"] == 1


@pytest.mark.parametrize("settle_s, share, waits_s", [(0, 0.75, 0), (900, 0.25, 150),
                                                      (900, 0.75, 450), (120, 0.75, 120)])
def test_an_answered_burst_is_judged_once_it_had_time_to_be_called_back(
        settle_s: int, share: float, waits_s: int) -> None:
    """Three calls in ten answered: the 10-minute rule's "nobody calls back" waits
    ``alerts.settle_s``, at most ``settle_max_share`` of its horizon (call-backs come minutes
    later, a burst may be over in ten); a hardly answered dialer does not wait."""
    settings = with_override(with_override(load_settings(), "alerts.settle_s", settle_s),
                             "alerts.settle_max_share", share)
    answered = run(Detector(settings), dialer_calls(n=600, every=2.0, answer_rate=0.3, seed=4))
    # where the hour's marketing_blast waits no longer (settle_s within both rules' share of
    # their horizons), it may be first: its answered share is laxer
    assert answered and answered[0].profile in (
        ("cloud_dialer",) if waits_s < settle_s else ("cloud_dialer", "marketing_blast"))
    waited = answered[0].detected_at - T0
    assert (waits_s <= waited < waits_s + 150) if waits_s else waited < 150
    assert any(f"judged after {horizon_text(waits_s)} of calls" in r
               for r in answered[0].reasons) == bool(waits_s)
    dialer = run(Detector(settings), dialer_calls(n=600, every=2.0, answer_rate=0.05))
    assert dialer and dialer[0].detected_at - T0 < 120


@pytest.mark.parametrize("cut_short", [False, True])
def test_a_recorded_notice_listened_to_is_no_slow_dialer(cut_short: bool) -> None:
    """Hours of calls to distinct numbers, one in five answered: ``slow_dialer`` when some of
    the answered hang up at once, not when every answered callee listens to the message
    (``min_short_call_ratio``)."""
    rng = random.Random(7)
    calls = []
    for i in range(150):  # one call every two minutes for five hours
        answered = rng.random() < 0.2
        talk = 3 if cut_short and rng.random() < 0.5 else 25
        calls.append(Call("+8613900000042", f"+86139{rng.randrange(10**8):08d}", T0 + 120.0 * i,
                          duration=talk if answered else 0, answered=answered, ring=25.0))
    alerts = run(Detector(load_settings()), calls)
    assert ("slow_dialer" in {a.profile for a in alerts}) is cut_short


# ---------------------------------------------------------------------- ring memberships

RING = "ring-00c0ffee0042"


def test_a_member_number_alert_carries_its_ring_id() -> None:
    det = Detector(load_settings(), track_touched=True)
    calls = dialer_calls(n=200)
    run(det, calls[:10])
    caller = calls[0].caller
    assert caller in det.states and det.drain_touched()
    det.join_ring(caller, RING, calls[9].start)
    assert det.ring_id_of(caller) == RING
    assert det.drain_touched() == {caller}  # the state's table entry must be written
    alerts = run(det, calls[10:])
    assert alerts and all(a.ring_id == RING for a in alerts)
    outsider = run(Detector(load_settings()), dialer_calls("+8617000000003", n=200))
    assert outsider and all(a.ring_id is None for a in outsider)


def test_a_number_stays_in_the_first_ring_it_joined_until_that_ring_ends() -> None:
    det = Detector(load_settings())
    calls = dialer_calls(n=10)
    run(det, calls)
    caller = calls[0].caller
    det.join_ring(caller, RING, T0)
    det.join_ring(caller, "ring-000000000002", T0 + 5)
    det.leave_ring(caller, "ring-000000000002")  # another ring's end: still a member
    assert det.ring_id_of(caller) == RING
    det.leave_ring(caller, RING)
    assert det.ring_id_of(caller) is None and det.states[caller].ring_id is None
    det.join_ring(caller, "ring-000000000002", T0 + 9)
    assert det.ring_id_of(caller) == "ring-000000000002"


@pytest.mark.parametrize("calls_before", [0, 2])
def test_a_membership_waits_for_its_number_to_get_full_state(calls_before: int) -> None:
    """A member without full state (a bare count, or no call seen yet: the membership came
    first) keeps it beside the count, and its state takes it at promotion."""
    settings = load_settings()
    det = Detector(settings)
    calls = dialer_calls(n=200)
    caller = calls[0].caller
    run(det, calls[:calls_before])
    assert caller not in det.states and (caller in det.light) == (calls_before > 0)
    det.join_ring(caller, RING, calls[1].start)
    assert det.waiting_rings == {caller: (RING, calls[1].start)}
    run(det, calls[calls_before:settings.features.promote_after])
    assert det.states[caller].ring_id == RING and not det.waiting_rings
    assert det.states[caller].first_seen == T0  # the membership did not start the count
    alerts = run(det, calls[settings.features.promote_after:])
    assert alerts and all(a.ring_id == RING for a in alerts)


def test_a_waiting_membership_ends_with_its_ring() -> None:
    det = Detector(load_settings())
    det.join_ring("+8617000000001", RING, T0)
    det.leave_ring("+8617000000001", "ring-000000000002")
    assert det.ring_id_of("+8617000000001") == RING
    det.leave_ring("+8617000000001", RING)
    assert not det.waiting_rings and det.ring_id_of("+8617000000001") is None


def test_memberships_expire_with_their_numbers() -> None:
    settings = load_settings()
    idle = settings.features.idle_expiry_s
    det = Detector(settings)
    full, light, unseen = "+8617000000001", "+8617000000002", "+8617000000003"
    run(det, dialer_calls(full, n=10) + dialer_calls(light, n=2))
    for number in (full, light, unseen):
        det.join_ring(number, RING, T0 + 20)
    assert det.states[full].ring_id == RING and set(det.waiting_rings) == {light, unseen}
    # the light number keeps calling now and then: its membership stays with its count
    det.expire(T0 + 20 + idle / 2)
    run(det, [Call(light, "+8613900000009", T0 + idle, 0, False)])
    det.expire(T0 + idle + 60)
    assert full not in det.states and set(det.waiting_rings) == {light}
    det.expire(T0 + 2 * idle + 60)
    assert not det.waiting_rings and not det.light and not det.states


def test_an_impossible_ring_id_or_time_is_refused() -> None:
    det = Detector(load_settings())
    for bad in ("", "r" * 65):
        with pytest.raises(ValueError):
            det.join_ring("+8617000000001", bad, T0)
        with pytest.raises(ValueError):
            det.leave_ring("+8617000000001", bad)
    for when in (float("nan"), float("inf")):
        with pytest.raises(ValueError):
            det.join_ring("+8617000000001", RING, when)
    assert not det.waiting_rings


def test_memberships_passed_on_after_each_call_tag_as_replay_does() -> None:
    """The workers' way (the group detector's membership changes handed to the number
    detector) tags the number alerts replay's chain tags, when nothing delays them."""
    from detectors.composite import DetectorChain
    from detectors.rings.detector import GroupDetector

    from .helpers import pool_calls

    settings = load_settings()
    calls = sorted(pool_calls(members=6, calls_each=60, every=4.0)
                   + dialer_calls("+8617000000009", n=300, t0=T0 + 50),
                   key=lambda c: (c.start, c.caller, c.callee))
    chain = DetectorChain.for_settings(settings)
    expected = [a for c in calls for a in chain.observe(c) if a.kind == "number"]
    groups = GroupDetector(settings, track_memberships=True)
    det = Detector(settings)
    got = []
    for call in calls:
        groups.observe(call)
        for change in groups.drain_memberships():
            if change.joined:
                det.join_ring(change.number, change.ring_id, change.at)
            else:
                det.leave_ring(change.number, change.ring_id)
        got += det.observe(call)
    assert any(a.ring_id for a in expected) and any(a.ring_id is None for a in expected)
    assert [(a.caller, a.detected_at, a.ring_id) for a in got] == [
        (a.caller, a.detected_at, a.ring_id) for a in expected]


def test_making_a_detector_does_not_import_river() -> None:
    """River's import (most of a second, SciPy with it) waits for the model's first score."""
    import subprocess
    import sys

    code = ("import sys\nfrom detectors.config import load_settings\n"
            "from detectors.engine import Detector\nDetector(load_settings())\n"
            "print('river' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "False"


def test_the_model_learns_the_same_whenever_its_trees_are_made() -> None:
    import pickle

    from detectors.model import CallingProfileModel

    fresh = CallingProfileModel(seed=3, window_size=10)
    copied = pickle.loads(pickle.dumps(fresh))  # before its trees exist
    profile = {"attempts": 30, "answer_ratio": 0.2, "distinct_ratio": 0.9}
    scores = [(fresh.score_and_learn(profile), copied.score_and_learn(profile))
              for _ in range(25)]
    assert all(a == b for a, b in scores) and fresh.warmed_up and copied.warmed_up
    assert not CallingProfileModel(window_size=10).warmed_up
