"""Asterisk ``Master.csv`` (cdr_csv, CONTRACT 1b): reader and writer.

What ``cdr_csv.c`` writes: no header; text fields quoted (a quote doubled),
``duration``, ``billsec`` and ``sequence`` unquoted integers, an unset time an
empty unquoted field.  Sixteen base columns, then as ``cdr.conf`` asks
``uniqueid`` (``loguniqueid``), ``userfield`` (``loguserfield``) and
``peeraccount, linkedid, sequence`` (``newcdrcolumns``): 16 to 21 columns, the
count found from the first record of each file.  Asterisk 12 and later write one
row per dialled leg, the legs sharing a uniqueid: rows that differ are separate
calls, only a row delivered twice is a duplicate.

>>> from detectors.numbers import NumberNormaliser
>>> reader = Asterisk(NumberNormaliser("CN"))
>>> line = ('"","13800000001","13900000002","default","","SIP/gw-cloud-0000001a","",'
...         '"Dial","","2024-05-01 00:00:00",,"2024-05-01 00:00:09",9,4,"NO ANSWER",'
...         '"DOCUMENTATION","1714521600.1",""')
>>> [c] = reader.read([line])
>>> c.trunk, c.ring, c.duration, c.answered, c.id.startswith("1714521600.1#")
('gw-cloud', 9.0, 0, False, True)
>>> [r.reason for r in reader.read([line.replace('"13900000002"', '"s"')])]
['not_dialable']
"""

from __future__ import annotations

import hashlib
import logging
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from operator import itemgetter
from typing import IO, Any

from detectors.numbers import BadNumber
from detectors.records import WITHHELD, Call
from formats.csv_rows import CSV_FIELD_LIMIT, RowSplitter, joined_records, row_pattern
from formats.fields import (
    DEFAULT_LIMITS,
    REMEMBERED,
    WITHHELD_NAMES,
    Decoded,
    Limits,
    number_reason,
    record_start,
    reject,
    remember,
)
from formats.switch_time import LocalTimes, format_local

log = logging.getLogger("dialguard.formats")

BASE_COLUMNS = 16
COLUMN_COUNTS = range(16, 22)
SRC, DST, CHANNEL, START, ANSWER, DURATION, BILLSEC, DISPOSITION = 1, 2, 5, 9, 10, 12, 13, 14
#: the columns a call is made of, in column order; a row is reduced to these ``fields``
CALL_COLUMNS = (SRC, DST, CHANNEL, START, DURATION, BILLSEC, DISPOSITION)
#: where each of them is in ``fields`` (uniqueid, linkedid, sequence follow: see Layout)
F_SRC, F_DST, F_CHANNEL, F_START, F_DURATION, F_BILLSEC, F_DISPOSITION = range(7)
#: ``<epoch>.<n>`` or ``<system>-<epoch>.<n>``: what Asterisk writes as a uniqueid
_UNIQUEID = re.compile(r"(?:.*-)?([0-9]{9,10})\.[0-9]+")
#: a start this far from its uniqueid's clock means the time zone is wrong
_ZONE_SUSPECT_S = 900


