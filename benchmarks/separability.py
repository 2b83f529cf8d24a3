"""How far apart are abusive and legitimate numbers by their own calls?

A ceiling, not a detector.

Per number with at least ``--min-calls`` calls in a simulated day, whole-day features of its
own calls (volume, rate, distinct callees, answer and talk, calls received, callees who called
back, contacts, ring times, ...) are computed from the labelled day; a gradient-boosting
classifier (scikit-learn, not a dependency of dialguard: ``pip install scikit-learn``) is
trained on the labels of the ``--train`` seeds and scored on the ``--test`` seeds. It prints,
per abuse class, the share of all members found at the score threshold that gives 0.99
pooled precision on the test seeds (chosen on them: an oracle), the worst seed's precision,
the false positives by class, and which features the classifier leaned on.

What it says is what a whole day of one number's calls *can* tell apart in the simulator,
with labels and with the simulator's own class signatures to learn from: an upper bound
for per-number detection on these worlds, and a measure of how much of it is the simulator.
dialguard decides online, from event time so far, with explainable thresholds and no labels.

    python benchmarks/separability.py --world wide --train 1-20 --test 101-120 --jobs 2
"""

from __future__ import annotations

import argparse
import collections
import math
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

from testbed.report import parse_seeds

ABUSE = ("cloud_dialer", "ring_once", "marketing_blast", "debt_collection", "repeat_refused",
         "rotating_pool")
FEATURES = ("log_calls", "distinct_share", "answer_share", "talk_median_s", "talk_mean_s",
            "short_talk_share", "log_calls_received", "received_per_call",
            "log_distinct_callers_in", "contact_share", "called_back_share", "long_talk_share",
            "log_span_h", "calls_per_active_h", "active_hours", "gap_cv", "ring_median_s",
            "unanswered_ring_median_s", "failed_share", "sequential_share", "virtual",
            "repeat_share")


def day_features(world: str, seed: int, min_calls: int, size: str = "day") -> dict[str, Any]:
    """Whole-day features of every number with ``min_calls`` calls, its class, and the
    members of each class (those with fewer calls count as not found)."""
    from detectors.config import load_settings
    from detectors.numbers import NumberNormaliser
    from testbed.evaluation import calls_from_records
    from testbed.simulation import SimConfig
    from testbed.worlds import simulate_world

    settings = load_settings()
    day = simulate_world(world, SimConfig.preset(size), seed)
    calls = sorted((c for c in calls_from_records(day.records(), NumberNormaliser(
        settings.input.region), {}) if c.caller), key=lambda c: c.start)
    by_caller: dict[str, list[Any]] = collections.defaultdict(list)
    received: collections.Counter[str] = collections.Counter()
    callers_in: dict[str, set[str]] = collections.defaultdict(set)
    first: dict[tuple[str, str], float] = {}
    for c in calls:
        by_caller[c.caller].append(c)
        received[c.callee] += 1
        callers_in[c.callee].add(c.caller)
        first.setdefault((c.caller, c.callee), c.start)
    virtual = tuple(settings.features.virtual_prefixes)
    rows, classes = [], []
    for number, own in by_caller.items():
        if len(own) >= min_calls:
            rows.append(_number_features(number, own, received[number],
                                         len(callers_in[number]), first, virtual))
            classes.append(day.labels.class_of(number) or "ordinary")
    members = collections.Counter(day.labels.classes.values())
    return {"seed": seed, "X": np.array(rows), "classes": classes, "members": dict(members)}


