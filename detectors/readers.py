"""Decoding CDRs (CONTRACT section 1) into :class:`~detectors.records.Call` values.

Every function here turns bytes or text into ``Call`` or ``Rejected`` values
and never raises on bad input: a line that cannot be a call becomes a
rejection with a reason code and a detail, and the next line is read as if
nothing happened.  The same decoding serves files (``dialguard replay``) and
Kafka message values (the stream workers).

>>> norm = NumberNormaliser("CN")
>>> [c] = decode_json_value(b'{"caller": "13800000001", "callee": "+8613900000002", '
...     b'"start": "2024-05-01T08:00:00+08:00", "duration": 0, "ring": 2}', norm)
>>> c.caller, c.start, c.answered
('+8613800000001', 1714521600.0, False)
>>> decode_json_value(b'{"caller": "13800000001"}', norm)[0].reason
'missing_field'
>>> line = ('"","13800000001","13900000002","default","","SIP/gw-cloud-0000001a","",'
...         '"Dial","","2024-05-01 00:00:00","","2024-05-01 00:00:03","3","0","NO ANSWER",'
...         '"DOCUMENTATION","1714521600.1",""')
>>> [c] = read_asterisk_csv([line], norm)
>>> c.trunk, c.ring, c.answered, c.id
('gw-cloud', 3.0, False, '1714521600.1')
"""

from __future__ import annotations

import bisect
import csv
import gzip
import heapq
import io
import math
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from datetime import datetime
from operator import attrgetter
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import msgspec
import orjson

from detectors.numbers import BadNumber, NumberNormaliser
from detectors.records import Call, Rejected

Decoded = Call | Rejected

_REQUIRED = ("caller", "callee", "start", "duration")
_ASTERISK_COLUMNS = 18
# Epoch seconds outside [1990, 2100) are almost certainly milliseconds or garbage.
_EPOCH_MIN, _EPOCH_MAX = 631152000.0, 4102444800.0


def _bad(reason: str, detail: str, raw: Any, source: str) -> Rejected:
    if not isinstance(raw, bytes | str):
        raw = orjson.dumps(raw, default=str)
    return Rejected(reason=reason, detail=detail, raw=raw[:2048], source=source)


def parse_time(value: Any) -> float:
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
    if not (_EPOCH_MIN <= t < _EPOCH_MAX) or math.isnan(t):
        raise ValueError(f"time out of range (epoch seconds 1990..2100): {value!r}")
    return t


def call_from_mapping(
    record: Any, normaliser: Callable[[str], str], source: str = "", raw: Any = None
) -> Decoded:
    """One CONTRACT 1a object to a Call, or a rejection saying what is wrong."""
    if type(record) is not dict:
        return _bad("not_an_object", f"expected a JSON object, got {type(record).__name__}",
                    record if raw is None else raw, source)
    get = record.get
    caller = get("caller")
    callee = get("callee")
    start = get("start")
    duration = get("duration")
    if caller is None or callee is None or start is None or duration is None:
        missing = next(n for n in _REQUIRED if get(n) is None)
        return _bad("missing_field", f"required field {missing!r} is missing",
                    record if raw is None else raw, source)
    try:
        caller = normaliser(caller if type(caller) is str else str(caller))
        callee = normaliser(callee if type(callee) is str else str(callee))
    except BadNumber as exc:
        return _bad("bad_number", str(exc), record if raw is None else raw, source)
    if type(start) is float or type(start) is int:
        if not _EPOCH_MIN <= start < _EPOCH_MAX:
            return _bad("bad_time", f"start: time out of range (epoch seconds 1990..2100): "
                        f"{start!r}", record if raw is None else raw, source)
        start = float(start)
    else:
        try:
            start = parse_time(start)
        except ValueError as exc:
            return _bad("bad_time", f"start: {exc}", record if raw is None else raw, source)
    if type(duration) is not int:
        if isinstance(duration, float) and duration.is_integer():
            duration = int(duration)
        else:
            return _bad("bad_duration",
                        f"duration must be a non-negative integer, got {duration!r}",
                        record if raw is None else raw, source)
    if duration < 0:
        return _bad("bad_duration", f"duration must be a non-negative integer, got {duration!r}",
                    record if raw is None else raw, source)
    answered = get("answered")
    if answered is None:
        answered = duration > 0
    elif type(answered) is not bool:
        return _bad("bad_field", f"answered must be true or false, got {answered!r}",
                    record if raw is None else raw, source)
    ring = get("ring")
    if ring is not None:
        if type(ring) is int:
            ring = float(ring)
        if type(ring) is not float or not 0 <= ring < 86400:
            return _bad("bad_field", f"ring must be seconds >= 0, got {ring!r}",
                        record if raw is None else raw, source)
    record_id = get("id")
    trunk = get("trunk")
    src_ip = get("src_ip")
    disposition = get("disposition")
    if record_id is not None and type(record_id) is not str:
        if type(record_id) is int:
            record_id = str(record_id)
        else:
            return _bad("bad_field", f"id must be a string, got {record_id!r}",
                        record if raw is None else raw, source)
    if (
        (trunk is not None and type(trunk) is not str)
        or (src_ip is not None and type(src_ip) is not str)
        or (disposition is not None and type(disposition) is not str)
    ):
        name, value = next((n, v) for n, v in (("trunk", trunk), ("src_ip", src_ip),
                                               ("disposition", disposition))
                           if v is not None and type(v) is not str)
        return _bad("bad_field", f"{name} must be a string, got {value!r}",
                    record if raw is None else raw, source)
    return Call(caller, callee, start, duration, answered, ring, record_id, trunk, src_ip,
                disposition)


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