class Layout:
    """Where the optional columns are in a file of ``columns`` columns (None: absent).

    17 and 20 columns hold uniqueid *or* userfield: a value shaped like a
    uniqueid (``1714521600.12``) is taken for one.

    >>> Layout(21).uniqueid, Layout(21).sequence, Layout(19).linkedid, Layout(16).uniqueid
    (16, 20, 17, None)
    """

    __slots__ = ("columns", "uniqueid", "maybe_userfield", "linkedid", "sequence", "pick",
                 "field_uniqueid", "field_linkedid", "field_sequence", "row_pattern",
                 "quoted_pattern", "record_id")

    def __init__(self, columns: int) -> None:
        self.columns = columns
        self.uniqueid = BASE_COLUMNS if columns in (17, 18, 20, 21) else None
        #: the one optional column before the new ones may be the userfield instead
        self.maybe_userfield = columns in (17, 20)
        self.linkedid = columns - 2 if columns >= 19 else None
        self.sequence = columns - 1 if columns >= 19 else None
        read = CALL_COLUMNS + tuple(c for c in (self.uniqueid, self.linkedid, self.sequence)
                                    if c is not None)
        #: the fields read (a tuple) out of a whole row
        self.pick = itemgetter(*read)
        #: where uniqueid, linkedid and sequence are among the fields read (None: absent)
        self.field_uniqueid, self.field_linkedid, self.field_sequence = (
            None if c is None else read.index(c)
            for c in (self.uniqueid, self.linkedid, self.sequence))
        self.row_pattern = row_pattern(columns, read, (DURATION, BILLSEC, self.sequence))
        #: the same with the integers quoted too (older writers quote every field)
        self.quoted_pattern = row_pattern(columns, read)
        #: the id of a row, from its fields read and its text (see :func:`record_ids`)
        self.record_id = record_ids(self)

    def fields(self, text: str, split: RowSplitter, expression: bool = True
               ) -> tuple[str, ...] | int:
        """The fields read of one record (see ``pick``), or its column count when it is wrong.

        The cheapest way that reads the row right comes first; :mod:`csv` last.
        ``expression=False``: the row expression is known not to match ``text``.
        """
        separators = self.columns - 1
        if ('""' not in text and text[0] == '"' and text[-1] == '"'
                and text.count('","') == separators):
            # every field quoted (older writers) and no quote inside one: '","' separates
            # them even with commas inside
            return self.pick(text[1:-1].split('","'))
        if len(text) <= CSV_FIELD_LIMIT:  # a longer field is an error to csv
            match = self.row_pattern.fullmatch(text) if expression else None
            if match is None and text[-1] == '"':
                match = self.quoted_pattern.fullmatch(text)
            if match is not None:
                return match.groups()
        if text.count(",") == separators and '""' not in text:
            # no comma, no quote inside a field
            return self.pick(text.replace('"', "").split(","))
        row = split(text)
        if len(row) != self.columns:
            return len(row)
        return self.pick(row)


class _File:
    """What reading one file keeps between records: its layout (from its first record),
    whether its time zone was checked, and the :mod:`csv` splitter."""

    __slots__ = ("layout", "zone_checked", "split")

    def __init__(self) -> None:
        self.layout: Layout | None = None
        self.zone_checked = False
        self.split = RowSplitter()


def asterisk_trunk(channel: str) -> str | None:
    """The peer or endpoint name in an Asterisk channel name, without per-call suffixes.

    A numbered channel (DAHDI span, a TDM card) keeps its technology so that
    ``DAHDI/1`` and ``TELCHAN/1`` stay apart; a Local channel is internal, no trunk.

    >>> [asterisk_trunk(c) for c in ("SIP/gw-cloud-0000001a", "PJSIP/trunk7-00000003",
    ...     "TELCHAN/5/22", "DAHDI/1-1", "IAX2/branch-4711", "Local/100@from-internal;1", "")]
    ['gw-cloud', 'trunk7', 'TELCHAN/5', 'DAHDI/1', 'branch', None, None]
    """
    tech, slash, name = channel.partition("/")
    if not slash or not name:
        return channel.strip() or None
    if tech == "Local":
        return None
    name = name.partition("/")[0].partition(";")[0].partition("@")[0]
    head, dash, tail = name.rpartition("-")
    if dash and head and tail and not tail.strip(_HEX):
        name = head
    if not name:
        return None
    return f"{tech}/{name}" if name.isdigit() else name


_HEX = "0123456789abcdefABCDEF"
#: not in a cache (None is a trunk there: a Local channel has none)
_UNKNOWN: Any = object()


