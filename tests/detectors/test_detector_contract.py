"""Contract every detector must keep (dialguard's and the baselines).

- the same input and seed give the same alerts, in a fresh process or not;
- state survives a pickle round trip mid-stream (Faust tables) and the alerts after it are the
  same as without the round trip;
- calls with every optional field missing, or odd but valid values, never crash;
- alerts follow CONTRACT section 2.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from typing import Any

import pytest

from detectors.alerts import Alert
from detectors.config import build_settings, load_settings, with_override
from detectors.engine import Detector
from detectors.features import NumberState
from detectors.model import model_vector
from detectors.records import Call
from detectors.references import References
from testbed.baselines import AniProfileBaseline, VolumeRuleBaseline

from .helpers import T0, courier_calls, dialer_calls

FACTORIES: dict[str, Callable[[], Any]] = {
    "dialguard": lambda: Detector(load_settings()),
    "volume_rule": lambda: VolumeRuleBaseline(max_calls=10, window_s=60),
    "ani_profile": lambda: AniProfileBaseline(min_attempts=30),
}


def stream() -> list[Call]:
    calls = (dialer_calls(n=600, every=1.5) + courier_calls(n=200, every=10.0)
             + dialer_calls("+8616500000002", n=300, every=4.0, answer_rate=0.0, seed=5))
    return sorted(calls, key=lambda c: (c.start, c.caller))


def run(detector: Any, calls: list[Call]) -> list[dict]:
    out = []
    for c in calls:
        out += [a.to_dict() for a in detector.observe(c)]
    return out


@pytest.fixture(params=sorted(FACTORIES))
def factory(request: pytest.FixtureRequest) -> Callable[[], Any]:
    return FACTORIES[request.param]


def test_same_input_same_alerts(factory: Callable[[], Any]) -> None:
    calls = stream()
    first = run(factory(), calls)
    assert first, "the stream holds two obvious dialers"
    assert run(factory(), calls) == first


def test_pickle_round_trip_mid_stream_changes_nothing(factory: Callable[[], Any]) -> None:
    calls = stream()
    straight = run(factory(), calls)
    detector = factory()
    half = len(calls) // 2
    before = run(detector, calls[:half])
    restored = pickle.loads(pickle.dumps(detector, protocol=pickle.HIGHEST_PROTOCOL))
    assert before + run(restored, calls[half:]) == straight


def test_state_values_alone_round_trip() -> None:
    """What a Faust table stores is the per-number value, not the detector."""
    detector = Detector(load_settings())
    calls = stream()
    run(detector, calls[:500])
    copied = Detector(load_settings(), states={k: pickle.loads(pickle.dumps(v))
                                               for k, v in detector.states.items()})
    copied.light = copy.deepcopy(detector.light)
    copied.model = pickle.loads(pickle.dumps(detector.model))
    copied.reach.references = References.from_bytes(detector.reach.references.to_bytes())
    copied.dedup = copy.deepcopy(detector.dedup)
    copied.watermark = detector.watermark
    copied._last_sweep = detector._last_sweep
    assert run(copied, calls[500:]) == run(detector, calls[500:])


def test_missing_optional_fields_do_not_crash(factory: Callable[[], Any]) -> None:
    detector = factory()
    bare = [Call("+8617000000003", f"+86139{i:08d}", T0 + i, 0, False) for i in range(200)]
    odd = [Call("+8617000000004", "+8613900000001", T0 + 300 + i, 10_000, True, ring=0.0,
                id="", trunk="", src_ip="::1", disposition="CONGESTION") for i in range(50)]
    alerts = run(detector, bare + odd)
    for alert in alerts:
        Alert.from_dict(alert)


def test_alerts_follow_the_contract(factory: Callable[[], Any]) -> None:
    for alert in run(factory(), stream()):
        assert alert["kind"] in ("number", "ring")
        assert isinstance(alert["caller"], str) and alert["caller"].startswith("+")
        assert isinstance(alert["score"], float | int)
        assert alert["reasons"] and all(isinstance(r, str) and r for r in alert["reasons"])
        assert alert["first_seen"] <= alert["detected_at"]


def test_same_seed_same_model_scores() -> None:
    def scores(seed: int) -> list[float]:
        from detectors.model import CallingProfileModel

        model = CallingProfileModel(seed=seed, window_size=20)
        feats = [{"attempts": 10 + i % 7, "answer_ratio": (i % 10) / 10} for i in range(200)]
        return [model.score_and_learn(f) for f in feats]

    assert scores(3) == scores(3)
    assert scores(3) != scores(4)


@pytest.mark.parametrize("features", [{}, {"attempts": float("inf")}, {"answer_ratio": -3.0},
                                      {"mean_talk_s": 1e12, "gap_cv": None}])
def test_model_vector_tolerates_missing_and_extreme_features(features: dict) -> None:
    vector = model_vector(features)
    assert all(0.0 <= v <= 1.0 for v in vector.values())


def test_learned_references_survive_a_restart_mid_stream() -> None:
    """A worker restarted from its changelog (states and references as bytes) alerts the same."""
    settings = load_settings()
    settings = type(settings)(**{**settings.__dict__,
                                 "reach": type(settings.reach)(min_samples=5)})
    calls = stream()
    straight = run(Detector(settings), calls)
    detector = Detector(settings)
    half = len(calls) // 2
    before = run(detector, calls[:half])
    assert detector.reach.references.samples > 0
    restarted = Detector(settings, states={k: NumberState.from_bytes(v.to_bytes())
                                           for k, v in detector.states.items()})
    restarted.reach.references = References.from_bytes(detector.reach.references.to_bytes())
    restarted.light = copy.deepcopy(detector.light)
    restarted.model = pickle.loads(pickle.dumps(detector.model))
    restarted.dedup = copy.deepcopy(detector.dedup)
    restarted.watermark, restarted._last_sweep = detector.watermark, detector._last_sweep
    assert before + run(restarted, calls[half:]) == straight


def test_circles_on_keeps_the_contract() -> None:
    settings = with_override(load_settings(), "rules.harassment.min_circle_callees", 0)
    raw = dict(settings.raw)
    raw["circles"] = dict(raw["circles"], enabled=True, bits=16)
    on = Detector(build_settings(raw))
    calls = stream()
    first = run(on, calls)
    restored = pickle.loads(pickle.dumps(on))
    assert restored.graph is not None and restored.graph.added == on.graph.added
    assert run(Detector(build_settings(raw)), calls) == first