def _number_features(number: str, own: list[Any], received: int, distinct_in: int,
                     first: dict[tuple[str, str], float], virtual: tuple[str, ...]
                     ) -> list[float]:
    n = len(own)
    callees = [c.callee for c in own]
    distinct = set(callees)
    answered = [c for c in own if c.answered]
    talk = np.array([c.duration for c in answered], dtype=float) if answered else np.zeros(1)
    contact = called_back = 0
    for v in distinct:
        back = first.get((v, number))
        if back is not None:
            if back < first[(number, v)]:
                contact += 1
            else:
                called_back += 1
    long_talk = len({c.callee for c in answered if c.duration >= 90})
    t = np.array([c.start for c in own])
    span = max(float(t[-1] - t[0]), 60.0)
    gaps = np.diff(t) if n > 1 else np.zeros(1)
    rings = [c.ring for c in own if c.ring is not None] or [0.0]
    missed_rings = [c.ring for c in own if not c.answered and c.ring is not None] or [0.0]
    sequential = sum(1 for a, b in zip(callees, callees[1:], strict=False)
                     if a[:-4] == b[:-4] and abs(int(a[-4:]) - int(b[-4:])) <= 20)
    failed = sum(1 for c in own if c.disposition in ("FAILED", "CONGESTION"))
    hours = len({int(v // 3600) for v in t})
    return [math.log1p(n), len(distinct) / n, len(answered) / n, float(np.median(talk)),
            float(np.mean(talk)), float(np.mean(talk < 10)) if answered else 0.0,
            math.log1p(received), received / n, math.log1p(distinct_in),
            contact / len(distinct), called_back / len(distinct), long_talk / len(distinct),
            math.log1p(span / 3600), n / hours, hours,
            float(np.std(gaps) / (np.mean(gaps) + 1e-9)), float(np.median(rings)),
            float(np.median(missed_rings)), failed / n, sequential / n,
            1.0 if number.startswith(virtual) else 0.0, (n - len(distinct)) / n]


def _days(world: str, seeds: tuple[int, ...], min_calls: int, jobs: int
          ) -> list[dict[str, Any]]:
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(day_features, world, s, min_calls) for s in seeds]
        out = []
        for i, f in enumerate(futures, 1):
            out.append(f.result())
            print(f"  day {i}/{len(seeds)} (seed {out[-1]['seed']})", file=sys.stderr)
        return out


def _stack(days: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                 collections.Counter[str]]:
    x = np.vstack([d["X"] for d in days])
    classes = np.array([c for d in days for c in d["classes"]])
    seeds = np.array([d["seed"] for d in days for _ in d["classes"]])
    members: collections.Counter[str] = collections.Counter()
    for d in days:
        members.update(d["members"])
    return x, classes, seeds, members


def _threshold(score: np.ndarray, truth: np.ndarray, precision: float) -> float:
    order = np.argsort(-score)
    hits = np.cumsum(truth[order])
    ok = np.where(hits / np.arange(1, len(score) + 1) >= precision)[0]
    return float(score[order][ok.max()]) if len(ok) else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--world", default="wide")
    parser.add_argument("--train", default="1-20")
    parser.add_argument("--test", default="101-120")
    parser.add_argument("--min-calls", type=int, default=5)
    parser.add_argument("--precision", type=float, default=0.99)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    try:
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.inspection import permutation_importance
    except ImportError:
        sys.exit("separability.py needs scikit-learn (not a dialguard dependency): "
                 "pip install scikit-learn")
    train = _stack(_days(args.world, parse_seeds(args.train), args.min_calls, args.jobs))
    test = _stack(_days(args.world, parse_seeds(args.test), args.min_calls, args.jobs))
    is_abuse = [np.isin(part[1], ABUSE) for part in (train, test)]
    model = HistGradientBoostingClassifier(max_iter=300, random_state=0)
    model.fit(train[0], is_abuse[0])
    x, classes, seeds, members = test
    score = model.predict_proba(x)[:, 1]
    found = score >= _threshold(score, is_abuse[1], args.precision)
    print(f"{args.world}: trained on seeds {args.train}, tested on {args.test}; numbers with "
          f">= {args.min_calls} calls; threshold at {args.precision} pooled precision on the "
          "test seeds")
    per_seed = [(float(is_abuse[1][found & (seeds == s)].mean()), int(s))
                for s in np.unique(seeds) if (found & (seeds == s)).any()]
    pooled = float(is_abuse[1][found].mean()) if found.any() else float("nan")
    worst = min(per_seed, default=(float("nan"), 0))
    print(f"precision {pooled:.4f}, worst seed {worst[0]:.3f} (seed {worst[1]})")
    for cls in ABUSE:
        if members.get(cls):
            print(f"  {cls:16s} {int((found & (classes == cls)).sum()) / members[cls]:.3f} "
                  f"of {members[cls]} members")
    false = collections.Counter(classes[found & ~is_abuse[1]].tolist())
    print("false positives:", dict(false.most_common()))
    rng = np.random.default_rng(0)
    legit = np.where(~is_abuse[1])[0]
    sample = np.concatenate([np.where(is_abuse[1])[0],
                             rng.choice(legit, min(len(legit), 20000), replace=False)])
    importance = permutation_importance(model, x[sample], is_abuse[1][sample],
                                        scoring="average_precision", n_repeats=3,
                                        random_state=0).importances_mean
    print("leaned on:", ", ".join(f"{FEATURES[i]} {importance[i]:.3f}"
                                  for i in np.argsort(-importance)[:6]))


if __name__ == "__main__":
    main()