class TrunkCache:
    """:func:`asterisk_trunk` remembered per channel prefix (the channel without its call suffix).

    Every call has its own channel name (``SIP/gw-cloud-0000001a``), but the
    prefix before the hexadecimal suffix repeats, and the trunk depends only on it.

    >>> trunks = TrunkCache()
    >>> trunks("SIP/gw-cloud-0000001a"), trunks("SIP/gw-cloud-0000001b"), trunks("SIP/-1a")
    ('gw-cloud', 'gw-cloud', '-1a')
    """

    __slots__ = ("by_prefix", "size")

    def __init__(self, size: int = 10_000) -> None:
        #: the trunk of every channel ``prefix-<hex digits>``, per prefix (the same dict
        #: throughout: a reader may look in it first, and call this cache on a miss)
        self.by_prefix: dict[str, str | None] = {}
        self.size = size

    def __call__(self, channel: str) -> str | None:
        prefix, dash, suffix = channel.rpartition("-")
        if not (dash and suffix and not suffix.strip(_HEX)):
            return asterisk_trunk(channel)
        by_prefix = self.by_prefix
        if prefix in by_prefix:
            return by_prefix[prefix]
        trunk = asterisk_trunk(channel)
        # cache only what holds for any suffix (``SIP/-1a`` keeps its suffix as the name)
        if trunk == asterisk_trunk(prefix + "-0") == asterisk_trunk(prefix + "-f"):
            if len(by_prefix) >= self.size:
                by_prefix.clear()
            by_prefix[prefix] = trunk
        return trunk


