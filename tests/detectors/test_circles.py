"""The call-graph sketch: pairs remembered, forgotten after two generations, bounded."""

from __future__ import annotations

import pickle
import random

from detectors.circles import CallGraph, circle_members


def test_pairs_are_unordered_and_remembered() -> None:
    g = CallGraph(bits=20, generation_s=3600)
    g.add(5, 9, t=0.0)
    assert g.connected(9, 5) and g.connected(5, 9)
    assert not g.connected(5, 10)


def test_edges_live_one_to_two_generations() -> None:
    g = CallGraph(bits=20, generation_s=3600)
    g.add(1, 2, t=100.0)
    g.add(3, 4, t=3700.0)  # next generation: the first edge is still remembered
    assert g.connected(1, 2)
    g.add(5, 6, t=7300.0)
    assert not g.connected(1, 2) and g.connected(3, 4)
    g.add(7, 8, t=50_000.0)  # a jump: everything before is gone
    assert not g.connected(3, 4)


def test_false_positives_stay_near_the_estimate() -> None:
    rng = random.Random(1)
    g = CallGraph(bits=18, generation_s=1e9)
    for _ in range(20_000):
        g.add(rng.randrange(1, 2**31), rng.randrange(1, 2**31), t=0.0)
    probes = 20_000
    wrong = sum(g.connected(rng.randrange(1, 2**31), rng.randrange(1, 2**31))
                for _ in range(probes))
    assert wrong / probes < 2 * g.false_positive_rate() + 0.002
    assert g.nbytes == 2 * 2**18 // 8


def test_circle_members_counts_the_connected_ones() -> None:
    g = CallGraph(bits=20)
    family = [101, 102, 103, 104]
    for a, b in zip(family, family[1:], strict=False):
        g.add(a, b, t=0.0)
    assert circle_members(g, family + [900, 901]) == 4
    assert circle_members(g, [900, 901, 902]) == 0


def test_pickles() -> None:
    g = CallGraph(bits=12)
    g.add(1, 2, t=5.0)
    back = pickle.loads(pickle.dumps(g))
    assert back.connected(1, 2) and back.generation == g.generation
