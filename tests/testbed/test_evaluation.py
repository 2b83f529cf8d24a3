"""The evaluator's metrics on hand-made cases, and the comparison on a small world."""

from __future__ import annotations

import orjson
import pytest
from click.testing import CliRunner

from detectors.alerts import Alert
from detectors.config import load_settings
from detectors.numbers import NumberNormaliser
from detectors.records import Call
from testbed.baselines import AniProfileBaseline, VolumeRuleBaseline
from testbed.evaluation import (
    calls_from_records,
    compare,
    default_detectors,
    opening_calls,
    render_text,
    score_alerts,
)
from testbed.simulation import Campaign, Labels, SimConfig, simulate


def _alert(caller, t, first=0.0):
    return Alert("number", 1.0, ["x"], t, first, caller=caller)


@pytest.fixture()
def labels():
    classes = {"+1": "cloud_dialer", "+2": "cloud_dialer", "+3": "ring_once",
               "+4": "rotating_pool", "+5": "rotating_pool", "+6": "courier", "+7": "enterprise",
               "+8": "ordinary", "+9": "ordinary"}
    campaigns = [Campaign("cd", "cloud_dialer", ["+1", "+2"], 100.0, 900.0),
                 Campaign("ro", "ring_once", ["+3"], 200.0, 900.0),
                 Campaign("rp", "rotating_pool", ["+4", "+5"], 50.0, 900.0)]
    return Labels(classes=classes, campaigns=campaigns, allowlist=["+7"])


def test_precision_recall_f1_and_time_to_detect(labels):
    alerts = [_alert("+2", 400.0), _alert("+1", 250.0), _alert("+1", 9000.0),
              _alert("+6", 300.0), _alert("+99", 500.0),  # unlabelled -> ordinary
              Alert("ring", 1.0, ["pool"], 700.0, 50.0, members=["+4", "+8"])]
    m = score_alerts(alerts, labels)
    assert m["alerts"] == 6 and m["alerted_numbers"] == 6  # +1 +2 +6 +99 +4 +8
    assert m["true_positives"] == 3 and m["false_positives"] == 3
    assert m["precision"] == pytest.approx(0.5)
    # required classes: cloud_dialer (2/2) + ring_once (0/1); rotating_pool left out
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    rc = m["recall_by_class"]
    assert rc["cloud_dialer"] == {"members": 2, "alerted": 2, "recall": 1.0}
    assert rc["ring_once"]["recall"] == 0.0
    assert rc["rotating_pool"]["recall"] == 0.5 and rc["rotating_pool"]["note"] == "ring issue"
    assert rc["marketing_blast"]["recall"] is None  # no members
    fp = m["false_positives_by_class"]
    assert fp["courier"] == {"members": 1, "alerted": 1, "rate": 1.0}
    assert fp["ordinary"]["alerted"] == 2 and fp["enterprise"]["alerted"] == 0
    ttd = m["time_to_detect"]
    assert ttd["cloud_dialer"] == {"campaigns": 1, "detected": 1, "median_s": 150.0}
    assert ttd["ring_once"] == {"campaigns": 1, "detected": 0, "median_s": None}
    assert ttd["rotating_pool"]["median_s"] == 650.0
    by_id = {c["id"]: c for c in m["campaigns"]}
    assert by_id["cd"]["alerted_members"] == 2 and by_id["ro"]["time_to_detect_s"] is None


def test_no_alerts_and_median_over_campaigns(labels):
    m = score_alerts([], labels)
    assert m["precision"] is None and m["recall"] == 0.0 and m["f1"] == 0.0
    labels.campaigns += [Campaign("cd2", "cloud_dialer", ["+2"], 0.0, 10.0),
                         Campaign("cd3", "cloud_dialer", ["+1"], 0.0, 10.0)]
    m = score_alerts([_alert("+1", 130.0), _alert("+2", 1000.0)], labels)
    # cd: 30 s (first alert +1 at 130), cd2: 1000 s, cd3: 130 s -> median 130
    assert m["time_to_detect"]["cloud_dialer"]["median_s"] == 130.0
    assert m["precision"] == 1.0


