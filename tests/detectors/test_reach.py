"""The reach judgement: every condition can stop it, and it waits for a reference."""

from __future__ import annotations

import pickle

import pytest

from detectors.config import ReachSettings
from detectors.reach import ReachJudge

FARM = {"attempts": 60.0, "strangers": 58.0, "inbound": 0.0, "contact_ratio": 0.0,
        "stranger_repeat_ratio": 0.0}


def judge(**settings: float) -> ReachJudge:
    j = ReachJudge(ReachSettings(min_samples=20, **settings))  # type: ignore[arg-type]
    for i in range(100):
        j.learn({"inbound_ratio": 0.3, "strangers": 10.0}, t=float(i))
    return j


def test_no_reference_no_alert() -> None:
    j = ReachJudge(ReachSettings(min_samples=20))
    assert j.judge(FARM, settled=50.0) is None


def test_a_farm_is_alerted_with_the_reference_in_the_reasons() -> None:
    match = judge().judge(FARM, settled=50.0)
    assert match is not None and match.profile == "reach"
    assert "58 strangers called in 6 h" in match.reasons[1]
    # the learned reference (0.3, within the histogram's +-6 % bins) and what it implies
    assert "0.29 per call made, 14 expected over 50 calls" in match.reasons[2]


@pytest.mark.parametrize("change", [{"inbound": 1.0}, {"strangers": 5.0},
                                    {"contact_ratio": 0.3}, {"stranger_repeat_ratio": 0.3}])
def test_each_condition_can_stop_it(change: dict[str, float]) -> None:
    assert judge().judge(dict(FARM, **change), settled=50.0) is None


def test_fresh_calls_are_not_expected_back_yet() -> None:
    assert judge().judge(FARM, settled=10.0) is None  # 3 expected < 6


def test_the_reference_scales_the_volume_needed() -> None:
    """Three times the reciprocity of busy callers: a third of the calls suffice."""
    low = ReachJudge(ReachSettings(min_samples=20))
    high = ReachJudge(ReachSettings(min_samples=20))
    for i in range(100):
        low.learn({"inbound_ratio": 0.1}, t=float(i))
        high.learn({"inbound_ratio": 0.3}, t=float(i))
    assert low.judge(FARM, settled=40.0) is None
    assert high.judge(FARM, settled=40.0) is not None


def test_survives_pickle() -> None:
    j = judge()
    back = pickle.loads(pickle.dumps(j))
    assert back.judge(FARM, settled=50.0) == j.judge(FARM, settled=50.0)
