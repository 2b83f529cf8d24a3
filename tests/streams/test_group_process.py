"""Replay with the group detector in a process of its own: the chain's alerts, in its order."""

from __future__ import annotations

import pytest

from detectors.allowlist import Allowlist
from detectors.composite import DetectorChain
from detectors.config import load_settings
from detectors.numbers import NumberNormaliser
from detectors.records import Call
from streams.group_process import GroupProcessChain, GroupProcessError
from streams.replay import replay
from testbed.evaluation import calls_from_records
from testbed.simulation import SimConfig
from testbed.worlds import simulate_world


@pytest.fixture(scope="module")
def calls() -> list[Call]:
    settings = load_settings()
    day = simulate_world("wide", SimConfig.preset("small", hours=8), 5)
    return list(calls_from_records(day.records(), NumberNormaliser(settings.input.region), {}))


def _alerts(detector: DetectorChain | GroupProcessChain, calls: list[Call]) -> list[dict]:
    out = []
    for call in calls:
        out.extend(a.to_dict() for a in detector.observe(call))
    if isinstance(detector, GroupProcessChain):
        out.extend(a.to_dict() for a in detector.flush())
    return out


@pytest.mark.parametrize("batch", [1, 97, 4096])
def test_the_same_alerts_in_the_same_order_as_the_chain(calls: list[Call], batch: int) -> None:
    settings = load_settings()
    expected = _alerts(DetectorChain.for_settings(settings, rings=True), calls)
    with GroupProcessChain(settings, batch=batch) as split:
        got = _alerts(split, calls)
        assert split.stats.calls + split.stats.duplicates == len(calls)
    kinds = {a["kind"] for a in expected}
    assert kinds == {"number", "ring"}, "the day must give both kinds to compare"
    assert any(a["kind"] == "number" and "ring_id" in a for a in expected)
    assert got == expected


def test_counts_match_the_chain_at_the_end(calls: list[Call]) -> None:
    settings = load_settings()
    chain = DetectorChain.for_settings(settings, rings=True)
    _alerts(chain, calls)
    with GroupProcessChain(settings, batch=500) as split:
        _alerts(split, calls)
        assert (split.stats.calls, split.stats.duplicates, split.stats.alerts) == (
            chain.stats.calls, chain.stats.duplicates, chain.stats.alerts)
        assert split.tracked_numbers == chain.tracked_numbers


def test_the_allowlist_reaches_the_group_detector(calls: list[Call]) -> None:
    settings = load_settings()
    chain = DetectorChain.for_settings(settings, rings=True)
    members = {m for a in _alerts(chain, calls) if a["kind"] == "ring" for m in a["members"]}
    allow = Allowlist(members)
    with GroupProcessChain(settings, allow, batch=500) as split:
        got = _alerts(split, calls)
    assert members and not any(a["kind"] == "ring" for a in got)


def test_replay_takes_the_late_alerts_at_the_end(calls: list[Call]) -> None:
    settings = load_settings()
    expected: list[dict] = []
    replay(calls, DetectorChain.for_settings(settings, rings=True),
           lambda a: expected.append(a.to_dict()))
    got: list[dict] = []
    with GroupProcessChain(settings) as split:  # one batch: everything comes at the end
        summary = replay(calls, split, lambda a: got.append(a.to_dict()))
    assert got == expected and sum(summary.alerts.values()) == len(expected)
    assert summary.rings and summary.calls == split.stats.calls


def test_a_failing_child_ends_with_a_clear_error() -> None:
    settings = load_settings()
    with GroupProcessChain(settings, batch=1) as split:
        split.observe(Call("+8617100000001", "+8613900000001", 1.7e9, 0, False))
        # withheld, so that the per-number detector (which would fail on it first) skips it
        bad = Call("", 12345, 1.7e9 + 1, 0, False)  # type: ignore[arg-type]
        with pytest.raises(GroupProcessError, match="group detection failed: ValidationError"):
            split.observe(bad)
            split.flush()


def test_a_child_gone_ends_with_a_clear_error() -> None:
    settings = load_settings()
    with GroupProcessChain(settings, batch=2) as split:
        split.observe(Call("+8617100000001", "+8613900000001", 1.7e9, 0, False))
        split._child.kill()
        split._child.wait(30)
        with pytest.raises(GroupProcessError, match="went away|stopped"):
            for i in range(4):
                split.observe(Call("+8617100000001", f"+861390000001{i}", 1.7e9 + i, 0, False))
            split.flush()


def test_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="batch"):
        GroupProcessChain(load_settings(), batch=0)


def test_the_child_runs_this_code_wherever_replay_starts(tmp_path, monkeypatch) -> None:
    # a directory with a package of the same name must not stand in for dialguard's own
    fake = tmp_path / "streams"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "group_process.py").write_text("raise SystemExit(3)\n")
    monkeypatch.chdir(tmp_path)
    with GroupProcessChain(load_settings(), batch=1) as split:
        split.observe(Call("+8617100000001", "+8613900000001", 1.7e9, 0, False))
        split.observe(Call("+8617100000001", "+8613900000002", 1.7e9 + 1, 0, False))
        assert split.flush() == [] and split._child.poll() is None
