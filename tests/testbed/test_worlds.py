"""The hard world: determinism, labels, the cases it adds, and the CLI's --world option."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import orjson
import pytest
from click.testing import CliRunner

from detectors.numbers import NumberNormaliser
from detectors.records import Call
from formats.json_lines import JsonLines
from testbed.simulation import ABUSE_CLASSES, ALL_CLASSES, SimConfig, simulate
from testbed.worlds import HardDay, kind_breakdown, simulate_world

SMALL = SimConfig.preset("small")
NORM = NumberNormaliser("CN")


@pytest.fixture(scope="module")
def day() -> HardDay:
    out = simulate_world("hard", SMALL, seed=11)
    assert isinstance(out, HardDay)
    return out


@pytest.fixture(scope="module")
def calls(day):
    decoded = list(JsonLines(NORM).read(orjson.dumps(r) for r in day.records()))
    return [c for c in decoded if isinstance(c, Call)], [c for c in decoded
                                                          if not isinstance(c, Call)]


def _per_caller(good):
    by: dict[str, list[Call]] = defaultdict(list)
    for c in good:
        by[c.caller].append(c)
    return by


def test_same_seed_same_world_other_seed_other_world():
    a = simulate_world("hard", SMALL, 5)
    b = simulate_world("hard", SMALL, 5)
    c = simulate_world("hard", SMALL, 6)
    assert list(a.records()) == list(b.records())
    assert a.labels.to_dict() == b.labels.to_dict()
    assert list(a.records()) != list(c.records())
    assert a.labels.classes != c.labels.classes


def test_hard_differs_from_standard_for_the_same_seed(day):
    standard = simulate(SMALL, seed=11)
    assert simulate_world("standard", SMALL, 11).labels.to_dict() == standard.labels.to_dict()
    assert day.labels.classes != standard.labels.classes
    assert "kinds" in day.labels.meta and "kinds" not in standard.labels.meta
    assert day.labels.meta["world"] == "hard"
    with pytest.raises(ValueError, match="unknown world"):
        simulate_world("easy", SMALL, 1)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_class_and_campaign_class_is_present(seed):
    labels = simulate_world("hard", SMALL, seed).labels
    assert set(labels.classes.values()) == set(ALL_CLASSES)
    assert {c.cls for c in labels.campaigns} == set(ABUSE_CLASSES)
    for camp in labels.campaigns:
        assert camp.members and all(labels.class_of(m) == camp.cls for m in camp.members)


def test_kinds_and_allowlist(day):
    labels = day.labels
    kinds = labels.meta["kinds"]
    assert sum(labels.meta["kind_counts"].values()) == len(kinds)
    for number, kind in kinds.items():
        assert kind.split("/")[0] == labels.class_of(number)
    unregistered = {n for n, k in kinds.items() if k == "enterprise/unregistered_cc"}
    registered = {n for n, k in kinds.items() if k == "enterprise/registered"}
    assert unregistered and registered
    assert set(labels.allowlist) == registered  # the unregistered call centres are not on it
    assert labels.members("enterprise") == registered | unregistered


def test_hard_cases_behave_as_described(day, calls):
    good, _ = calls
    kinds = day.labels.meta["kinds"]
    by = _per_caller(good)
    inbound: dict[str, int] = defaultdict(int)
    for c in good:
        inbound[c.callee] += 1

    def kind_members(kind: str) -> list[str]:
        return [n for n, k in kinds.items() if k.startswith(kind) and n in by]

    # low-and-slow dialers never reach 40 calls in any 10 minutes, but call for hours
    slow = kind_members("cloud_dialer/low_slow")
    assert slow
    for number in slow:
        t = np.sort([c.start for c in by[number]])
        assert (np.searchsorted(t, t + 600) - np.arange(len(t))).max() < 40
        assert t[-1] - t[0] > 1800
    # some dialer victims call back
    assert sum(inbound[n] for n in slow) > 0
    # couriers answer less often than in the standard world, some well below 0.75
    rates = [np.mean([c.answered for c in by[n]]) for n in kind_members("courier")]
    assert min(rates) < 0.75 and max(rates) > 0.5
    # rotating pools that rotate: each number makes tens of calls, not a handful
    rotate = kind_members("rotating_pool/rotate")
    if rotate:
        assert np.median([len(by[n]) for n in rotate]) >= 15
    # ring-once numbers: short rings, unanswered
    for number in kind_members("ring_once"):
        rang = [c for c in by[number] if not c.answered and c.ring]
        assert np.median([c.ring for c in rang]) < 8
    # unregistered call centres talk to customers for real
    for number in kind_members("enterprise/unregistered_cc"):
        answered = [c.duration for c in by[number] if c.answered]
        if len(answered) >= 10:
            assert np.median(answered) >= 10


def test_delivery_is_out_of_order_and_some_clocks_write_whole_seconds(day, calls):
    good, bad = calls
    withheld = sum(c.withheld for c in good)  # the simulator's "anonymous" defect is a call now
    assert len(bad) + withheld == day.labels.meta["malformed"]
    starts = [c.start for c in good]
    newest = np.maximum.accumulate(starts)
    lateness = newest - np.array(starts)
    assert lateness.max() > 300  # later than the readers' re-ordering slack
    assert np.mean(lateness > 0) > 0.05
    whole = np.mean([float(s).is_integer() for s in starts])
    assert 0.02 < whole < 0.98


def test_kind_breakdown_counts_alerted_members(day):
    labels = day.labels
    kinds = labels.meta["kinds"]
    slow = sorted(n for n, k in kinds.items() if k.startswith("cloud_dialer/low_slow"))
    out = kind_breakdown({"x": {slow[0]}, "y": set()}, labels)
    entry = out[kinds[slow[0]]]
    assert entry["class"] == "cloud_dialer"
    assert entry["alerted"] == {"x": 1, "y": 0}
    assert out["ordinary/plain"]["members"] > 100


def test_cli_simulate_and_evaluate_hard_world(tmp_path):
    from streams.cli import main

    runner = CliRunner()
    out = tmp_path / "hard.jsonl"
    result = runner.invoke(main, ["simulate", str(out), "--world", "hard", "--size", "small",
                                  "--seed", "4", "--no-progress"])
    assert result.exit_code == 0, result.output
    labels = orjson.loads((tmp_path / "hard.jsonl.labels.json").read_bytes())
    assert labels["meta"]["world"] == "hard" and labels["meta"]["kinds"]
    report_path = tmp_path / "report.json"
    result = runner.invoke(main, ["evaluate", "--world", "hard", "--size", "small", "--seed",
                                  "4", "--json", str(report_path)])
    assert result.exit_code == 0, result.output
    assert "per kind" in result.output
    report = orjson.loads(report_path.read_bytes())
    assert report["world"]["world"] == "hard"
    assert set(report["alerts"]) == {"dialguard", "volume_rule", "ani_profile"}
    for name, alerts in report["alerts"].items():
        assert len(alerts) == report["detectors"][name]["alerts"]
        for alert in alerts:
            assert alert["truth"] and {"number", "class", "kind"} <= set(alert["truth"][0])
    kinds = report["kinds"]
    assert sum(e["members"] for e in kinds.values()) == len(labels["classes"])
    result = runner.invoke(main, ["evaluate", "--world", "flat"])
    assert result.exit_code != 0 and "flat" in result.output
