"""Live tuning of running workers: control messages on ``dialguard.control``.

A control message is one JSON object:

* ``{"op": "set", "key": "rules.cloud_dialer.min_attempts", "value": 60}``:
  one settings key (validated by :func:`detectors.config.with_override`; keys
  fixed at start are refused);
* ``{"op": "allow", "numbers": ["+8695588", ...]}`` /
  ``{"op": "disallow", "numbers": [...]}``: add numbers to / remove numbers
  from the allowlist (normalised with the configured region).

A message that is not valid changes nothing: :meth:`Tuning.apply` raises
:class:`ControlError` and leaves settings and allowlist as they were.  The
messages of a :class:`ControlError` never contain subscriber numbers (digit
runs are masked), so they can be logged.

>>> from detectors.config import load_settings
>>> t = Tuning(load_settings())
>>> t.apply(b'{"op": "set", "key": "rules.cloud_dialer.min_attempts", "value": 60}')
'set rules.cloud_dialer.min_attempts'
>>> t.settings.rules["cloud_dialer"].min["attempts"]
60.0
>>> t.apply(b'{"op": "allow", "numbers": ["13800000001"]}'), "+8613800000001" in t.allowlist
('allow 1 number(s)', True)
>>> t.apply(b'{"op": "set", "key": "alerts.min_attempts", "value": "13812345678"}')
Traceback (most recent call last):
...
streams.control.ControlError: alerts.min_attempts must be a number, got '<number>'
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from detectors.allowlist import Allowlist
from detectors.config import ConfigError, Settings, with_override
from detectors.numbers import BadNumber, NumberNormaliser

#: Most numbers one allow/disallow message may carry (a bigger list is a mistake).
MAX_NUMBERS = 100_000
OPS = ("set", "allow", "disallow")

# Five or more digits in a row (separators allowed): possibly a subscriber number.
_DIGITS = re.compile(r"\+?\d(?:[\s\-().]?\d){4,}")


class ControlError(ValueError):
    """A control message that was refused; the text carries no subscriber numbers."""


def redact(text: str) -> str:
    """``text`` with anything that could be a telephone number masked.

    >>> redact("bad number '+86 138 1234 5678' at line 3")
    "bad number '<number>' at line 3"
    """
    return _DIGITS.sub("<number>", text)


def parse_control(data: bytes | str) -> dict[str, Any]:
    """Decode and shape-check one control message; raises :class:`ControlError`."""
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ControlError("control message is not JSON") from None
    if not isinstance(message, dict):
        raise ControlError("control message must be a JSON object")
    op = message.get("op")
    if op not in OPS:
        raise ControlError(f"control op must be one of {', '.join(OPS)}")
    if op == "set":
        key = message.get("key")
        if not isinstance(key, str) or not key:
            raise ControlError("'set' needs a dotted settings 'key'")
        if "value" not in message:
            raise ControlError(f"'set' of {redact(key)} needs a 'value'")
        extra = set(message) - {"op", "key", "value"}
    else:
        numbers = message.get("numbers")
        if not isinstance(numbers, list) or not numbers:
            raise ControlError(f"'{op}' needs a non-empty list 'numbers'")
        if len(numbers) > MAX_NUMBERS:
            raise ControlError(f"'{op}' carries {len(numbers)} numbers (at most {MAX_NUMBERS})")
        if not all(isinstance(n, str) for n in numbers):
            raise ControlError(f"'{op}': every number must be a string")
        extra = set(message) - {"op", "numbers"}
    if extra:
        fields = redact(", ".join(sorted(extra)))
        raise ControlError(f"unknown field(s) in control message: {fields}")
    return message


class Tuning:
    """The settings and allowlist a worker currently runs with, changed by control messages."""

    def __init__(self, settings: Settings, allowlist: Allowlist | None = None) -> None:
        self.settings = settings
        self.allowlist = allowlist if allowlist is not None else Allowlist()
        self.normaliser = NumberNormaliser(settings.input.region)
        #: control messages applied / refused so far
        self.applied = 0
        self.refused = 0

    def apply(self, data: bytes | str) -> str:
        """Apply one control message; returns a short description (no numbers).

        Raises :class:`ControlError` (and changes nothing) if the message is invalid.
        """
        try:
            message = parse_control(data)
            if message["op"] == "set":
                try:
                    settings = with_override(self.settings, message["key"], message["value"])
                except ConfigError as exc:
                    raise ControlError(redact(str(exc))) from None
                self.settings = settings
                description = f"set {redact(message['key'])}"
            else:
                try:
                    numbers = [self.normaliser(n) for n in message["numbers"]]
                except BadNumber:
                    raise ControlError(
                        f"'{message['op']}': a value in 'numbers' is not a telephone number"
                    ) from None
                if message["op"] == "allow":
                    self.allowlist = self.allowlist.with_numbers(added=numbers)
                else:
                    self.allowlist = self.allowlist.with_numbers(removed=numbers)
                description = f"{message['op']} {len(numbers)} number(s)"
        except ControlError:
            self.refused += 1
            raise
        self.applied += 1
        return description
