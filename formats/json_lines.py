"""JSON CDRs (CONTRACT 1a): one object per line in a file, an object or array per message.

Well-formed objects take a fast path (msgspec decodes into a typed struct, in
C); anything else is decoded field by field so that the rejection says what is
wrong.  Nesting is measured before any decoding, and no decoder error escapes.

>>> from detectors.numbers import NumberNormaliser
>>> reader = JsonLines(NumberNormaliser("CN"))
>>> [c] = reader.decode(b'{"caller": "13800000001", "callee": "+8613900000002", '
...     b'"start": "2024-05-01T08:00:00+08:00", "duration": 0, "ring": 2}')
>>> c.caller, c.start, c.answered
('+8613800000001', 1714521600.0, False)
>>> [c] = reader.decode(b'{"caller": "anonymous", "callee": "13900000002", "start": 1.7e9, '
...     b'"duration": 5}')
>>> c.withheld
True
>>> [r.reason for r in reader.decode(b'{"caller": "13800000001"}')]
['missing_field']
>>> [r.reason for r in reader.decode(b"[" * 100000 + b"]" * 100000)]
['malformed']
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from datetime import datetime
from typing import IO, Any

import msgspec
import orjson

from detectors.numbers import BadNumber
from detectors.records import WITHHELD, Call, Rejected
from formats.fields import (
    DEFAULT_LIMITS,
    WITHHELD_NAMES,
    Decoded,
    Limits,
    array_elements,
    caller_text,
    number_reason,
    number_text,
    reject,
    too_deep,
)

_REQUIRED = ("caller", "callee", "start", "duration")
#: everything a decoder may raise on hostile input (msgspec's errors are ValueErrors)
DECODE_ERRORS = (ValueError, TypeError, OverflowError, RecursionError, MemoryError)


def parse_time(value: Any, limits: Limits = DEFAULT_LIMITS) -> float:
    """Epoch seconds from a number or an ISO-8601 string with an offset.

    >>> parse_time("2024-05-01T00:00:00Z"), parse_time(1714521600), parse_time("1714521600.5")
    (1714521600.0, 1714521600.0, 1714521600.5)
    >>> parse_time("2024-05-01T00:00:00")
    Traceback (most recent call last):
    ...
    ValueError: ISO-8601 time without an offset: '2024-05-01T00:00:00'
    """
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, int | float):
        t = float(value)
    elif isinstance(value, str):
        if not value.isascii():
            raise ValueError(f"not ISO-8601 or epoch seconds (digits must be ASCII): {value!r}")
        try:
            t = float(value)
        except ValueError:
            try:
                dt = datetime.fromisoformat(value)
            except ValueError:
                raise ValueError(f"not ISO-8601 or epoch seconds: {value!r}") from None
            if dt.tzinfo is None:
                raise ValueError(f"ISO-8601 time without an offset: {value!r}") from None
            t = dt.timestamp()
    else:
        raise ValueError(f"not a time: {value!r}")
    if math.isnan(t):
        raise ValueError(f"not a time: {value!r}")
    problem = limits.check_start(t)
    if problem is not None:
        raise ValueError(problem)
    return t


class _WireCDR(msgspec.Struct):
    """CONTRACT 1a as a typed struct, for the fast path: decoding and type checks in C."""

    caller: str | int
    callee: str | int
    start: str | float | int
    duration: int | float
    answered: bool | None = None
    ring: float | int | None = None
    id: str | int | None = None
    trunk: str | None = None
    src_ip: str | None = None
    disposition: str | None = None


_decode_wire = msgspec.json.Decoder(_WireCDR).decode
_decode_wire_list = msgspec.json.Decoder(list[_WireCDR]).decode
_decode_raw_list = msgspec.json.Decoder(list[msgspec.Raw]).decode


class JsonLines:
    """Reader of CONTRACT 1a JSON: files of JSON lines and Kafka message values.

    ``normaliser`` turns numbers into E.164 (:class:`~detectors.numbers.NumberNormaliser`);
    ``limits`` are the physical ranges a record must respect.
    """

    name = "json"

    def __init__(self, normaliser: Callable[[str], str], limits: Limits = DEFAULT_LIMITS) -> None:
        self.normaliser = normaliser
        self.limits = limits

    # ---------------------------------------------------------------- entry points

    def read(self, lines: Iterable[bytes | str], source: str = "") -> Iterator[Decoded]:
        """JSON lines: one object (or array of objects) per line; blank lines skipped."""
        fast_call = self._fast_call
        for lineno, line in enumerate(lines, 1):
            fast = fast_call(line)
            if fast is not None:
                yield fast
                continue
            if not line.strip():
                continue
            where = f"{source}:{lineno}"
            for decoded in self.decode(line, ""):
                if type(decoded) is Rejected:  # where it came from is worked out only when needed
                    decoded = replace(decoded, source=where + decoded.source)
                yield decoded

    def decode(self, data: bytes | str, source: str = "") -> list[Decoded]:
        """A JSON object or array of objects (a Kafka message value, or one line)."""
        fast = self._fast_call(data)
        if fast is not None:
            return [fast]
        is_array = data[:1] in (b"[", "[") or data.lstrip()[:1] in (b"[", "[")
        if is_array:
            many = self._fast_calls(data)
            if many is not None:
                return many
        # Only now, on the careful path, is the depth measured: the typed fast decoders
        # refuse deep nesting themselves (RecursionError, caught), and scanning every
        # message for brackets would cost more than decoding it.
        if too_deep(data):
            return self._deep(data, source)
        if is_array:
            # One bad element must not send its whole batch down the careful path: split
            # the array into its elements' raw JSON and decode each alone.
            try:
                elements = _decode_raw_list(data)
            except DECODE_ERRORS:
                elements = None
            if elements is not None:
                out: list[Decoded] = []
                for i, raw in enumerate(elements):
                    element = bytes(raw)
                    fast = self._fast_call(element)
                    out.append(fast if fast is not None
                               else self._careful(element, f"{source}[{i}]", element=True))
                return out
        return [self._careful(data, source)]

    def from_mapping(self, record: Any, source: str = "", raw: bytes | str = b"") -> Decoded:
        """One decoded CONTRACT 1a object to a Call, or a rejection saying what is wrong."""
        if type(record) is not dict:
            return reject("not_an_object",
                          f"expected a JSON object, got {type(record).__name__}", raw, source)
        get = record.get
        caller, callee, start, duration = (get("caller"), get("callee"), get("start"),
                                           get("duration"))
        if caller is None or callee is None or start is None or duration is None:
            missing = next(n for n in _REQUIRED if get(n) is None)
            return reject("missing_field", f"required field {missing!r} is missing", raw,
                          source)
        caller_raw, callee_raw = caller_text(caller), number_text(callee)
        if caller_raw is None or callee_raw is None:
            name, value = ("caller", caller) if caller_raw is None else ("callee", callee)
            return reject("bad_number", f"{name} must be a string of digits, got {value!r}",
                          raw, source)
        try:
            caller = WITHHELD if caller_raw == WITHHELD else self.normaliser(caller_raw)
            callee = self.normaliser(callee_raw)
        except BadNumber as exc:
            return reject(number_reason(exc), str(exc), raw, source)
        try:
            start = parse_time(start, self.limits)
        except ValueError as exc:
            return reject("bad_time", f"start: {exc}", raw, source)
        if type(duration) is float and duration.is_integer():
            duration = int(duration)
        if type(duration) is not int:
            return reject("bad_duration",
                          f"duration must be a non-negative integer, got {duration!r}", raw,
                          source)
        problem = self.limits.check_seconds(duration, "duration")
        if problem is not None:
            return reject("bad_duration", problem, raw, source)
        answered = get("answered")
        if answered is None:
            answered = duration > 0
        elif type(answered) is not bool:
            return reject("bad_field", f"answered must be true or false, got {answered!r}",
                          raw, source)
        ring = get("ring")
        if ring is not None:
            if type(ring) is int:
                ring = float(ring)
            if type(ring) is not float or self.limits.check_seconds(ring, "ring") is not None:
                return reject("bad_field", f"ring must be seconds >= 0 within a call, got "
                              f"{ring!r}", raw, source)
        record_id = get("id")
        if record_id is not None and type(record_id) is not str:
            if type(record_id) is not int:
                return reject("bad_field", f"id must be a string, got {record_id!r}", raw,
                              source)
            record_id = str(record_id)
        texts = (("trunk", get("trunk")), ("src_ip", get("src_ip")),
                 ("disposition", get("disposition")))
        for name, value in texts:
            if value is not None and type(value) is not str:
                return reject("bad_field", f"{name} must be a string, got {value!r}", raw,
                              source)
        return Call(caller, callee, start, duration, answered, ring, record_id, texts[0][1],
                    texts[1][1], texts[2][1])

    # ---------------------------------------------------------------- decoding paths

    def _deep(self, data: bytes | str, source: str) -> list[Decoded]:
        """A value nested too deeply to decode: an array is judged element by element."""
        raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
        elements = array_elements(raw)
        if not elements:
            return [reject("malformed", "JSON nested too deeply to be a CDR", data, source)]
        return [self._careful(element, f"{source}[{i}]", element=True)
                for i, element in enumerate(elements)]

    def _careful(self, data: bytes | str, source: str, element: bool = False) -> Decoded:
        """One JSON value decoded field by field: a call, or a rejection that says why."""
        if too_deep(data):
            return reject("malformed", "JSON nested too deeply to be a CDR", data, source)
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            return reject("malformed", f"not JSON: {exc}", data, source)
        except DECODE_ERRORS as exc:
            return reject("malformed", f"not decodable: {type(exc).__name__}", data, source)
        if isinstance(value, list) and not element:
            return reject("malformed", "an array whose elements are not all JSON values",
                          data, source)
        return self.from_mapping(value, source, data)

    def _fast_call(self, data: bytes | str) -> Call | None:
        """The Call in one well-formed JSON object, or None when the careful path must decide."""
        try:
            w = _decode_wire(data)
        except DECODE_ERRORS:
            return None
        return self._from_wire(w)

    def _fast_calls(self, data: bytes | str) -> list[Decoded] | None:
        """The Calls in a JSON array of well-formed objects, or None (the careful path decides)."""
        try:
            wires = _decode_wire_list(data)
        except DECODE_ERRORS:
            return None
        calls: list[Decoded] = []
        for w in wires:
            call = self._from_wire(w)
            if call is None:
                return None
            calls.append(call)
        return calls

    def _from_wire(self, w: _WireCDR) -> Call | None:
        caller, callee, raw_start, duration = w.caller, w.callee, w.start, w.duration
        limits = self.limits
        start: float
        if type(raw_start) is float and limits.earliest <= raw_start < limits.latest:
            start = raw_start
        else:
            try:
                start = parse_time(raw_start, limits)
            except ValueError:
                return None
        if isinstance(duration, float):
            if not duration.is_integer():
                return None
            duration = int(duration)
        if not 0 <= duration <= limits.max_call_s:
            return None
        ring = w.ring
        if ring is not None:
            ring = float(ring)
            if not 0 <= ring <= limits.max_call_s:
                return None
        normaliser = self.normaliser
        try:
            called = normaliser(callee if type(callee) is str else str(callee))
        except BadNumber:
            return None
        try:
            calling = normaliser(caller if type(caller) is str else str(caller))
        except BadNumber:
            if type(caller) is not str or caller.strip().lower() not in WITHHELD_NAMES:
                return None
            calling = WITHHELD
        answered = w.answered
        record_id = w.id if w.id is None or type(w.id) is str else str(w.id)
        return Call(calling, called, start, duration,
                    duration > 0 if answered is None else answered,
                    ring, record_id, w.trunk, w.src_ip, w.disposition)


def write_json_lines(records: Iterable[dict[str, Any]], out: IO[str]) -> int:
    """One JSON object per line (CONTRACT 1a); returns the number written.

    >>> import io
    >>> buf = io.StringIO()
    >>> write_json_lines([{"caller": "1", "duration": 0}], buf), buf.getvalue()
    (1, '{"caller":"1","duration":0}\\n')
    """
    n = 0
    for rec in records:
        out.write(orjson.dumps(rec).decode())
        out.write("\n")
        n += 1
    return n
