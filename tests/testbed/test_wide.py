"""The wide world: determinism, every class, priors that vary, the hard cases it models."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import orjson
import pytest
from click.testing import CliRunner

from testbed.recipes.context import RATE_PRIORS, WorldContext
from testbed.recipes.delivery import WITHHELD_SPELLINGS, Day
from testbed.simulation import SimConfig, national
from testbed.wide import WIDE_ABUSE_CLASSES, WIDE_CLASSES, simulate_wide
from testbed.worlds import simulate_world

SMALL = SimConfig.preset("small")


@pytest.fixture(scope="module")
def days() -> dict[int, Day]:
    return {seed: simulate_wide(SMALL, seed) for seed in range(1, 11)}


def _calls_by_campaign(day: Day, cls: str) -> list[tuple[set[int], np.ndarray]]:
    out = []
    for camp in day.labels.campaigns:
        if camp.cls == cls:
            members = {int(m[1:]) for m in camp.members}
            out.append((members, np.isin(day.cols["caller"], list(members))))
    return out


def test_same_seed_same_day_other_seed_other_day():
    a, b, c = simulate_wide(SMALL, 5), simulate_world("wide", SMALL, 5), simulate_wide(SMALL, 6)
    assert list(a.records()) == list(b.records())
    assert a.labels.to_dict() == b.labels.to_dict()
    assert list(a.records())[:100] != list(c.records())[:100]
    assert a.labels.meta["priors"] != c.labels.meta["priors"]


@pytest.mark.parametrize("seeds", [range(1, 21), range(101, 121)], ids=["development",
                                                                       "reported"])
def test_every_seed_of_the_split_simulates(seeds):
    for seed in seeds:
        assert len(simulate_wide(SMALL, seed)) > 1000


def test_every_class_and_campaign_class_is_present(days):
    for seed, day in days.items():
        labels = day.labels
        assert set(labels.classes.values()) == set(WIDE_CLASSES), seed
        assert {c.cls for c in labels.campaigns} == set(WIDE_ABUSE_CLASSES), seed
        for camp in labels.campaigns:
            assert camp.members and all(labels.class_of(m) == camp.cls for m in camp.members)
            assert labels.meta["start"] <= camp.start <= camp.end < labels.meta["end"]
        kinds = labels.meta["kinds"]
        assert all(kinds[n].split("/")[0] == c for n, c in labels.classes.items() if n in kinds)
        assert set(labels.allowlist) == labels.members("enterprise")


def test_priors_vary_across_seeds_by_a_factor_of_three_or_more(days):
    for cls, name in (("marketing_blast", "calls_per_hour"), ("cloud_dialer", "calls_per_hour"),
                      ("rotating_pool", "calls_per_number"), ("courier", "customers_per_day"),
                      ("debt_collection", "calls_per_target"), ("ordinary", "calls_per_day"),
                      ("privacy_number", "orders_per_number")):
        values = [day.labels.meta["priors"][cls][name] for day in days.values()]
        assert max(values) >= 3 * min(values), (cls, name, values)


def test_marketing_sims_dial_at_rates_that_differ_across_seeds(days):
    rates = []
    for day in days.values():
        c = day.cols
        for members, mine in _calls_by_campaign(day, "marketing_blast"):
            campaign = [cp for cp in day.labels.campaigns if cp.cls == "marketing_blast"
                        and {int(m[1:]) for m in cp.members} == members][0]
            hours = (campaign.end - campaign.start) / 3600
            if hours > 0.5:
                rates.append(mine.sum() / len(members) / hours)
            answered = np.mean(c["disp"][mine] == 0)
            assert 0.05 < answered < 0.95
    assert min(rates) < 15 and max(rates) >= 3 * min(rates)


def test_rotating_pools_retire_numbers_after_a_few_calls_and_vary_in_ingress(days):
    sizes, shared, named = [], set(), set()
    for day in days.values():
        for camp in day.labels.campaigns:
            if camp.cls != "rotating_pool":
                continue
            sizes.append(len(camp.members))
            shared.add(camp.params["shared_ingress"])
            named.add(camp.params["trunk_field"])
            mine = np.isin(day.cols["caller"], [int(m[1:]) for m in camp.members])
            per = np.unique(day.cols["caller"][mine], return_counts=True)[1]
            assert np.median(per) <= 15
    assert min(sizes) >= 5 and max(sizes) <= 500 and max(sizes) >= 5 * min(sizes)
    assert named == {0.0, 1.0}
    assert shared == {0.0, 1.0}


def test_feeds_with_and_without_a_trunk_field(days):
    has = {day.labels.meta["feed_has_trunk"] for day in days.values()}
    assert has == {True, False}
    for day in days.values():
        records = list(day.records())[:2000]
        with_trunk = sum("trunk" in r for r in records)
        if day.labels.meta["feed_has_trunk"]:
            assert with_trunk > len(records) / 2
        else:
            assert with_trunk == 0


def test_debt_collectors_call_a_circle_of_people_who_call_each_other(days):
    linked = total = 0
    for day in days.values():
        caller, callee = day.cols["caller"], day.cols["callee"]
        for _members, mine in _calls_by_campaign(day, "debt_collection"):
            targets = np.unique(callee[mine])
            among = np.isin(caller, targets) & np.isin(callee, targets) & ~mine
            total += 1
            linked += bool(among.any())
            # a few calls to each, across hours
            per = np.unique(callee[mine], return_counts=True)[1]
            assert np.median(per) <= 6
    assert total >= 10 and linked >= 0.8 * total
    # as many subscribers picked at random do not form such a circle as often
    rng = np.random.default_rng(0)
    day = days[1]
    people = np.array([int(n[1:]) for n in day.labels.members("ordinary")])
    random_sets = [rng.choice(people, 15, replace=False) for _ in range(20)]
    random_linked = sum(bool((np.isin(day.cols["caller"], s) & np.isin(day.cols["callee"], s)
                              ).any()) for s in random_sets)
    assert random_linked < 0.5 * len(random_sets)


def test_privacy_numbers_are_answered_and_called_back(days):
    calls = returned = 0
    for day in days.values():
        c = day.cols
        pool = [int(n[1:]) for n, k in day.labels.classes.items() if k == "privacy_number"]
        out = np.isin(c["caller"], pool)
        back = np.isin(c["callee"], pool)
        assert np.mean(c["disp"][out] == 0) > 0.4
        called = set(zip(c["caller"][out].tolist(), c["callee"][out].tolist(), strict=True))
        calls += int(out.sum())
        returned += sum((b, a) in called for a, b in zip(c["caller"][back].tolist(),
                                                         c["callee"][back].tolist(), strict=True))
        groups = [g for g in day.labels.meta["groups"] if g["class"] == "privacy_number"]
        assert groups and {m for g in groups for m in g["members"]} == set(
            day.labels.members("privacy_number"))
    assert calls > 100 and returned > 0.1 * calls


def test_withheld_callers_are_records_not_numbers(days):
    spellings = {s.lower() for s in WITHHELD_SPELLINGS}
    seen_abuse = seen_legit = False
    for day in days.values():
        withheld = day.labels.meta["withheld_calls"]
        n = sum(1 for r in day.records() if str(r.get("caller", "x")).lower() in spellings)
        broken = day.labels.meta["malformed"]
        assert sum(withheld.values()) <= n <= sum(withheld.values()) + broken
        seen_abuse |= any(c in WIDE_ABUSE_CLASSES for c in withheld)
        seen_legit |= any(c not in WIDE_ABUSE_CLASSES for c in withheld)
    assert seen_abuse and seen_legit


def test_sequential_scan_dialer_sweeps_a_block_over_a_handful_of_numbers():
    found = []
    for seed in range(1, 30):
        day = simulate_wide(SMALL, seed)
        kinds = day.labels.meta["kinds"]
        for camp in day.labels.campaigns:
            if kinds.get(camp.members[0]) == "cloud_dialer/sequential_scan":
                mine = np.isin(day.cols["caller"], [int(m[1:]) for m in camp.members])
                callees = np.sort(day.cols["callee"][mine])
                found.append((len(camp.members), np.median(np.diff(callees))))
        if len(found) >= 3:
            break
    assert found
    for members, step in found:
        assert 3 <= members <= 8 and step <= 3


def test_records_present_numbers_as_carriers_write_them(days):
    day = days[2]
    callers = [r["caller"] for r in list(day.records())[:3000]]
    assert any(c.startswith("+86") for c in callers) and any(c.startswith("0086")
                                                              for c in callers)
    assert any(len(c) == 11 and c == national("+86" + c) for c in callers)


def test_cli_simulate_wide(tmp_path):
    from streams.cli import main

    out = tmp_path / "wide.jsonl"
    result = CliRunner().invoke(main, ["simulate", str(out), "--world", "wide", "--size", "small",
                                       "--seed", "3", "--no-progress"])
    assert result.exit_code == 0, result.output
    labels = orjson.loads((tmp_path / "wide.jsonl.labels.json").read_bytes())
    assert labels["meta"]["world"] == "wide" and labels["meta"]["priors"]
    lines = out.read_bytes().splitlines()
    assert len(lines) == labels["meta"]["records"]
    per_class: dict[str, int] = defaultdict(int)
    for cls in labels["classes"].values():
        per_class[cls] += 1
    assert set(per_class) == set(WIDE_CLASSES)


def test_history_days_add_ordinary_calls_before_the_day_and_leave_the_day_alone():
    plain = simulate_wide(SMALL, 3)
    with_history = simulate_wide(SimConfig.preset("small", history_days=2), 3)
    start = with_history.labels.meta["start"]
    t = with_history.cols["t"]
    before = t < start
    assert before.any() and t.min() >= start - 2 * 86400
    # the history is the same people calling their contacts: every caller in it is ordinary
    history_callers = {"+" + str(v) for v in with_history.cols["caller"][before].tolist()}
    assert {with_history.labels.class_of(n) for n in history_callers} == {"ordinary"}
    # the day itself: the same operations and the same calls as without history
    assert with_history.labels.campaigns == plain.labels.campaigns
    assert np.array_equal(t[~before], plain.cols["t"])
    assert np.array_equal(with_history.cols["caller"][~before], plain.cols["caller"])
    again = simulate_wide(SimConfig.preset("small", history_days=2), 3)
    assert np.array_equal(again.cols["t"], t)


def test_history_days_are_the_wide_world_s_only():
    with pytest.raises(ValueError, match="wide world only"):
        simulate_world("standard", SimConfig.preset("small", history_days=1), 1)


def test_rate_scales_multiply_the_calling_rates_of_one_side_only():
    """The first draw of a rate prior is the unscaled draw times the side's scale (a gap
    between calls divided by it); a prior that is not a rate, or the other side's rate, is
    drawn as it would be."""
    def first_draws(**scales: float) -> list[float]:
        ctx = WorldContext(SimConfig.preset("small", **scales), seed=5)
        return [ctx.prior("cloud_dialer", "calls_per_hour", 100, 800),
                ctx.prior("cloud_dialer", "answer_rate", 0.05, 0.35),
                ctx.prior("repeat_refused", "gap_s", 30, 600),
                ctx.prior("courier", "customers_per_day", 30, 200)]

    plain = first_draws()
    rate, answer, gap, courier = first_draws(abuse_rate_scale=3.0)
    assert rate == pytest.approx(3 * plain[0]) and gap == pytest.approx(plain[2] / 3)
    assert answer == plain[1] and courier == plain[3]
    assert first_draws(legit_rate_scale=0.5)[3] == pytest.approx(plain[3] / 2)
    assert all(cls in WIDE_CLASSES for cls, _ in RATE_PRIORS)
    sides = {side for side, _ in RATE_PRIORS.values()}
    assert sides == {"abuse", "legit"}


def test_a_scaled_day_says_so_and_calls_more():
    plain, fast = simulate_wide(SMALL, 3), simulate_wide(
        SimConfig.preset("small", abuse_rate_scale=3.0), 3)
    assert fast.labels.meta["rate_scale"] == {"abuse": 3.0, "legit": 1.0}
    abuse = set(WIDE_ABUSE_CLASSES)
    def abuse_calls(day: Day) -> int:
        return sum(1 for v in day.cols["caller"].tolist()
                   if day.labels.class_of("+" + str(v)) in abuse)
    assert abuse_calls(fast) > 1.5 * abuse_calls(plain)


@pytest.mark.parametrize("scales", [{"abuse_rate_scale": 0.0}, {"legit_rate_scale": 50.0}])
def test_rate_scales_out_of_range_are_refused(scales):
    with pytest.raises(ValueError, match="rate_scale must be within"):
        SimConfig.preset("small", **scales)


def test_rate_scales_are_the_wide_world_s_only():
    with pytest.raises(ValueError, match="wide world only"):
        simulate_world("hard", SimConfig.preset("small", legit_rate_scale=2.0), 1)
    from streams.cli import main
    result = CliRunner().invoke(main, ["evaluate", "--world", "standard", "--seeds", "1-2",
                                       "--abuse-rate-scale", "3"])
    assert result.exit_code == 2 and "wide world only" in result.output


def test_simulate_writes_a_scaled_day_and_says_so(tmp_path):
    from streams.cli import main
    out = tmp_path / "day.jsonl"
    result = CliRunner().invoke(main, ["simulate", str(out), "--world", "wide", "--size",
                                       "small", "--legit-rate-scale", "0.5", "--no-progress"])
    assert result.exit_code == 0, result.output
    labels = orjson.loads((tmp_path / "day.jsonl.labels.json").read_bytes())
    assert labels["meta"]["rate_scale"] == {"abuse": 1.0, "legit": 0.5}
    bad = CliRunner().invoke(main, ["simulate", str(out), "--legit-rate-scale", "0.01"])
    assert bad.exit_code == 2
