"""An online model of normal calling behaviour: River's HalfSpaceTrees over number profiles.

The model sees one vector per active number now and then (not per call: see
``[model].score_every``), learns what ordinary busy callers look like, and
scores how unusual a profile is in [0, 1].  Features are squashed into [0, 1]
first, because half-space trees split the unit cube.  Vectors of numbers that
a rule has just flagged are scored but not learned, so a long campaign does
not teach the model that dialers are normal.

>>> m = CallingProfileModel(seed=7, window_size=50)
>>> normal = {"attempts": 20, "answer_ratio": 0.8, "distinct_ratio": 0.5, "mean_talk_s": 90}
>>> for _ in range(300):
...     _ = m.score_and_learn(normal)
>>> odd = {"attempts": 900, "answer_ratio": 0.05, "distinct_ratio": 1.0, "ring_once_ratio": 0.9}
>>> m.score_and_learn(odd, learn=False) > m.score_and_learn(normal, learn=False)
True
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any

from detectors.catalogue import CATALOGUE, MODEL_FEATURES


def model_vector(features: Mapping[str, float]) -> dict[str, float]:
    """The [0, 1] vector the model sees (scales from the catalogue); missing features count as 0.

    >>> v = model_vector({"attempts": 5000, "inbound_ratio": 3.0})
    >>> v["attempts"], v["inbound_ratio"], v["answer_ratio"]
    (1.0, 1.0, 0.0)
    """
    vector = {}
    for name in MODEL_FEATURES:
        value = features.get(name)
        number = float(value) if isinstance(value, int | float) and value == value else 0.0
        vector[name] = CATALOGUE[name].scaled(number) or 0.0
    return vector


def import_river() -> None:
    """Import River now, not at a model's first score: for a long-running process (a stream
    worker) that should not pause for it later."""
    from river import anomaly  # noqa: F401


class CallingProfileModel:
    """Half-space trees with a fixed seed; ``score_and_learn`` is the only entry point.

    The trees are made at the first score: importing River takes most of a second (its
    ``anomaly`` package pulls in SciPy), which every command would otherwise pay at start.
    """

    def __init__(self, n_trees: int = 25, height: int = 8, window_size: int = 250,
                 seed: int = 42) -> None:
        if importlib.util.find_spec("river") is None:  # fail now, not at the first score
            raise ImportError("the calling-profile model needs River: pip install river")
        self.seed = seed
        self.n_trees, self.height, self.window_size = n_trees, height, window_size
        self._hst: Any = None
        self.learned = 0

    def _trees(self) -> Any:
        from river import anomaly

        self._hst = anomaly.HalfSpaceTrees(n_trees=self.n_trees, height=self.height,
                                           window_size=self.window_size, seed=self.seed)
        return self._hst

    def score_and_learn(self, features: Mapping[str, float], learn: bool = True) -> float:
        """Anomaly score in [0, 1] of a feature profile, then (optionally) learn it."""
        hst = self._hst if self._hst is not None else self._trees()
        vector = model_vector(features)
        score = float(hst.score_one(vector))
        if learn:
            hst.learn_one(vector)
            self.learned += 1
        return score

    @property
    def warmed_up(self) -> bool:
        """HalfSpaceTrees scores nothing useful before its first full window."""
        return self.learned >= self.window_size