class Asterisk:
    """Reader of Asterisk ``Master.csv``: files (the layout found per file) and CSV messages.

    ``timezone`` is the zone the switch writes its times in (``input.timezone``).
    """

    name = "asterisk"

    def __init__(self, normaliser: Callable[[str], str], timezone: str = "UTC",
                 limits: Limits = DEFAULT_LIMITS) -> None:
        self.normaliser = normaliser
        self.timezone = timezone
        self.limits = limits
        self.times = LocalTimes(timezone)
        self._trunks = TrunkCache()
        #: start time stamps and whole seconds already read, valid (bounded: cleared when full)
        self._starts: dict[str, float] = {}
        self._seconds: dict[str, int] = {}

    def read(self, lines: Iterable[bytes | str], source: str = "") -> Iterator[Decoded]:
        """Every record of one file, in file order.

        The usual line goes one short way: once the layout is known, a line with a
        doubled quote in it (as good as every row ``cdr_csv`` writes: an empty quoted
        field, a quoted caller name) is matched whole against the layout's row
        expression first.  A line it matches is a record by itself (its quotes pair
        up, so no quoted field goes on to the next line) and is read straight from the
        match; a call with a start and durations seen before and numbers the normaliser
        takes is made right here (its start converted, its trunk looked up and its id
        made inline), anything else goes through :meth:`_decode_row`, which also says
        why a row is rejected.  Every other line goes the careful way,
        :func:`csv_records`' rules and :meth:`Layout.fields`, which give the same
        record for a line both can read.  All this is for speed (issue 10: no format
        slower than 0.9x the reader before the formats package); the fast-path tests
        check that the careful way alone reads every row to the same record.
        """
        file = _File()
        careful = self._careful
        decode_row = self._decode_row
        check_zone = self._check_zone
        known_starts = self._starts
        starts, seconds = known_starts.get, self._seconds.get
        convert = self.times.convert
        normaliser, trunk = self.normaliser, self._trunks
        earliest, latest = self.limits.earliest, self.limits.latest
        trunk_of_prefix = self._trunks.by_prefix.get
        max_call_s = self.limits.max_call_s
        #: once the layout is known: it, its row expression and its ids
        layout = _NO_LAYOUT
        fullmatch: Callable[[str], re.Match[str] | None] | None = None
        record_id = layout.record_id
        #: the id is a digest of the row (16 and 18 columns: see record_ids), made here
        by_digest, uniqueid_at = False, 0
        crc32, blake2b = zlib.crc32, hashlib.blake2b
        zone_checked = False
        numbered = iter(lines)
        lineno = 0
        for line in numbered:
            lineno += 1
            if isinstance(line, bytes):  # the text csv_records makes, and its bytes
                read = line.rstrip(b"\r\n")
                raw: bytes | None = read
                text = read.decode("utf-8", "replace")
            else:
                raw, text = None, line.rstrip("\r\n")
            tried = fullmatch is not None and '""' in text and len(text) <= CSV_FIELD_LIMIT
            if tried:
                match = fullmatch(text)  # type: ignore[misc]  # (not None when tried)
                if match is not None:
                    fields = match.groups()
                    # the usual call: start and durations seen before, numbers as they are.
                    # Anything else (and the first call of a file) _decode_row reads in full
                    started = starts(fields[F_START])
                    if started is None:  # a new second (~1 row in 4): _start, inline
                        stamp = fields[F_START]
                        started = convert(stamp)
                        if started is not None:
                            if earliest <= started < latest:
                                if len(known_starts) >= REMEMBERED:
                                    known_starts.clear()
                                known_starts[stamp] = started
                            else:
                                started = None
                    total, talk = seconds(fields[F_DURATION]), seconds(fields[F_BILLSEC])
                    if (zone_checked and started is not None and total is not None
                            and talk is not None and talk <= total <= max_call_s):
                        try:
                            callee = normaliser(fields[F_DST])
                            caller = normaliser(fields[F_SRC])
                        except BadNumber:
                            pass
                        else:
                            disposition = fields[F_DISPOSITION]
                            if disposition != "ANSWERED":
                                disposition = disposition.strip().upper()
                            answered = disposition == "ANSWERED"
                            if not answered:
                                talk = 0
                            channel = fields[F_CHANNEL]  # TrunkCache's look-up, inline
                            prefix, dash, suffix = channel.rpartition("-")
                            name = (trunk_of_prefix(prefix, _UNKNOWN)
                                    if dash and suffix and not suffix.strip(_HEX) else _UNKNOWN)
                            if by_digest:  # record_ids' digest of the row, made here
                                # the text's UTF-8 is the bytes read, unless reading replaced
                                # some (then U+FFFD is in the text): no second copy to encode
                                data = (raw if raw is not None and "\ufffd" not in text
                                        else text.encode("utf-8", "surrogatepass"))
                                uniqueid = fields[uniqueid_at] if uniqueid_at else ""
                                # hex(crc | 2**32)[3:] is "%08x" % crc, 35 ns sooner
                                call_id = (f"{uniqueid}#{hex(crc32(data) | 0x100000000)[3:]}"
                                           if uniqueid else
                                           "#" + blake2b(data, digest_size=8).hexdigest())
                            else:
                                call_id = record_id(fields, text)
                            yield Call(caller, callee, started, talk, answered,
                                       float(total - talk), call_id,
                                       trunk(channel) if name is _UNKNOWN else name, None,
                                       disposition or None)
                            continue
                    decoded = decode_row(fields, text, record_id)
                    if isinstance(decoded, tuple):
                        yield reject(decoded[0], decoded[1], text, f"{source}:{lineno}")
                        continue
                    if not zone_checked:
                        zone_checked = file.zone_checked = check_zone(decoded, fields, layout,
                                                                      source)
                    yield decoded
                    continue
            if text.count('"') % 2:  # a quoted field goes on: the rest of the file carefully
                for n, record in joined_records(lineno, text, numbered):
                    yield careful(n, record, source, file)
                return
            if text and not text.isspace():
                yield careful(lineno, text, source, file, not tried)  # (tried: no match)
                if fullmatch is None and file.layout is not None:
                    layout = file.layout
                    fullmatch, record_id = layout.row_pattern.fullmatch, layout.record_id
                    by_digest = layout.field_sequence is None and not layout.maybe_userfield
                    uniqueid_at = layout.field_uniqueid or 0
                zone_checked = file.zone_checked

    def _careful(self, lineno: int, text: str | None, source: str, file: _File,
                 expression: bool = True) -> Decoded:
        """The record of one record text (None: a quote never closed), read the careful way
        (``expression=False``: the layout's row expression is known not to match it)."""
        if text is None:
            return reject("malformed", "a quoted field is never closed", "", f"{source}:{lineno}")
        layout = file.layout
        if layout is not None:
            fields = layout.fields(text, file.split, expression)
            if isinstance(fields, int):
                return reject("malformed", f"expected {layout.columns} columns like the "
                              f"first record, got {fields}", text, f"{source}:{lineno}")
        else:
            row = file.split(text)
            if len(row) not in COLUMN_COUNTS:
                return reject("malformed", f"expected 16 to 21 columns (Asterisk cdr_csv), "
                              f"got {len(row)}", text, f"{source}:{lineno}")
            layout = file.layout = Layout(len(row))
            fields = layout.pick(row)
        decoded = self._decode_row(fields, text, layout.record_id)
        if isinstance(decoded, tuple):
            return reject(decoded[0], decoded[1], text, f"{source}:{lineno}")
        if not file.zone_checked:
            file.zone_checked = self._check_zone(decoded, fields, layout, source)
        return decoded

    def decode(self, data: bytes | str, source: str = "") -> list[Decoded]:
        """A Kafka message holding one Master.csv line or a block of them."""
        if isinstance(data, bytes):
            return list(self.read(data.removeprefix(b"\xef\xbb\xbf").split(b"\n"), source))
        return list(self.read(data.removeprefix("\ufeff").split("\n"), source))

    def _decode_row(self, fields: tuple[str, ...], text: str,
                    record_id: Callable[[tuple[str, ...], str], str]) -> Call | tuple[str, str]:
        """The call of one row (its ``fields`` read, its id made by its layout's ``record_id``),
        or the reason and detail of its rejection."""
        started = self._starts.get(fields[F_START])
        if started is None:
            checked = self._start(fields[F_START])
            if isinstance(checked, tuple):
                return checked
            started = checked
        duration, billsec = fields[F_DURATION], fields[F_BILLSEC]
        seconds = self._seconds
        total, talk = seconds.get(duration), seconds.get(billsec)
        if total is None or talk is None:
            if not (duration.isdigit() and billsec.isdigit()
                    and len(duration) <= 9 >= len(billsec) and (duration + billsec).isascii()):
                return "bad_duration", (f"duration/billsec not whole seconds: "
                                        f"{duration!r}/{billsec!r}")
            total, talk = self._remember_seconds(duration), self._remember_seconds(billsec)
        limits = self.limits
        if total > limits.max_call_s or talk > total:
            return "bad_duration", (limits.check_seconds(total, "duration")
                                    or f"billsec {talk} must be within 0..duration {total}")
        normaliser = self.normaliser
        try:
            callee = normaliser(fields[F_DST])
        except BadNumber as exc:
            return number_reason(exc), str(exc)
        src = fields[F_SRC]
        try:
            caller = normaliser(src)
        except BadNumber as exc:
            if src.strip().lower() not in WITHHELD_NAMES:
                return number_reason(exc), str(exc)
            caller = WITHHELD
        disposition = fields[F_DISPOSITION]
        if disposition != "ANSWERED":
            disposition = disposition.strip().upper()
        answered = disposition == "ANSWERED"
        if not answered:  # voicemail or a queue may count billsec, but nobody answered
            talk = 0
        return Call(caller, callee, started, talk, answered, float(total - talk),
                    record_id(fields, text), self._trunks(fields[F_CHANNEL]), None,
                    disposition or None)

    def _start(self, stamp: str) -> float | tuple[str, str]:
        """Epoch seconds of a start time stamp (remembered when possible), or why it is not one.

        A busy switch starts several calls a second: most rows find their start
        in ``_starts`` and skip the parse and the range check.
        """
        started = self.times.convert(stamp)  # the valid ones are remembered here, below
        if started is None:
            return "bad_time", f"start: not 'YYYY-MM-DD HH:MM:SS': {stamp!r}"
        limits = self.limits
        if not limits.earliest <= started < limits.latest:
            return "bad_time", f"start: {limits.check_start(started)}"
        return remember(self._starts, stamp, started)

    def _remember_seconds(self, digits: str) -> int:
        """``int(digits)`` (ASCII digits, at most 9), remembered: durations repeat."""
        return remember(self._seconds, digits, int(digits))

    def _check_zone(self, call: Call, fields: tuple[str, ...], layout: Layout, source: str
                    ) -> bool:
        """Warn once when the start is hours away from the clock in the uniqueid."""
        where = layout.field_uniqueid if layout.uniqueid is not None else layout.field_linkedid
        match = _UNIQUEID.fullmatch(fields[where]) if where is not None else None
        if match is None:
            return where is None
        offset = call.start - int(match.group(1))
        if abs(offset) >= _ZONE_SUSPECT_S:
            hours = round(offset / 900) / 4
            log.warning("%s: start times are %+.2f h from the uniqueid clock; input.timezone "
                        "is %r, so the switch probably writes local time at UTC%+.2f h",
                        source or "Master.csv", hours, self.timezone,
                        hours + _utc_offset_h(self.timezone, call.start))
        return True


