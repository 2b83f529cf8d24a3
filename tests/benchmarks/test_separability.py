"""The separability ceiling's features (the classifier itself needs scikit-learn, not tested)."""

from __future__ import annotations

import numpy as np

from .helpers import benchmark

separability = benchmark("separability")


def test_whole_day_features_per_busy_number() -> None:
    day = separability.day_features("wide", 7, min_calls=5, size="small")
    x = day["X"]
    assert x.shape == (len(day["classes"]), len(separability.FEATURES)) and len(x) > 100
    assert np.isfinite(x).all()
    shares = [separability.FEATURES.index(n) for n in
              ("distinct_share", "answer_share", "contact_share", "called_back_share")]
    assert ((x[:, shares] >= 0) & (x[:, shares] <= 1)).all()
    assert set(day["classes"]) >= {"ordinary"} and set(day["classes"]) & set(separability.ABUSE)
    # every labelled number is counted as a member, whether or not it made enough calls
    assert sum(day["members"].values()) >= sum(c != "ordinary" for c in day["classes"])


def test_the_same_seed_gives_the_same_features() -> None:
    a = separability.day_features("wide", 3, min_calls=5, size="small")
    b = separability.day_features("wide", 3, min_calls=5, size="small")
    assert np.array_equal(a["X"], b["X"]) and a["classes"] == b["classes"]
