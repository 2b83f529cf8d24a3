"""The two baselines: they catch an obvious burst and leave an ordinary number alone."""

from __future__ import annotations

from detectors.records import Call
from testbed.baselines import AniProfileBaseline, VolumeRuleBaseline
from tests.detectors.helpers import courier_calls, dialer_calls

T0 = 1_714_521_600.0


def _run(detector, calls):
    return [a for c in calls for a in detector.observe(c)]


def ordinary_calls(n: int = 40) -> list[Call]:
    return [Call("+8613800000005", f"+8613900000{i % 6:03d}", T0 + 1800.0 * i, 90 if i % 4 else 0,
                 i % 4 != 0, ring=8.0) for i in range(n)]


def test_volume_rule_alerts_once_per_cooldown_on_a_burst():
    burst = dialer_calls(n=300, every=2.0)
    alerts = _run(VolumeRuleBaseline(max_calls=10, window_s=60, cooldown_s=3600), burst)
    assert len(alerts) == 1
    a = alerts[0]
    assert a.caller == "+8617000000001" and a.kind == "number" and a.profile == "volume_rule"
    assert a.detected_at == burst[10].start  # the 11th call within 60 s
    assert a.first_seen == burst[0].start
    assert "11 calls in 60 s" in a.reasons[0]
    # a short cool-down alerts again
    again = _run(VolumeRuleBaseline(max_calls=10, window_s=60, cooldown_s=120), burst)
    assert len(again) > 1


def test_baselines_stay_quiet_on_ordinary_and_courier_numbers():
    for calls in (ordinary_calls(), courier_calls()):
        assert _run(VolumeRuleBaseline(), calls) == []
        assert _run(AniProfileBaseline(), calls) == []


def test_ani_profile_needs_all_three_conditions():
    burst = dialer_calls(n=200, every=10.0, answer_rate=0.1)
    alerts = _run(AniProfileBaseline(min_attempts=50), burst)
    assert len(alerts) == 1 and alerts[0].profile == "ani_profile"
    assert alerts[0].detected_at == burst[49].start
    answered = [Call(c.caller, c.callee, c.start, 120, True, ring=5.0) for c in burst]
    assert _run(AniProfileBaseline(min_attempts=50), answered) == []  # long talks
    slow = dialer_calls(n=200, every=120.0)  # 30 an hour
    assert _run(AniProfileBaseline(min_attempts=50), slow) == []


def test_allowlist_duplicates_and_expiry():
    burst = dialer_calls(n=100, every=1.0)
    assert _run(VolumeRuleBaseline(allowlist={"+8617000000001"}), burst) == []
    twice = [c for c in burst[:8] for _ in range(2)]  # 8 calls, each delivered twice
    assert _run(VolumeRuleBaseline(max_calls=10), twice) == []
    pike = VolumeRuleBaseline(max_calls=10, window_s=60)
    _run(pike, burst)
    pike.observe(Call("+8613800000001", "+8613900000001", T0 + 10_000, 30, True))
    assert pike.tracked_numbers == 1  # the burst's number was forgotten
