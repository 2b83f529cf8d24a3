"""Checks every reader applies to the values it decodes, and the rejection of bad input.

Readers never raise on bad input: a record that cannot be a call becomes a
:class:`~detectors.records.Rejected` with a reason code and a detail.  What is
physically impossible is refused here the same way for every format: a call
longer than ``max_call_s``, a start outside ``[min_year, max_year]``, digits
other than ASCII 0-9, JSON nested deeper than :data:`MAX_DEPTH`.

>>> limits = Limits()
>>> limits.check_start(1714521600.0) is None, limits.check_start(1e308)
(True, 'time out of range (years 1990..2099): 1e+308')
>>> limits.check_seconds(4294967295, "duration")
'duration 4294967295 s is longer than a call can be (input.max_call_s 86400)'
>>> caller_text("anonymous"), caller_text(13800000001.0), number_text(13800000001.0)
('', '13800000001', '13800000001')
>>> too_deep(b"[" * 100 + b"]" * 100), too_deep(b'{"a": "[[[[[[[[[[[[[[[["}')
(True, False)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from detectors.numbers import BadNumber, NotDialable
from detectors.records import WITHHELD, Call, Rejected

Decoded = Call | Rejected

#: Deepest JSON nesting decoded at all (a CDR is an object, maybe inside one array).
MAX_DEPTH = 32
#: Longest raw text kept in a rejection.
RAW_LIMIT = 2048

#: What switches write for a caller who withheld their number (CONTRACT 1a), lower case.
WITHHELD_NAMES = frozenset({"", "anonymous", "unknown", "restricted", "private", "unavailable"})

_BRACKETS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')
_ELEMENT_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{},]')


def reject(reason: str, detail: str, raw: bytes | str, source: str) -> Rejected:
    """A rejection keeping at most :data:`RAW_LIMIT` characters of the input as it came."""
    return Rejected(reason=reason, detail=detail, raw=raw[:RAW_LIMIT], source=source)


def too_deep(data: bytes | str, limit: int = MAX_DEPTH) -> bool:
    """Whether JSON text nests arrays and objects deeper than ``limit`` (strings skipped).

    Decoders recurse per level and fail (or crash) on ``[`` * 100000, so the depth is
    measured before decoding; the exact scan runs only when there are enough brackets.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    depth = 0
    for match in _BRACKETS.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif token in (b"]", b"}"):
            depth -= 1
    return False


def array_elements(data: bytes) -> list[bytes] | None:
    """The raw elements of a top-level JSON array, found without decoding (any depth).

    For an array too deep to decode whole: each element is then judged alone.
    None when ``data`` is not an array with balanced brackets.

    >>> array_elements(b'[{"a": [1, 2]}, "x,y", [[[]]]]')
    [b'{"a": [1, 2]}', b'"x,y"', b'[[[]]]']
    """
    body = data.strip()
    if body[:1] != b"[" or body[-1:] != b"]":
        return None
    elements: list[bytes] = []
    depth, begin = 0, 1
    for match in _ELEMENT_TOKENS.finditer(body):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
        elif token in (b"]", b"}"):
            depth -= 1
            if depth == 0:
                if match.end() != len(body):
                    return None
                last = body[begin:match.start()].strip()
                if last:
                    elements.append(last)
        elif token == b"," and depth == 1:
            elements.append(body[begin:match.start()].strip())
            begin = match.end()
        if depth < 0:
            return None
    return elements if depth == 0 else None


def number_text(value: Any) -> str | None:
    """The text of a number given as a JSON string or whole number, else None.

    ``13800000001.0`` is the number 13800000001, not the digits ``138000000010``.
    """
    if type(value) is str:
        return value
    if type(value) is int:
        return str(value)
    if type(value) is float and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return None


def caller_text(value: Any) -> str | None:
    """:func:`number_text`, with every withheld-caller spelling turned into ``WITHHELD``."""
    text = number_text(value)
    if text is not None and text.strip().lower() in WITHHELD_NAMES:
        return WITHHELD
    return text


def number_reason(exc: BadNumber) -> str:
    """The reason code of a number that did not normalise."""
    return "not_dialable" if isinstance(exc, NotDialable) else "bad_number"


def _epoch(year: int) -> float:
    return datetime(year, 1, 1, tzinfo=UTC).timestamp()


@dataclass(frozen=True)
class Limits:
    """The physical ranges a record must respect (``[input]`` settings)."""

    #: first and last calendar year (UTC) a call may start in
    min_year: int = 1990
    max_year: int = 2099
    #: longest call (duration, ring) in seconds
    max_call_s: float = 86400.0
    #: epoch seconds of the start of ``min_year`` and of the year after ``max_year``
    earliest: float = field(init=False, repr=False, default=0.0)
    latest: float = field(init=False, repr=False, default=0.0)

    def __post_init__(self) -> None:
        if not 1970 <= self.min_year <= self.max_year <= 9998:
            raise ValueError(f"years {self.min_year}..{self.max_year}: need 1970 <= min <= max")
        if not self.max_call_s > 0:
            raise ValueError(f"max_call_s must be positive, got {self.max_call_s!r}")
        object.__setattr__(self, "earliest", _epoch(self.min_year))
        object.__setattr__(self, "latest", _epoch(self.max_year + 1))

    def check_start(self, t: float) -> str | None:
        """None when ``t`` (epoch seconds) is a possible start, else why not."""
        if self.earliest <= t < self.latest:
            return None
        return f"time out of range (years {self.min_year}..{self.max_year}): {t!r}"

    def check_seconds(self, value: int | float, name: str) -> str | None:
        """None when ``value`` is a possible number of seconds of one call, else why not."""
        if 0 <= value <= self.max_call_s:
            return None
        if value < 0:
            return f"{name} must not be negative, got {value!r}"
        return (f"{name} {value!r} s is longer than a call can be "
                f"(input.max_call_s {self.max_call_s:g})")


def ascii_int(text: str) -> int | None:
    """A non-negative whole number written in ASCII digits (at most 9), else None.

    >>> ascii_int("42"), ascii_int("４２"), ascii_int("²³"), ascii_int("1" * 100)
    (42, None, None, None)
    """
    if text.isascii() and text.isdigit() and len(text) <= 9:
        return int(text)
    return None


DEFAULT_LIMITS = Limits()


def record_start(value: Any) -> float | None:
    """Epoch seconds of a simulator record's start, or None if it is not a time."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            return None
        return dt.timestamp() if dt.tzinfo is not None else None
    return None


#: most values a reader's memo of already-converted fields holds (then it starts afresh)
REMEMBERED = 100_000
_V = TypeVar("_V")


def remember(memo: dict[str, _V], key: str, value: _V) -> _V:
    """Keep ``value`` for ``key`` in ``memo`` (cleared at once when full: bounded memory,
    and a day's fields repeat soon enough to fill it again) and return it.

    >>> memo: dict[str, int] = {}
    >>> remember(memo, "42", 42), memo
    (42, {'42': 42})
    """
    if len(memo) >= REMEMBERED:
        memo.clear()
    memo[key] = value
    return value