def _fast_call(data: bytes | str, normaliser: Callable[[str], str]) -> Call | None:
    """The Call in one well-formed JSON object, or None when the careful path must decide."""
    try:
        w = _decode_wire(data)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    return _from_wire(w, normaliser)


def _fast_calls(data: bytes | str, normaliser: Callable[[str], str]) -> list[Decoded] | None:
    """The Calls in a JSON array of well-formed objects, or None (the careful path decides)."""
    try:
        wires = _decode_wire_list(data)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    calls: list[Decoded] = []
    for w in wires:
        call = _from_wire(w, normaliser)
        if call is None:
            return None
        calls.append(call)
    return calls


def _from_wire(w: _WireCDR, normaliser: Callable[[str], str]) -> Call | None:
    caller, callee, raw_start, duration = w.caller, w.callee, w.start, w.duration
    start: float
    if type(raw_start) is float and _EPOCH_MIN <= raw_start < _EPOCH_MAX:
        start = raw_start
    else:
        try:
            start = parse_time(raw_start)
        except ValueError:
            return None
    if isinstance(duration, float):
        if not duration.is_integer():
            return None
        duration = int(duration)
    if duration < 0:
        return None
    ring = w.ring
    if ring is not None:
        ring = float(ring)
        if not 0 <= ring < 86400:
            return None
    try:
        caller = normaliser(caller if type(caller) is str else str(caller))
        callee = normaliser(callee if type(callee) is str else str(callee))
    except BadNumber:
        return None
    answered = w.answered
    record_id = w.id if w.id is None or isinstance(w.id, str) else str(w.id)
    return Call(caller, callee, start, duration, duration > 0 if answered is None else answered,
                ring, record_id, w.trunk, w.src_ip, w.disposition)


def decode_json_value(
    data: bytes | str, normaliser: Callable[[str], str], source: str = ""
) -> list[Decoded]:
    """A JSON object or array of objects (a Kafka message value, or one line)."""
    fast = _fast_call(data, normaliser)
    if fast is not None:
        return [fast]
    if data[:1] in (b"[", "["):
        many = _fast_calls(data, normaliser)
        if many is not None:
            return many
        # One bad element must not send its whole batch down the careful path: split the
        # array into its elements' raw JSON and decode each alone, carefully only if needed.
        try:
            elements = _decode_raw_list(data)
        except (msgspec.ValidationError, msgspec.DecodeError):
            elements = None
        if elements is not None:
            out: list[Decoded] = []
            for i, raw in enumerate(elements):
                fast = _fast_call(raw, normaliser)
                out.append(fast if fast is not None
                           else _careful_call(bytes(raw), normaliser, f"{source}[{i}]"))
            return out
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return [_bad("malformed", f"not JSON: {exc}", data, source)]
    if isinstance(value, list):
        return [call_from_mapping(item, normaliser, f"{source}[{i}]")
                for i, item in enumerate(value)]
    return [call_from_mapping(value, normaliser, source, raw=data)]


