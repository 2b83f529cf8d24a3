"""Many seeds: parsing seed ranges, pooling per-seed reports, the worst seed, the CLI."""

from __future__ import annotations

import orjson
import pytest
from click.testing import CliRunner

from detectors.alerts import Alert
from testbed.evaluation import score_alerts
from testbed.report import (
    SEED_SPLIT,
    SeedFailed,
    SeedJob,
    evaluate_seeds,
    parse_seeds,
    pool_seeds,
    split_of,
)
from testbed.simulation import Campaign, Labels


def test_parse_seeds_ranges_lists_and_the_split():
    assert parse_seeds("1-3") == [1, 2, 3]
    assert parse_seeds("4, 2,2-3") == [4, 2, 3]
    assert parse_seeds("development") == list(range(1, 21))
    assert parse_seeds("reported") == list(range(101, 121))
    assert set(SEED_SPLIT["development"]).isdisjoint(SEED_SPLIT["reported"])
    assert split_of(range(101, 121)) == "reported" and split_of([1, 2]) is None
    for bad in ("", "x", "5-2", "1-y"):
        with pytest.raises(ValueError):
            parse_seeds(bad)


def _seed_report(seed, alerts, labels, first_calls=None):
    return {"seed": seed, "calls": 100,
            "detectors": {"d": score_alerts(alerts, labels, first_calls)}}


def _labels(n_dialers):
    classes = {f"+{i}": "cloud_dialer" for i in range(n_dialers)} | {"+99": "courier"}
    return Labels(classes=classes, allowlist=[], campaigns=[
        Campaign(f"c{i}", "cloud_dialer", [f"+{i}"], 0.0, 100.0) for i in range(n_dialers)])


def test_pooled_figures_are_sums_and_the_worst_seed_is_named():
    a = _seed_report(1, [Alert("number", 1, [], 10.0 * (i + 1), 0, caller=f"+{i}")
                         for i in range(4)], _labels(4))
    b = _seed_report(2, [Alert("number", 1, [], 50.0, 0, caller="+0"),
                         Alert("number", 1, [], 50.0, 0, caller="+99")], _labels(2))
    pooled = pool_seeds([a, b])
    d = pooled["detectors"]["d"]
    assert pooled["seeds"] == [1, 2] and pooled["calls"] == 200
    assert d["alerted_numbers"] == 6 and d["true_positives"] == 5
    assert d["precision"] == pytest.approx(5 / 6)
    assert d["worst_seed_precision"] == {"value": 0.5, "seed": 2}
    cd = d["recall_by_class"]["cloud_dialer"]
    assert (cd["members"], cd["alerted"]) == (6, 5)
    assert cd["worst_seed"] == {"value": 0.5, "seed": 2}
    # delays 10, 20, 30, 40 and 50: the median over all detected campaigns of all seeds
    assert cd["time_to_detect"] == {"campaigns": 6, "detected": 5, "median_s": 30.0}
    assert d["false_positives_by_class"]["courier"] == {"members": 2, "alerted": 1, "rate": 0.5}
    assert [row["seed"] for row in d["per_seed"]] == [1, 2]
    assert [row["time_to_detect_s"]["cloud_dialer"] for row in d["per_seed"]] == [25.0, 50.0]


