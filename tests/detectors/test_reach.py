"""The reach judgement: every condition can stop it, and it waits for a reference."""

from __future__ import annotations

import math
import pickle

import pytest

from detectors.config import ReachSettings
from detectors.reach import ReachJudge, few_returns_surprise

FARM = {"attempts": 60.0, "strangers": 58.0, "inbound": 0.0, "contact_ratio": 0.0,
        "stranger_repeat_ratio": 0.0, "mean_talk_s": 25.0}


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
                                    {"contact_ratio": 0.3}, {"stranger_repeat_ratio": 0.3},
                                    {"mean_talk_s": 90.0}, {"missed_retry_ratio": 0.25}])
def test_each_condition_can_stop_it(change: dict[str, float]) -> None:
    assert judge().judge(dict(FARM, **change), settled=50.0) is None


def test_retrying_the_missed_is_judged_whatever_the_answer_rate() -> None:
    """A courier answered 0.8 of the time who retries a third of its misses repeats only
    ~0.07 of its calls: the share of calls lets it through, the share of misses does not."""
    courier = dict(FARM, stranger_repeat_ratio=0.07, missed_retry_ratio=0.35)
    assert judge().judge(courier, settled=50.0) is None
    match = judge(max_missed_retry_ratio=0.5).judge(courier, settled=50.0)
    assert match is not None and "missed calls tried again 0.35 (<= 0.5)" in match.reasons[3]


def test_conversations_are_judged_against_the_set_limit() -> None:
    """A call-back agent's minutes-long calls keep it out; the limit is live config."""
    agent = dict(FARM, mean_talk_s=140.0)
    assert judge().judge(agent, settled=50.0) is None
    match = judge(max_mean_talk_s=300.0).judge(agent, settled=50.0)
    assert match is not None and "mean talk 140 s (< 300)" in match.reasons[3]


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


def test_a_few_returns_count_against_what_was_expected() -> None:
    """With max_returns above 0, returns are judged by how improbable so few are (Poisson)."""
    tolerant = judge(max_returns=4)
    # ~14 returns expected over 50 settled calls: 2 received is as rare as e^-10
    match = tolerant.judge(dict(FARM, inbound=2.0), settled=50.0)
    assert match is not None and "hardly anybody calls back" in match.reasons[0]
    # ~7 expected over 25: 4 received is ordinary (chance ~0.15)
    assert tolerant.judge(dict(FARM, inbound=4.0), settled=25.0) is None
    # more than max_returns received: never, however many were expected
    assert tolerant.judge(dict(FARM, inbound=5.0), settled=500.0) is None
    # the default (0): one return stops it, as before
    assert judge().judge(dict(FARM, inbound=1.0), settled=500.0) is None


def test_surprise_is_the_poisson_tail() -> None:
    for expected in (0.5, 6.0, 14.0, 40.0):
        for received in range(6):
            tail = sum(math.exp(-expected) * expected ** k / math.factorial(k)
                       for k in range(received + 1))
            assert math.isclose(few_returns_surprise(received, expected), -math.log(tail),
                                abs_tol=1e-9)
    assert few_returns_surprise(0.0, 6.0) == 6.0  # none received: the expectation itself
    assert few_returns_surprise(0.4, 6.0) == few_returns_surprise(1, 6.0)  # rounded up
    assert few_returns_surprise(2, 0.0) == 0.0


def test_survives_pickle() -> None:
    j = judge()
    back = pickle.loads(pickle.dumps(j))
    assert back.judge(FARM, settled=50.0) == j.judge(FARM, settled=50.0)