def _careful_call(data: bytes, normaliser: Callable[[str], str], source: str) -> Decoded:
    """One JSON value decoded field by field: a call, or a rejection that says why."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return _bad("malformed", f"not JSON: {exc}", data, source)
    return call_from_mapping(value, normaliser, source, raw=data)


def read_json_lines(
    lines: Iterable[bytes | str], normaliser: Callable[[str], str], source: str = ""
) -> Iterator[Decoded]:
    """JSON lines: one object (or array of objects) per line; blank lines skipped."""
    loads = orjson.loads
    for lineno, line in enumerate(lines, 1):
        fast = _fast_call(line, normaliser)
        if fast is not None:
            yield fast
            continue
        try:
            value = loads(line)
        except orjson.JSONDecodeError as exc:
            if not line.strip():
                continue
            yield _bad("malformed", f"not JSON: {exc}", line, f"{source}:{lineno}")
            continue
        if type(value) is dict:
            decoded = call_from_mapping(value, normaliser, "", raw=line)
            if type(decoded) is Rejected:  # where it came from is worked out only when needed
                decoded = replace(decoded, source=f"{source}:{lineno}")
            yield decoded
        elif isinstance(value, list):
            for i, item in enumerate(value):
                yield call_from_mapping(item, normaliser, f"{source}:{lineno}[{i}]")
        else:
            yield _bad("not_an_object", f"expected a JSON object, got {type(value).__name__}",
                       line, f"{source}:{lineno}")


def asterisk_trunk(channel: str) -> str | None:
    """The peer or endpoint name in an Asterisk channel name.

    >>> asterisk_trunk("SIP/gw-cloud-0000001a"), asterisk_trunk("PJSIP/trunk7-00000003")
    ('gw-cloud', 'trunk7')
    """
    _, slash, name = channel.partition("/")
    if slash and name:  # the usual TECH/peer-suffix, without the regular expression
        head, dash, tail = name.rpartition("-")
        return head if dash and head and tail and not tail.strip(_HEX) else name
    match = _CHANNEL.match(channel)
    return match.group(1) if match else None


_CHANNEL = re.compile(r"(?:[^/]*/)?(.+?)(?:-[0-9A-Fa-f]+)?$")
_HEX = "0123456789abcdefABCDEF"


def read_asterisk_csv(
    lines: Iterable[bytes | str],
    normaliser: Callable[[str], str],
    timezone: str = "UTC",
    source: str = "",
) -> Iterator[Decoded]:
    """Asterisk ``Master.csv`` (cdr_csv): no header, 18 quoted columns."""
    tz = ZoneInfo(timezone)
    minute_epochs: dict[str, float] = {}  # "YYYY-MM-DD HH:MM" -> epoch seconds, in ``tz``
    separators = _ASTERISK_COLUMNS - 1
    for lineno, line in enumerate(lines, 1):
        text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
        text = text.rstrip("\r\n")
        if not text or text.isspace():
            continue
        # Asterisk quotes every field: split on '","' when that is unambiguous, else csv.
        if text[:1] == '"' and text[-1:] == '"' and text.count('","') == separators:
            row = text[1:-1].split('","')
        else:
            try:
                row = next(csv.reader([text]))
            except (csv.Error, StopIteration) as exc:
                yield _bad("malformed", f"not a CSV row: {exc}", text, f"{source}:{lineno}")
                continue
            if len(row) != _ASTERISK_COLUMNS:
                yield _bad("malformed", f"expected {_ASTERISK_COLUMNS} columns, got {len(row)}",
                           text, f"{source}:{lineno}")
                continue
        (_acct, src, dst, _ctx, _clid, channel, _dstch, _app, _data, start, _answer, _end,
         duration, billsec, disposition, _ama, uniqueid, _user) = row
        started = _asterisk_epoch(start, tz, minute_epochs)
        if started is None:
            yield _bad("bad_time", f"start: not 'YYYY-MM-DD HH:MM:SS': {start!r}",
                       text, f"{source}:{lineno}")
            continue
        try:
            total = int(duration)
            talk = int(billsec)
        except ValueError:
            yield _bad("bad_duration", f"duration/billsec not integers: {duration!r}/{billsec!r}",
                       text, f"{source}:{lineno}")
            continue
        if talk < 0 or total < talk:
            yield _bad("bad_duration", f"billsec {talk} must be within 0..duration {total}",
                       text, f"{source}:{lineno}")
            continue
        try:
            caller = normaliser(src)
            callee = normaliser(dst)
        except BadNumber as exc:
            yield _bad("bad_number", str(exc), text, f"{source}:{lineno}")
            continue
        disposition = disposition.strip().upper()
        yield Call(caller, callee, started, talk, disposition == "ANSWERED",
                   float(total - talk), uniqueid or None, asterisk_trunk(channel), None,
                   disposition or None)


def _asterisk_epoch(start: str, tz: ZoneInfo, cache: dict[str, float]) -> float | None:
    """Epoch seconds of an Asterisk ``YYYY-MM-DD HH:MM:SS`` in ``tz`` (cached per minute)."""
    if len(start) == 19 and start[16] == ":" and start[17:].isdigit():
        minute = start[:16]
        base = cache.get(minute)
        if base is None:
            try:
                base = datetime.fromisoformat(minute).replace(tzinfo=tz).timestamp()
            except ValueError:
                return None
            if len(cache) > 100_000:
                cache.clear()
            cache[minute] = base
        return base + int(start[17:])
    try:
        started = datetime.fromisoformat(start.strip())
    except ValueError:
        return None
    if started.tzinfo is None:
        started = started.replace(tzinfo=tz)
    return started.timestamp()


# ---------------------------------------------------------------------------- files


def open_binary(path: str | Path) -> IO[bytes]:
    """A path (``-`` for stdin) opened for reading bytes, gunzipped if it is gzip."""
    if str(path) == "-":
        stream: IO[bytes] = sys.stdin.buffer
    else:
        stream = open(path, "rb")  # noqa: SIM115 - the caller closes it
    buffered = stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(stream)  # type: ignore[type-var]
    if buffered.peek(2)[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=buffered)  # type: ignore[return-value]
    return buffered


def sniff_format(stream: IO[bytes]) -> str:
    """``json`` or ``asterisk`` from the first non-blank bytes of a peekable stream."""
    head = stream.peek(4096) if hasattr(stream, "peek") else b""
    head = head.lstrip()
    if head[:1] in (b"{", b"["):
        return "json"
    if head[:1] == b'"' or b"," in head.split(b"\n", 1)[0]:
        return "asterisk"
    return "json"


def read_path(
    path: str | Path, fmt: str, normaliser: NumberNormaliser, timezone: str = "UTC"
) -> Iterator[Decoded]:
    """All records of one file in file order.  ``fmt`` is auto, json or asterisk."""
    name = "<stdin>" if str(path) == "-" else Path(path).name
    stream = open_binary(path)
    try:
        if fmt == "auto":
            fmt = sniff_format(stream)
        if fmt == "json":
            yield from read_json_lines(stream, normaliser, name)
        elif fmt == "asterisk":
            yield from read_asterisk_csv(stream, normaliser, timezone, name)
        else:
            raise ValueError(f"unknown format {fmt!r}: auto, json or asterisk")
    finally:
        if str(path) != "-":
            stream.close()


_BY_START = attrgetter("start")
_ORDER_CHUNK = 4096


def event_time_order(
    records: Iterable[Decoded], slack_s: float = 300.0, chunk: int = _ORDER_CHUNK
) -> Iterator[Decoded]:
    """Re-order calls that arrive up to ``slack_s`` seconds late, in bounded memory.

    Calls are buffered in chunks, sorted (cheap: the input is nearly sorted) and
    released once they are ``slack_s`` older than the newest call seen.
    Rejections pass straight through.  A call later than the slack is passed on
    at the next release (the detectors tolerate it), so nothing is dropped.

    >>> calls = [Call("+1", "+2", t, 0, False) for t in (10.0, 5.0, 20.0, 400.0, 15.0)]
    >>> [c.start for c in event_time_order(calls, slack_s=60)]
    [5.0, 10.0, 15.0, 20.0, 400.0]
    """
    buffer: list[Call] = []
    newest = -math.inf
    for record in records:
        if type(record) is not Call:
            yield record
            continue
        buffer.append(record)
        if record.start > newest:
            newest = record.start
        if len(buffer) >= chunk:
            buffer.sort(key=_BY_START)
            cut = bisect.bisect_right(buffer, newest - slack_s, key=_BY_START)
            if cut:
                yield from buffer[:cut]
                del buffer[:cut]
            if len(buffer) >= 16 * chunk:  # a slack wider than memory allows
                yield from buffer[:chunk]
                del buffer[:chunk]
    buffer.sort(key=_BY_START)
    yield from buffer


def read_paths(
    paths: Iterable[str | Path],
    fmt: str,
    normaliser: NumberNormaliser,
    timezone: str = "UTC",
    slack_s: float = 300.0,
) -> Iterator[Decoded]:
    """Several files merged into one event-time ordered stream (each re-ordered within slack)."""
    streams = [event_time_order(read_path(p, fmt, normaliser, timezone), slack_s) for p in paths]
    if len(streams) == 1:
        yield from streams[0]
        return

    def key(record: Decoded) -> float:
        return record.start if isinstance(record, Call) else -math.inf

    yield from heapq.merge(*streams, key=key)
