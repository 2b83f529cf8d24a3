"""The catalogue is the one list of features: everything else agrees with it."""

from __future__ import annotations

from detectors.catalogue import CATALOGUE, MODEL_FEATURES, NAMES
from detectors.config import FEATURES, load_settings
from detectors.features import NumberState
from detectors.model import model_vector
from detectors.rules import _phrase


def test_config_features_are_the_catalogue() -> None:
    assert FEATURES == NAMES


def test_state_computes_exactly_the_catalogue() -> None:
    fs = load_settings().features
    st = NumberState(fs, first_seen=0.0)
    st.outbound(1.0, 8613900000001, True, 30, 3.0, False, fs)
    assert set(st.features(fs.horizons_s[0], 2.0, fs)) == set(NAMES)


def test_model_vector_is_the_model_features_in_unit_range() -> None:
    vector = model_vector({name: 1e9 for name in NAMES})
    assert tuple(vector) == MODEL_FEATURES
    assert all(v == 1.0 for v in vector.values())


def test_denominators_name_features() -> None:
    for feature in CATALOGUE.values():
        if feature.denominator is not None:
            assert feature.denominator in CATALOGUE or feature.denominator.startswith("_")
            assert not feature.whole


def test_every_feature_reads_with_its_value() -> None:
    for name, feature in CATALOGUE.items():
        text = _phrase(name, 3.0, 3600)
        assert "3" in text and "{" not in text, name
        assert ("1 h" in text) == ("{h}" in feature.phrase)
