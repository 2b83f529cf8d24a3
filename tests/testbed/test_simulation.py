"""The labelled simulator: determinism, labels that match behaviour, both encodings."""

from __future__ import annotations

import csv
import gzip
import io
from collections import defaultdict

import orjson
import pytest

from detectors.numbers import NumberNormaliser
from detectors.readers import read_asterisk_csv, read_json_lines
from detectors.records import Call
from formats.asterisk import write_asterisk_csv
from formats.json_lines import write_json_lines
from testbed.simulation import (
    ABUSE_CLASSES,
    ALL_CLASSES,
    Labels,
    SimConfig,
    simulate,
    write_day,
)

SMALL = SimConfig.preset("small")
NORM = NumberNormaliser("CN")


@pytest.fixture(scope="module")
def day():
    return simulate(SMALL, seed=11)


@pytest.fixture(scope="module")
def calls(day):
    decoded = [c for c in read_json_lines((orjson.dumps(r) for r in day.records()), NORM)]
    return [c for c in decoded if isinstance(c, Call)], [c for c in decoded
                                                          if not isinstance(c, Call)]


def test_same_seed_same_day_other_seed_other_day():
    a = list(simulate(SMALL, seed=3).records())
    b = list(simulate(SMALL, seed=3).records())
    c = list(simulate(SMALL, seed=4).records())
    assert a == b
    assert a != c
    assert simulate(SMALL, 3).labels.to_dict() == simulate(SMALL, 3).labels.to_dict()
    assert simulate(SMALL, 3).labels.classes != simulate(SMALL, 4).labels.classes


def test_every_class_is_present_and_campaigns_are_labelled(day):
    labels = day.labels
    assert set(labels.classes.values()) == set(ALL_CLASSES)
    assert {c.cls for c in labels.campaigns} == set(ABUSE_CLASSES)
    for camp in labels.campaigns:
        assert camp.members
        assert all(labels.class_of(m) == camp.cls for m in camp.members)
        assert day.config.start <= camp.start < day.config.start + day.config.hours * 3600
    assert labels.allowlist
    assert all(labels.class_of(n) == "enterprise" for n in labels.allowlist)
    assert labels.members("enterprise") == set(labels.allowlist)


def test_behaviour_matches_the_labels(day, calls):
    good, _ = calls
    labels = day.labels
    stats: dict[str, list] = defaultdict(lambda: [0, 0, 0, set()])  # calls, answered, ring<=3s
    for c in good:
        s = stats[labels.class_of(c.caller)]
        s[0] += 1
        s[1] += c.answered
        s[2] += (not c.answered and c.ring is not None and c.ring <= 3.05)
        s[3].add(c.caller)

    def per_number(cls: str) -> float:
        return stats[cls][0] / len(stats[cls][3])

    def answer(cls: str) -> float:
        return stats[cls][1] / stats[cls][0]

    assert per_number("cloud_dialer") >= 250  # 300-3000 each, minus what falls off the window
    assert answer("cloud_dialer") < 0.45
    assert stats["ring_once"][2] / stats["ring_once"][0] > 0.7
    assert answer("courier") > 0.6 and answer("notice") > 0.4
    assert per_number("rotating_pool") < 20
    assert per_number("ordinary") < 10
    # repeat_refused: the same few people, again and again
    targets = defaultdict(set)
    for c in good:
        if labels.class_of(c.caller) == "repeat_refused":
            targets[c.caller].add(c.callee)
    for number, people in targets.items():
        n = sum(1 for c in good if c.caller == number)
        assert len(people) <= 40 + 10 and n >= 1.5 * 10


def test_delivery_imperfections(day, calls):
    good, bad = calls
    records = list(day.records())
    callers = [r["caller"] for r in records if isinstance(r.get("caller"), str)]
    assert any(c.startswith("+86") for c in callers)
    assert any(c.startswith("0086") for c in callers)
    assert any(c[0] == "1" for c in callers)
    assert any(isinstance(r.get("start"), str) for r in records)  # ISO-8601 starts
    ids = [c.id for c in good if c.id is not None]
    assert len(ids) - len(set(ids)) == day.labels.meta["duplicates"] > 0
    assert len(bad) == day.labels.meta["malformed"] > 0
    assert any(b.start < a.start - 0.5 for a, b in zip(good, good[1:], strict=False))  # late
    assert all(c.trunk for c in good)


def test_asterisk_has_18_columns_and_round_trips(day, calls):
    good, _ = calls
    buf = io.StringIO()
    n = write_asterisk_csv(day.records(), buf)
    rows = list(csv.reader(io.StringIO(buf.getvalue())))
    assert n == len(day) == len(rows)
    assert all(len(r) == 18 for r in rows)
    assert {r[14] for r in rows} >= {"ANSWERED", "NO ANSWER", "BUSY", "FAILED"}
    back = [c for c in read_asterisk_csv(buf.getvalue().splitlines(), NORM)
            if isinstance(c, Call)]
    by_id = {c.id: c for c in good if c.id is not None}
    checked = 0
    for c in back:
        original = by_id.get(c.id)
        if original is None:
            continue
        assert (c.caller, c.callee, c.duration, c.answered, c.trunk) == (
            original.caller, original.callee, original.duration, original.answered,
            original.trunk)
        assert c.start == int(original.start)
        assert abs((c.ring or 0) - (original.ring or 0)) <= 0.5
        checked += 1
    assert checked > 0.5 * len(good)


def test_write_day_writes_labels_and_allowlist_beside_output(tmp_path, day):
    out = tmp_path / "day.jsonl.gz"
    paths = write_day(day, out, "json", compress=True)
    assert paths["labels"].name == "day.jsonl.gz.labels.json"
    with gzip.open(out, "rt") as f:
        assert sum(1 for _ in f) == len(day)
    labels = Labels.read(paths["labels"])
    assert labels.classes == day.labels.classes
    assert [c.id for c in labels.campaigns] == [c.id for c in day.labels.campaigns]
    lines = paths["allowlist"].read_text().splitlines()
    assert [ln for ln in lines if not ln.startswith("#")] == day.labels.allowlist
    buf = io.StringIO()
    assert write_json_lines(iter([{"caller": "1", "x": 2}]), buf) == 1


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="unknown size"):
        SimConfig.preset("huge")
    with pytest.raises(ValueError, match="hours"):
        SimConfig.preset("small", hours=0)
    with pytest.raises(ValueError, match="labels"):
        Labels.from_dict({"nothing": 1})
