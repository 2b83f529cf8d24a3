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


def test_a_share_of_missed_calls_is_bounded_over_the_missed_calls() -> None:
    """Wilson bounds of ``missed_retry_ratio`` take the calls not answered as trials: the
    same share over 4 misses is less certain than over 40."""
    from detectors.catalogue import MISSED_CALLS
    from detectors.rules import _bounds

    assert CATALOGUE["missed_retry_ratio"].denominator == MISSED_CALLS
    few = _bounds("missed_retry_ratio", {"missed_retry_ratio": 0.25, "attempts": 20.0,
                                         "answered": 16.0}, 1.0)
    many = _bounds("missed_retry_ratio", {"missed_retry_ratio": 0.25, "attempts": 50.0,
                                          "answered": 10.0}, 1.0)
    assert few[0] < many[0] < 0.25 < many[1] < few[1]