def test_compare_baselines_on_a_small_world():
    day = simulate(SimConfig.preset("small"), seed=5)
    rejected: dict[str, int] = {}
    calls = list(calls_from_records(day.records(), NumberNormaliser("CN"), rejected))
    withheld = sum(c.withheld for c in calls)  # the "anonymous" defect is a call (CONTRACT 1a)
    assert sum(rejected.values()) + withheld == day.labels.meta["malformed"]
    assert all(b.start >= a.start for a, b in zip(calls, calls[1:], strict=False))
    allow = day.labels.allowlist
    report = compare(calls, day.labels, [
        ("volume_rule", lambda: VolumeRuleBaseline(allowlist=allow)),
        ("ani_profile", lambda: AniProfileBaseline(allowlist=allow)),
        ("broken", _missing),
    ])
    assert report["detectors"]["broken"]["error"].startswith("not available")
    for name in ("volume_rule", "ani_profile"):
        m = report["detectors"][name]
        assert m["alerted_numbers"] > 0
        assert m["recall_by_class"]["cloud_dialer"]["alerted"] > 0
        assert m["false_positives_by_class"]["enterprise"]["alerted"] == 0  # allowlisted
    text = render_text(report)
    assert "volume_rule" in text and "ring issue" in text and "broken" in text
    orjson.dumps(report)  # the JSON report is serialisable


def _missing():
    raise ImportError("no module named nowhere")


def test_default_detectors_names():
    names = [n for n, _ in default_detectors(load_settings(), [])]
    assert names == ["dialguard", "volume_rule", "ani_profile"]


