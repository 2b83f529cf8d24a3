"""Control messages: valid ones change settings / allowlist, invalid ones change nothing."""

from __future__ import annotations

import pytest

from detectors.allowlist import Allowlist
from detectors.config import load_settings
from streams.control import ControlError, Tuning, parse_control, redact


@pytest.fixture
def tuning() -> Tuning:
    return Tuning(load_settings(), Allowlist(["+8695588"]))


def test_set_changes_one_threshold(tuning: Tuning) -> None:
    before = tuning.settings
    old = before.rules["cloud_dialer"].min["attempts"]
    assert old != 60
    tuning.apply(b'{"op": "set", "key": "rules.cloud_dialer.min_attempts", "value": 60}')
    assert tuning.settings.rules["cloud_dialer"].min["attempts"] == 60
    assert before.rules["cloud_dialer"].min["attempts"] == old  # the old object is untouched
    assert tuning.settings.rules["ring_once"] == before.rules["ring_once"]
    assert tuning.applied == 1


def test_allow_and_disallow_normalise_numbers(tuning: Tuning) -> None:
    tuning.apply(b'{"op": "allow", "numbers": ["13800000001", "0086 139 0000 0002"]}')
    assert "+8613800000001" in tuning.allowlist and "+8613900000002" in tuning.allowlist
    tuning.apply(b'{"op": "disallow", "numbers": ["+8695588", "+8613800000001"]}')
    assert list(tuning.allowlist) == ["+8613900000002"]


@pytest.mark.parametrize(
    "message",
    [
        b"not json",
        b"[1, 2]",
        b'{"op": "delete"}',
        b'{"op": "set", "key": "rules.cloud_dialer.min_attempts"}',
        b'{"op": "set", "key": "rules.cloud_dialer.min_attempts", "value": "many"}',
        b'{"op": "set", "key": "alerts.no_such_key", "value": 3}',
        b'{"op": "set", "key": "features.horizons_s", "value": [60]}',
        b'{"op": "set", "key": "model.seed", "value": 1}',
        b'{"op": "allow", "numbers": []}',
        b'{"op": "allow", "numbers": "13800000001"}',
        b'{"op": "allow", "numbers": ["13800000001", "hello"]}',
        b'{"op": "allow", "numbers": ["13800000001"], "extra": 1}',
    ],
)
def test_bad_messages_change_nothing(tuning: Tuning, message: bytes) -> None:
    settings, allowlist = tuning.settings, tuning.allowlist
    with pytest.raises(ControlError):
        tuning.apply(message)
    assert tuning.settings is settings and tuning.allowlist is allowlist
    assert tuning.refused == 1 and tuning.applied == 0


def test_errors_carry_no_numbers(tuning: Tuning) -> None:
    with pytest.raises(ControlError) as info:
        tuning.apply(b'{"op": "allow", "numbers": ["13800000001", "x13812345678y"]}')
    assert "1380000" not in str(info.value) and "13812345678" not in str(info.value)
    with pytest.raises(ControlError) as info:
        tuning.apply(b'{"op": "set", "key": "rules.x13812345678.min_attempts", "value": 1}')
    assert "13812345678" not in str(info.value)


def test_parse_control_shapes() -> None:
    assert parse_control('{"op": "set", "key": "a.b", "value": null}')["value"] is None
    assert redact("call +86 138 1234 5678 now") == "call <number> now"
