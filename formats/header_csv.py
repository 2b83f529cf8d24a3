"""CSV with a header row, its columns named by configuration (CONTRACT 1d).

For switch and billing exports in layouts of their own: the first record names
the columns, ``input.csv_columns`` maps CONTRACT 1a fields to them, and
unmapped columns are ignored, and so is an optional field whose column the
header lacks.  A mapping value is a column name, a CGRateS-style
field reference (``~*req.calling_number``, or ``~*req.3`` for the fourth
column).  Times are epoch seconds or ISO-8601 (a time without an offset is in
``input.timezone``), or follow ``input.csv_time_format`` (``strptime``
directives) when it is set.  Each row then goes through the same checks as a
JSON CDR.

>>> from detectors.numbers import NumberNormaliser
>>> reader = HeaderCsv(NumberNormaliser("CN"), {"caller": "~*req.a_number",
...     "callee": "b_number", "start": "setup", "duration": "billsec"})
>>> [c] = reader.read(["a_number,b_number,setup,billsec,extra",
...                    "13800000001,13900000002,2024-05-01 00:00:00,12,x"])
>>> c.caller, c.start, c.duration, c.answered
('+8613800000001', 1714521600.0, 12, True)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from operator import itemgetter
from typing import IO, Any
from zoneinfo import ZoneInfo

from detectors.numbers import BadNumber
from detectors.records import WITHHELD, Call
from formats.csv_rows import csv_records, split_row
from formats.fields import DEFAULT_LIMITS, WITHHELD_NAMES, Decoded, Limits, ascii_int, reject
from formats.json_lines import JsonLines
from formats.switch_time import LocalTimes

FIELDS = ("caller", "callee", "start", "duration", "answered", "ring", "id", "trunk", "src_ip",
          "disposition")
REQUIRED = ("caller", "callee", "start", "duration")
#: the column map when none is configured: the CONTRACT 1a field names as headers
IDENTITY = {name: name for name in FIELDS}
_TRUE, _FALSE = frozenset({"true", "yes", "1", "y", "t"}), frozenset({"false", "no", "0", "n",
                                                                      "f", ""})


def yes_no(word: str) -> bool | None:
    """True or False for the words of yes and no (any case), else None.

    >>> yes_no("TRUE"), yes_no("n"), yes_no("maybe")
    (True, False, None)
    """
    word = word.lower()
    return True if word in _TRUE else False if word in _FALSE else None


def column_of(reference: str) -> str | int:
    """A column name, or index, from a mapping value (``~*req.NAME`` / ``~*req.N`` allowed)."""
    name = reference.removeprefix("~*req.")
    return int(name) if name.isascii() and name.isdigit() else name


class HeaderCsv:
    """Reader of header CSV with a column map ``columns`` (field -> column reference)."""

    name = "csv"

    def __init__(self, normaliser: Callable[[str], str], columns: Mapping[str, str] = IDENTITY,
                 timezone: str = "UTC", time_format: str = "",
                 limits: Limits = DEFAULT_LIMITS) -> None:
        unknown = set(columns) - set(FIELDS)
        missing = [f for f in REQUIRED if f not in columns]
        if unknown or missing:
            raise ValueError(f"csv column map: unknown fields {sorted(unknown)}, "
                             f"missing {missing} (fields: {', '.join(FIELDS)})")
        self.columns = {field: column_of(ref) for field, ref in columns.items()}
        self.time_format = time_format
        self.timezone = timezone
        self.times = LocalTimes(timezone)
        self.json = JsonLines(normaliser, limits)
        self.normaliser = normaliser
        self.limits = limits

    def read(self, lines: Iterable[bytes | str], source: str = "") -> Iterator[Decoded]:
        """Every record of one file (the first is its header), in file order."""
        index: dict[str, int] | None = None
        pick: Callable[[list[str]], Any] | None = None
        width = 0
        fast_call = self._fast_call
        for lineno, text in csv_records(lines):
            if text is None:
                yield reject("malformed", "a quoted field is never closed", "",
                             f"{source}:{lineno}")
                continue
            row = split_row(text, width or text.count(",") + 1)
            if index is None:
                index, problem = self._index(row)
                if problem:
                    yield reject("malformed", problem, text, f"{source}:{lineno}")
                    return
                width = len(row)
                pick = itemgetter(*(index.get(field, width) for field in FIELDS))
                continue
            if len(row) != width:
                yield reject("malformed", f"expected {width} columns like the header, got "
                             f"{len(row)}", text, f"{source}:{lineno}")
                continue
            row.append("")
            call = fast_call(pick(row))  # type: ignore[misc]  # set with index
            if call is not None:
                yield call
                continue
            row.pop()
            yield self._decode_row(row, index, text, f"{source}:{lineno}")

    def decode(self, data: bytes | str, source: str = "") -> list[Decoded]:
        """A Kafka message: a header line and the rows under it."""
        if isinstance(data, bytes):
            return list(self.read(data.removeprefix(b"\xef\xbb\xbf").split(b"\n"), source))
        return list(self.read(data.removeprefix("\ufeff").split("\n"), source))

    def _index(self, header: list[str]) -> tuple[dict[str, int], str]:
        names = [h.strip() for h in header]
        index: dict[str, int] = {}
        for field, column in self.columns.items():
            if isinstance(column, int):
                if column >= len(names):
                    return {}, f"column {column} of {field!r} is beyond the header's {len(names)}"
                index[field] = column
            elif column in names:
                index[field] = names.index(column)
            elif field in REQUIRED:
                return {}, f"the header has no column {column!r} (mapped to {field!r})"
        return index, ""

    def _decode_row(self, row: list[str], index: dict[str, int], text: str,
                    where: str) -> Decoded:
        record: dict[str, Any] = {}
        for field, i in index.items():
            value = row[i].strip()
            if value == "" and field != "caller":
                continue
            record[field] = value
        start = record.get("start")
        if start is not None:
            record["start"] = self._time(start)
        for field, kind in (("duration", int), ("ring", float)):
            number = record.get(field)
            if number is not None:
                # text that is no number stays text: the JSON checks reject it with a reason
                with contextlib.suppress(ValueError):
                    record[field] = kind(number) if number.isascii() else number
        answered = record.get("answered")
        if answered is not None:
            yes = yes_no(answered)
            record["answered"] = answered if yes is None else yes
        return self.json.from_mapping(record, where, text)

    def _fast_call(self, fields: tuple[str, ...]) -> Call | None:
        """The call of a row whose every value is plainly right, else None (``_decode_row`` then).

        Why: :meth:`_decode_row` builds a dict and runs the generic checks of a
        JSON CDR, which costs more than reading the row.  A row of the usual
        values (digits for numbers, a time ``_time`` reads, a duration in ASCII
        digits, ring seconds, a known yes/no) is read here straight into the
        same call; any other value, and every row to reject, goes the careful
        way, which says what is wrong.  ``fields`` are the values of
        :data:`FIELDS` in order, ``""`` for a field not mapped.
        """
        (caller, callee, start, duration, answered, ring, record_id, trunk, src_ip,
         disposition) = fields
        seconds = ascii_int(duration.strip())
        if seconds is None:
            return None
        limits = self.limits
        started = self._time(start.strip())
        if (type(started) is not float or limits.check_start(started) is not None
                or limits.check_seconds(seconds, "duration") is not None):
            return None
        answered = answered.strip()
        yes = yes_no(answered) if answered else seconds > 0  # an empty value is not given
        if yes is None:
            return None
        ring_s = None
        ring = ring.strip()
        if ring:
            ring_s = self._ring(ring)
            if ring_s is None:
                return None
        caller, callee = caller.strip(), callee.strip()
        if not callee:
            return None
        normaliser = self.normaliser
        try:
            calling = WITHHELD if caller.lower() in WITHHELD_NAMES else normaliser(caller)
            called = normaliser(callee)
        except BadNumber:
            return None
        return Call(calling, called, started, seconds, yes, ring_s, record_id.strip() or None,
                    trunk.strip() or None, src_ip.strip() or None,
                    disposition.strip() or None)

    def _ring(self, text: str) -> float | None:
        """Ring seconds of a stripped, non-empty value, or None unless plainly right."""
        if not text.isascii():
            return None
        try:
            ring = float(text)
        except ValueError:
            return None
        return ring if self.limits.check_seconds(ring, "ring") is None else None

    def _time(self, text: str) -> Any:
        if self.time_format:
            try:
                stamp = datetime.strptime(text, self.time_format)
            except ValueError:
                return text
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=ZoneInfo(self.timezone))
            return stamp.timestamp()
        if not text.isascii():
            return text
        try:
            return float(text)
        except ValueError:
            pass
        epoch = self.times.epoch(text)
        return text if epoch is None else epoch


def write_header_csv(records: Iterable[dict[str, Any]], out: IO[str],
                     columns: Mapping[str, str] | None = None) -> int:
    """Canonical record dicts as header CSV; ``columns`` names the header of each field."""
    import csv

    names = dict(columns or IDENTITY)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([names[f] for f in FIELDS if f in names])
    n = 0
    for rec in records:
        n += 1
        row = []
        for field in FIELDS:
            if field not in names:
                continue
            value = rec.get(field)
            if isinstance(value, bool):
                value = "true" if value else "false"
            row.append("" if value is None else value)
        writer.writerow(row)
    return n