def test_cli_simulate_then_evaluate(tmp_path):
    from streams.cli import main

    out = tmp_path / "small.csv"
    runner = CliRunner()
    result = runner.invoke(main, ["simulate", str(out), "--size", "small", "--seed", "2",
                                  "--format", "asterisk", "--hours", "1", "--gzip",
                                  "--no-progress"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "small.csv.gz").is_file()
    labels = tmp_path / "small.csv.gz.labels.json"
    assert (tmp_path / "small.csv.gz.allowlist.txt").is_file()
    report = tmp_path / "report.json"
    result = runner.invoke(main, ["evaluate", "--input", str(tmp_path / "small.csv.gz"),
                                  "--labels", str(labels), "--json", str(report)])
    assert result.exit_code == 0, result.output
    data = orjson.loads(report.read_bytes())
    assert set(data["detectors"]) == {"dialguard", "volume_rule", "ani_profile"}
    assert "precision" in result.output
    bad = runner.invoke(main, ["evaluate", "--input", str(tmp_path / "small.csv.gz")])
    assert bad.exit_code == 2 and "--labels" in bad.output


def _ring(members, t):
    return Alert("ring", 1.0, ["ring"], t, 0.0, members=members)


def test_ring_alerts_count_every_member_and_pools_are_scored_within_15_minutes():
    members = [f"+{i}" for i in range(10, 20)]
    classes = {m: "rotating_pool" for m in members} | {"+1": "cloud_dialer", "+2": "cloud_dialer",
                                                       "+3": "cloud_dialer", "+8": "ordinary"}
    labels = Labels(classes=classes, allowlist=[], campaigns=[
        Campaign("pool", "rotating_pool", members, 1000.0, 9000.0, params={"shared_ingress": 1.0}),
        Campaign("spread", "cloud_dialer", ["+1", "+2"], 100.0, 900.0),
        Campaign("spread2", "cloud_dialer", ["+3", "+4"], 100.0, 900.0),
        Campaign("single", "cloud_dialer", ["+5"], 100.0, 900.0)])
    alerts = [_ring(members[:6] + ["+8"], 1800.0),  # 6 members inside 15 min, an ordinary one
              _ring(members[6:9], 5000.0),  # 3 more later
              _ring(["+2", "+1"], 130.0), _alert("+3", 400.0)]
    first_calls = {m: 1000.0 + 600 * i for i, m in enumerate(members)}
    m = score_alerts(alerts, labels, first_calls)
    assert m["alerted_numbers"] == 13 and m["false_positives"] == 1
    [pool] = m["pools"]
    assert pool["share_15min"] == pytest.approx(0.6) and pool["share_ever"] == pytest.approx(0.9)
    # member i first calls at 1000 + 600 i, so each of the nine alerted members was named
    # within 15 min of its own first call (member 6: 5000 <= 4600 + 900)
    assert pool["share_15min_of_own_first_call"] == pytest.approx(0.9)
    first_calls["+16"] = 3000.0  # now alerted 2000 s after its own first call
    assert score_alerts(alerts, labels, first_calls)["pools"][0][
        "share_15min_of_own_first_call"] == pytest.approx(0.8)
    assert m["worst_pool_share_15min"] == pytest.approx(0.6)
    spread = m["multi_number_cloud_dialer"]
    assert (spread["campaigns"], spread["detected"]) == (2, 2)
    assert spread["median_s"] == pytest.approx((30 + 300) / 2)
    assert m["recall_by_class"]["rotating_pool"]["alerted"] == 9


def test_undetected_multi_number_dialers_count_as_never_in_the_median():
    labels = Labels(classes={"+1": "cloud_dialer", "+2": "cloud_dialer", "+3": "cloud_dialer",
                             "+4": "cloud_dialer"}, allowlist=[], campaigns=[
        Campaign("a", "cloud_dialer", ["+1", "+2"], 0.0, 9.0),
        Campaign("b", "cloud_dialer", ["+3", "+4"], 0.0, 9.0)])
    m = score_alerts([_alert("+1", 50.0)], labels)
    spread = m["multi_number_cloud_dialer"]
    assert (spread["campaigns"], spread["detected"], spread["median_s"]) == (2, 1, None)
    m = score_alerts([_alert("+1", 50.0), _alert("+4", 70.0)], labels)
    assert m["multi_number_cloud_dialer"]["median_s"] == 60.0


def test_multi_number_dialers_by_origin_beside_what_their_first_minute_held():
    """Own gateway and shared ingress are summed apart, each campaign with the calls of its
    first minute (all its numbers, and its busiest); a world that does not say the origin
    counts in the total only, and a single-number dialer in neither."""
    labels = Labels(classes={f"+{i}": "cloud_dialer" for i in range(1, 8)}, allowlist=[],
                    campaigns=[
                        Campaign("own", "cloud_dialer", ["+1", "+2"], 0.0, 900.0,
                                 params={"origin_gateway": 1.0}),
                        Campaign("shared", "cloud_dialer", ["+3", "+4"], 0.0, 900.0,
                                 params={"origin_gateway": 0.0}),
                        Campaign("unsaid", "cloud_dialer", ["+5", "+6"], 0.0, 900.0),
                        Campaign("single", "cloud_dialer", ["+7"], 0.0, 900.0,
                                 params={"origin_gateway": 0.0})])
    calls = ([Call("+1", "+90", float(t), 0, False) for t in range(0, 120, 10)]
             + [Call("+2", "+91", 30.0, 0, False)]
             + [Call("+3", "+92", t, 0, False) for t in (5.0, 50.0, 70.0)]
             + [Call("+4", "+93", 200.0, 0, False)]
             + [Call("+7", "+94", 1.0, 0, False)])
    opening = opening_calls(calls, labels)
    assert opening == {"own": (8, 7), "shared": (2, 2)}
    m = score_alerts([_alert("+2", 20.0), _alert("+4", 300.0)], labels, opening=opening)
    spread = m["multi_number_cloud_dialer"]
    assert (spread["campaigns"], spread["detected"]) == (3, 2)
    own, shared = spread["by_origin"]["own"], spread["by_origin"]["shared"]
    assert (own["campaigns"], own["median_s"], own["opening_calls_median"]) == (1, 20.0, 8)
    assert (shared["campaigns"], shared["median_s"], shared["opening_calls_median"]) == (
        1, 300.0, 2)
    row = next(c for c in m["campaigns"] if c["id"] == "unsaid")
    assert row["origin"] is None and row["opening_calls"] == 0


def test_classes_come_from_the_labels_of_the_world():
    labels = Labels(classes={"+1": "debt_collection", "+2": "privacy_number"}, allowlist=[],
                    campaigns=[], meta={"abuse_classes": ["debt_collection", "rotating_pool"],
                                        "legit_classes": ["ordinary", "privacy_number"]})
    m = score_alerts([_alert("+1", 5.0), _alert("+2", 5.0)], labels)
    assert set(m["recall_by_class"]) == {"debt_collection", "rotating_pool"}
    assert m["recall"] == 1.0 and m["precision"] == 0.5
    assert m["false_positives_by_class"]["privacy_number"]["alerted"] == 1
    assert "debt_collection" in render_text({"calls": 2, "detectors": {"x": m}})