def test_cli_evaluate_many_seeds_writes_per_seed_and_pooled_json(tmp_path):
    from streams.cli import main

    out = tmp_path / "seeds.json"
    runner = CliRunner()
    result = runner.invoke(main, ["evaluate", "--world", "wide", "--size", "small", "--hours",
                                  "2", "--seeds", "3,4", "--jobs", "2", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "worst seed" in result.output and "pool members in rings" in result.output
    assert "marketing_blast/sim_farm" in result.output  # the per-kind table
    report = orjson.loads(out.read_bytes())
    assert report["seeds"] == [3, 4] and [r["seed"] for r in report["per_seed"]] == [3, 4]
    dialguard = report["pooled"]["detectors"]["dialguard"]
    per_seed = [r["detectors"]["dialguard"] for r in report["per_seed"]]
    assert dialguard["alerted_numbers"] == sum(m["alerted_numbers"] for m in per_seed)
    assert set(dialguard["recall_by_class"]) >= {"marketing_blast", "debt_collection"}
    assert report["pooled"]["kinds"]
    bad = runner.invoke(main, ["evaluate", "--seeds", "9-1"])
    assert bad.exit_code == 2 and "below the start" in bad.output
    bad = runner.invoke(main, ["evaluate", "--seeds", "1", "--input", "x", "--labels", "y"])
    assert bad.exit_code == 2


def test_a_failing_seed_is_named():
    with pytest.raises(SeedFailed, match="nowhere world, seed 7: ValueError: unknown world"):
        evaluate_seeds([SeedJob("nowhere", 7, "small")], processes=1)


def test_pools_are_pooled_by_ingress_and_trunk_field():
    members = [f"+{i}" for i in range(10, 20)]
    labels = Labels(classes={m: "rotating_pool" for m in members}, allowlist=[], campaigns=[
        Campaign("own", "rotating_pool", members[:4], 0.0, 9.0,
                 params={"shared_ingress": 0.0, "trunk_field": 1.0}),
        Campaign("shared", "rotating_pool", members[4:], 0.0, 9.0,
                 params={"shared_ingress": 1.0, "trunk_field": 0.0})])
    ring = Alert("ring", 1.0, [], 600.0, 0.0, members=members[:4] + members[4:7])
    pools = pool_seeds([_seed_report(1, [ring], labels)])["detectors"]["d"]["pools"]
    assert pools["pools"] == 2 and pools["share_15min"] == pytest.approx(0.7)
    assert pools["worst_pool"]["id"] == "shared" and pools["worst_pool"]["seed"] == 1
    assert pools["by_ingress"]["own"]["share_15min"] == 1.0
    assert pools["by_ingress"]["shared"]["share_15min"] == pytest.approx(0.5)
    assert pools["by_trunk_field"]["absent"] == {"pools": 1, "members": 6, "share_15min": 0.5,
                                                 "share_ever": 0.5}
    assert pools["share_ever"] == pytest.approx(0.7)
    assert "share_15min_of_own_first_call" not in pools  # not measured: not made up
    # the shared pool's last three numbers start calling an hour in: not found within 15
    # minutes of the pool's first call, but within 15 minutes of their own
    late = Alert("ring", 1.0, [], 3700.0, 0.0, members=members[7:])
    first = {m: (3600.0 if m in members[7:] else 0.0) for m in members}
    pools = pool_seeds([_seed_report(1, [ring, late], labels, first)])["detectors"]["d"]["pools"]
    assert pools["share_15min"] == pytest.approx(0.7) and pools["share_ever"] == 1.0
    assert pools["share_15min_of_own_first_call"] == 1.0
    assert pools["by_ingress"]["shared"]["share_15min_of_own_first_call"] == 1.0


def test_false_positives_are_listed_per_seed_and_counted_by_judgement():
    from testbed.report import false_positive_rows

    labels = _labels(2)
    labels.meta["legit_classes"] = ["ordinary", "courier"]
    burst = Alert("number", 1, ["cloud_dialer: bulk burst"], 30.0, 0, caller="+99",
                  profile="cloud_dialer")
    ring = Alert("ring", 1, ["3 numbers"], 60.0, 0, members=["+0", "+99", "+55"],
                 profile="ring")
    rows = false_positive_rows([burst, ring], labels)
    # the courier once, by what named it first; the dialer is no false positive, and an
    # unlisted number is an ordinary subscriber
    assert [(r["number"], r["class"], r["profile"], r["detected_at"]) for r in rows] == [
        ("+99", "courier", "cloud_dialer", 30.0), ("+55", "ordinary", "ring", 60.0)]
    reports = [dict(_seed_report(s, [burst, ring], labels),
                    false_positive_alerts=false_positive_rows([burst, ring][::d], labels))
               for s, d in ((1, 1), (2, -1))]
    assert pool_seeds(reports)["false_positives_by_judgement"] == {
        "courier": {"cloud_dialer": 1, "ring": 1}, "ordinary": {"ring": 2}}
