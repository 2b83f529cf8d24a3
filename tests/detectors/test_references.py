"""Learned busy-caller references: quantiles, decay, determinism, round trips, merging."""

from __future__ import annotations

import pickle
import random

import pytest

from detectors.references import BINS, Distribution, References


def filled(seed: int, n: int = 2000) -> References:
    rng = random.Random(seed)
    refs = References(("inbound_ratio", "strangers"), half_life_s=3600)
    for i in range(n):
        refs.learn({"inbound_ratio": rng.random(), "strangers": rng.expovariate(0.1)},
                   t=10.0 * i)
    return refs


def test_quantiles_are_within_the_bin_resolution() -> None:
    d = Distribution()
    for i in range(1, 10001):
        d.add(i / 100, t=0.0)
    for q in (0.1, 0.5, 0.9, 0.99):
        assert d.quantile(q) == pytest.approx(q * 100, rel=0.07)
    assert d.rank(50.0) == pytest.approx(0.5, abs=0.04)


def test_zero_has_a_bin_of_its_own() -> None:
    d = Distribution()
    for i in range(100):
        d.add(0.0 if i < 60 else 1.0, t=0.0)
    assert d.quantile(0.5) == 0.0
    assert d.quantile(0.7) == pytest.approx(1.0, rel=0.07)


def test_old_traffic_fades_with_the_half_life() -> None:
    d = Distribution(half_life_s=600)
    for i in range(1000):
        d.add(1.0, t=float(i))
    for i in range(1000):
        d.add(100.0, t=20_000.0 + i)  # many half-lives later
    assert d.quantile(0.1) == pytest.approx(100.0, rel=0.07)


def test_same_stream_same_reference() -> None:
    assert filled(3).to_bytes() == filled(3).to_bytes()
    assert filled(3).to_bytes() != filled(4).to_bytes()


def test_pickle_and_binary_round_trips_are_exact() -> None:
    refs = filled(5)
    for back in (pickle.loads(pickle.dumps(refs)), References.from_bytes(refs.to_bytes())):
        assert back.to_bytes() == refs.to_bytes()
        assert back.quantile("strangers", 0.9) == refs.quantile("strangers", 0.9)
        back.learn({"inbound_ratio": 0.5}, t=1e6)
        refs_copy = References.from_bytes(refs.to_bytes())
        refs_copy.learn({"inbound_ratio": 0.5}, t=1e6)
        assert back.to_bytes() == refs_copy.to_bytes()


@pytest.mark.parametrize("data", [b"", b"DGR\x01", b"XXXX" + bytes(40),
                                  b"DGD\x01" + bytes(8 * BINS)])
def test_garbage_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        References.from_bytes(data)
    with pytest.raises(ValueError):
        Distribution.from_bytes(data)


def test_partitions_merge_into_the_whole() -> None:
    rng = random.Random(9)
    values = [rng.expovariate(0.2) for _ in range(4000)]
    whole, left, right = Distribution(), Distribution(), Distribution()
    for i, v in enumerate(values):
        whole.add(v, t=float(i))
        (left if i % 2 else right).add(v, t=float(i))
    left.merge(right)
    assert left.total == pytest.approx(whole.total, rel=1e-3)
    for q in (0.25, 0.5, 0.95):
        assert left.quantile(q) == pytest.approx(whole.quantile(q), rel=0.07)