def _utc_offset_h(timezone: str, t: float) -> float:
    from zoneinfo import ZoneInfo

    offset = datetime.fromtimestamp(t, ZoneInfo(timezone)).utcoffset()
    return offset.total_seconds() / 3600 if offset is not None else 0.0


def record_ids(layout: Layout) -> Callable[[tuple[str, ...], str], str]:
    """What tells a row of ``layout`` apart (from its fields read and its text): its id.

    ``uniqueid#sequence`` (else ``linkedid#sequence``) where the layout has a
    sequence; without one, ``uniqueid#`` and the CRC-32 of the row (the legs of
    one call share a uniqueid, and few rows do: 32 bits tell them apart); without
    a uniqueid, ``#`` and a 64-bit digest of the row.  In a 17 or 20 column file
    a value not shaped like a uniqueid is the userfield: no uniqueid.  The
    layout's questions are answered once, here, not once per row.
    :meth:`Asterisk.read` makes the ids of 16 and 18 columns itself for the rows it
    reads the short way, as here (``tests/formats/test_asterisk_fast_path.py``
    compares the two ways): change them together.

    >>> row = '"","1","2","","","SIP/a-1","","","","2024-05-01 00:00:00",,"",9,4,"",""'
    >>> record_ids(Layout(16))((), row)
    '#c06508bbe7773877'
    >>> fields = ("1", "2", "SIP/a-1", "2024-05-01 00:00:00", "9", "4", "", "1714521600.1")
    >>> record_ids(Layout(18))(fields, row + ',"1714521600.1",""')
    '1714521600.1#7e246ce1'
    >>> record_ids(Layout(17))(fields[:-1] + ("note",), row + ',"note"')
    '#73069856753c4d31'
    >>> record_ids(Layout(21))(fields + ("1714521600.0", "3"), "")
    '1714521600.1#3'
    >>> record_ids(Layout(19))(fields[:-1] + ("1714521600.0", "3"), "")
    '1714521600.0#3'
    """
    uniqueid_at, linkedid_at, sequence_at = (layout.field_uniqueid, layout.field_linkedid,
                                             layout.field_sequence)
    maybe_userfield = layout.maybe_userfield
    uniqueid_shaped = _UNIQUEID.fullmatch
    crc32 = zlib.crc32

    if sequence_at is None and uniqueid_at is None:  # 16 columns
        return _by_digest
    if sequence_at is None:  # 17, 18 columns
        at = uniqueid_at

        def by_row(fields: tuple[str, ...], text: str) -> str:
            uniqueid = fields[at]  # type: ignore[index]
            if uniqueid and (not maybe_userfield or uniqueid_shaped(uniqueid)):
                crc = crc32(text.encode("utf-8", "surrogatepass"))
                return "%s#%08x" % (uniqueid, crc)  # noqa: UP031 - 60 ns less than an f-string
            return _digest_id(text)
        return by_row
    linked = linkedid_at if linkedid_at is not None else 0

    def by_sequence(fields: tuple[str, ...], text: str) -> str:  # 19 to 21 columns
        uniqueid = fields[uniqueid_at] if uniqueid_at is not None else ""
        if maybe_userfield and uniqueid and not uniqueid_shaped(uniqueid):
            uniqueid = ""
        call_id = uniqueid or fields[linked]
        if call_id:
            return f"{call_id}#{fields[sequence_at]}"
        return _digest_id(text)
    return by_sequence


