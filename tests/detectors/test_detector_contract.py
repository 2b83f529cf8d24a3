"""Contract every detector must keep, applied to every detector there is.

The detectors are found, not listed (as River's ``river/checks`` does): every public
class in the ``detectors`` package and in ``testbed.baselines`` whose instances are a
:class:`~detectors.protocol.CallDetector`, made by its ``example()`` classmethod or a
constructor without arguments.  Each must keep these:

- the same input gives the same alerts, in a fresh instance or not;
- state survives a pickle round trip mid-stream and the alerts after it are the same as
  without the round trip;
- a :class:`~detectors.protocol.PartDetector`'s table state survives its binary form: the
  values a changelog table would hold, written and read back mid-stream, change nothing;
- calls with every optional field missing, or odd but valid values, never crash;
- alerts follow CONTRACT section 2 (number alerts name a caller and may carry the
  ``ring_id`` of their ring, ring alerts a stable ``ring_id``, all members and the new
  ones, never a callee number in the clear).
"""

from __future__ import annotations

import copy
import importlib
import inspect
import pickle
import pkgutil
import re
from collections.abc import Callable
from typing import Any

import pytest

import detectors
from detectors.alerts import Alert
from detectors.composite import DetectorChain
from detectors.config import build_settings, load_settings, with_override
from detectors.engine import Detector
from detectors.features import NumberState
from detectors.model import model_vector
from detectors.protocol import CallDetector, PartDetector
from detectors.records import Call
from detectors.references import References

from .helpers import T0, courier_calls, dialer_calls, pool_calls


def discover() -> dict[str, Callable[[], Any]]:
    """Every detector class in ``detectors`` and the testbed baselines, by qualified name."""
    modules = [importlib.import_module(m.name) for m in
               pkgutil.walk_packages(detectors.__path__, "detectors.")]
    modules.append(importlib.import_module("testbed.baselines"))
    found: dict[str, Callable[[], Any]] = {}
    for module in modules:
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if name.startswith("_") or cls.__module__ != module.__name__:
                continue
            if getattr(cls, "_is_protocol", False) or not all(
                hasattr(cls, attr) for attr in ("observe", "expire", "tracked_numbers")
            ):
                continue
            make = getattr(cls, "example", cls)
            if isinstance(make(), CallDetector):
                found[f"{module.__name__}.{name}"] = make
    return found


FACTORIES = discover()


def test_discovery_finds_the_detectors_we_know() -> None:
    assert {"detectors.engine.Detector", "detectors.rings.detector.GroupDetector",
            "detectors.composite.DetectorChain", "testbed.baselines.VolumeRuleBaseline",
            "testbed.baselines.AniProfileBaseline"} <= set(FACTORIES)
    parts = {n for n, make in FACTORIES.items() if isinstance(make(), PartDetector)}
    assert {"detectors.engine.Detector", "detectors.rings.detector.GroupDetector"} <= parts


def stream() -> list[Call]:
    calls = (dialer_calls(n=600, every=1.5) + courier_calls(n=200, every=10.0)
             + dialer_calls("+8616500000002", n=300, every=4.0, answer_rate=0.0, seed=5)
             + pool_calls(members=12, calls_each=8, t0=T0 + 120))
    return sorted(calls, key=lambda c: (c.start, c.caller, c.callee))


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
    assert first, "the stream holds two obvious dialers and a pool of numbers"
    assert run(factory(), calls) == first


def test_pickle_round_trip_mid_stream_changes_nothing(factory: Callable[[], Any]) -> None:
    calls = stream()
    straight = run(factory(), calls)
    detector = factory()
    half = len(calls) // 2
    before = run(detector, calls[:half])
    restored = pickle.loads(pickle.dumps(detector, protocol=pickle.HIGHEST_PROTOCOL))
    assert before + run(restored, calls[half:]) == straight


@pytest.mark.parametrize("name", sorted(n for n, make in FACTORIES.items()
                                        if isinstance(make(), PartDetector)))
def test_table_state_round_trips_in_binary(name: str) -> None:
    """What a Faust table stores is each key's value in binary form, not the detector."""
    calls = stream()
    straight = run(FACTORIES[name](), calls)
    detector = FACTORIES[name]()
    cut = len(calls) // 3
    before = run(detector, calls[:cut])
    table = detector.table_state()
    assert table and all(isinstance(v, bytes) for v in table.values())
    detector.load_table_state({k: bytes(v) for k, v in table.items()})
    assert detector.table_state() == table
    assert before + run(detector, calls[cut:]) == straight


def test_state_values_alone_round_trip() -> None:
    """The engine's parts, copied one by one, carry on as the original (references too)."""
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
    short = [Call("+8617000000005", "+112", T0 + 400 + i, 0, False, trunk="t") for i in range(9)]
    alerts = run(detector, bare + odd + short)
    for alert in alerts:
        Alert.from_dict(alert)


def test_alerts_follow_the_contract(factory: Callable[[], Any]) -> None:
    calls = stream()
    callees = {c.callee for c in calls} - {c.caller for c in calls}
    ring_ids: dict[str, str] = {}
    tagged = 0
    for alert in run(factory(), calls):
        assert alert["kind"] in ("number", "ring")
        if alert["kind"] == "number":
            assert isinstance(alert["caller"], str) and alert["caller"].startswith("+")
            if "ring_id" in alert:  # the ring the number is a member of
                assert re.fullmatch(r"ring-[0-9a-f]{12}", alert["ring_id"])
                tagged += 1
        else:
            members, new = alert["members"], alert["new_members"]
            assert members and all(m.startswith("+") for m in members)
            assert set(new) <= set(members) and len(set(members)) == len(members)
            assert re.fullmatch(r"ring-[0-9a-f]{12}", alert["ring_id"])
            for m in members:  # one ring id for a member for as long as the ring lives
                assert ring_ids.setdefault(m, alert["ring_id"]) == alert["ring_id"]
        assert isinstance(alert["score"], float | int)
        assert alert["reasons"] and all(isinstance(r, str) and r for r in alert["reasons"])
        assert alert["first_seen"] <= alert["detected_at"]
        text = str(alert)
        assert not any(callee in text or callee[1:] in text for callee in callees)
    if isinstance(factory(), DetectorChain):  # with group detection: members are tagged
        assert tagged


def test_same_seed_same_model_scores() -> None:
    def scores(seed: int) -> list[float]:
        from detectors.model import CallingProfileModel

        model = CallingProfileModel(seed=seed, window_size=20)
        feats = [{"attempts": 10 + i % 7, "answer_ratio": (i % 10) / 10} for i in range(200)]
        return [model.score_and_learn(f) for f in feats]

    assert scores(3) == scores(3)
    assert scores(3) != scores(4)


def test_engine_part_alone_is_the_engine() -> None:
    """``observe`` is deduplication then ``observe_unique``: the same alerts either way."""
    calls = stream()
    detector = Detector(load_settings())
    unique = []
    seen: set[str] = set()
    for c in calls:
        if c.id is None or c.id not in seen:
            seen.add(c.id or "")
            unique += [a.to_dict() for a in detector.observe_unique(c)]
    assert unique == run(Detector(load_settings()), calls)


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