def _by_digest(fields: tuple[str, ...], text: str) -> str:
    return _digest_id(text)


def _digest_id(text: str) -> str:
    """``#`` and a 64-bit digest of the row: the id of a row without uniqueid or sequence."""
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
    return f"#{digest}"


#: stands in for the layout of a file until its first record is read
_NO_LAYOUT = Layout(BASE_COLUMNS)


# ---------------------------------------------------------------------------- writer


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


class AsteriskWriter:
    """Writes canonical record dicts as Asterisk's cdr_csv does, in a layout of ``columns``.

    Records without an ``id`` from the same caller within ``leg_window_s`` become
    legs of one call: one uniqueid, sequence numbers 0, 1, ... (19 columns and
    more), as Asterisk 12 writes forked dials.  A record that is not a valid CDR
    is written as it is, so it stays invalid.

    >>> import io
    >>> buf = io.StringIO()
    >>> AsteriskWriter(21).write([{"caller": "13800000001", "callee": "13900000002",
    ...     "start": 1714521600.0, "duration": 12, "ring": 3.2, "answered": True,
    ...     "trunk": "gw-cloud", "disposition": "ANSWERED"}], buf)
    1
    >>> line = buf.getvalue()
    >>> row = RowSplitter()(line.rstrip())
    >>> row[5], row[12:15], line.split('00:00:15",')[1][:6]
    ('PJSIP/gw-cloud-00000001', ['15', '12', 'ANSWERED'], '15,12,')
    """

    def __init__(self, columns: int = 18, timezone: str = "UTC", leg_window_s: float = 5.0,
                 system_name: str = "") -> None:
        if columns not in COLUMN_COUNTS:
            raise ValueError(f"Asterisk writes 16 to 21 columns, not {columns}")
        self.layout = Layout(columns)
        self.timezone = timezone
        self.leg_window_s = leg_window_s
        self.system_name = system_name

    def write(self, records: Iterable[dict[str, Any]], out: IO[str]) -> int:
        """Write ``records``; returns the number of rows written."""
        legs: dict[tuple[str, int], list[Any]] = {}  # (caller, window) -> [uniqueid, next seq]
        n = 0
        for n, rec in enumerate(records, 1):
            out.write(self.row(rec, n, legs))
            out.write("\n")
            if len(legs) > 100_000:
                legs.clear()
        return n

    def row(self, rec: dict[str, Any], n: int, legs: dict[tuple[str, int], list[Any]]) -> str:
        """One record as a Master.csv line (without the line end)."""
        src = str(rec.get("caller", "") or "")
        dst = str(rec.get("callee", "") or "")
        t = record_start(rec.get("start"))
        start = rec.get("start")
        start_text = format_local(t, self.timezone) if t is not None else (
            start if isinstance(start, str) else "")
        duration = rec.get("duration", "")
        ring = rec.get("ring") or 0.0
        trunk = rec.get("trunk") or "unknown"
        disposition = rec.get("disposition") or ("ANSWERED" if rec.get("answered")
                                                 else "NO ANSWER")
        answered = disposition == "ANSWERED"
        record_id = rec.get("id")
        channel_no = zlib.crc32(str(record_id).encode()) & 0xFFFFFF if record_id else n
        if isinstance(duration, int) and not isinstance(duration, bool) and t is not None:
            total = int(round(ring)) + duration
            answer = format_local(t + round(ring), self.timezone) if answered else None
            end: str | None = format_local(t + total, self.timezone)
            total_text, bill_text = str(total), str(duration)
        else:  # a malformed record stays malformed
            answer = end = None
            total_text = bill_text = _quote(str(duration))
        if record_id:
            uniqueid, sequence = str(record_id), 0
        else:
            key = (src, int((t or 0.0) // self.leg_window_s))
            leg = legs.get(key)
            if leg is None:
                prefix = f"{self.system_name}-" if self.system_name else ""
                leg = legs[key] = [f"{prefix}{int(t or 0)}.{n}", 0]
            uniqueid, sequence = leg[0], leg[1]
            leg[1] += 1
        tech = "PJSIP" if self.layout.columns >= 19 else "SIP"
        fields = [
            _quote(""), _quote(src), _quote(dst), _quote("from-trunk"),
            _quote(f'"{src}" <{src}>'), _quote(f"{tech}/{trunk}-{channel_no:08x}"),
            _quote(f"{tech}/core-out-{channel_no + 1:08x}" if disposition != "FAILED" else ""),
            _quote("Dial"), _quote(f"{tech}/core-out/{dst},60"), _quote(start_text),
            _quote(answer) if answer is not None else "",
            _quote(end) if end is not None else "",
            total_text, bill_text, _quote(disposition), _quote("DOCUMENTATION"),
        ]
        layout = self.layout
        if layout.uniqueid is not None:
            fields.append(_quote(uniqueid))
        if layout.columns in (18, 21):
            fields.append(_quote(""))  # userfield
        if layout.sequence is not None:
            fields += [_quote(""), _quote(uniqueid), str(sequence)]
        return ",".join(fields)
