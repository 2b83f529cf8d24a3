"""FreeSWITCH ``Master.csv`` (mod_cdr_csv, CONTRACT 1c): reader and writer.

No header, every field quoted, the columns those of a template: the
``example`` template FreeSWITCH ships in ``cdr_csv.conf.xml`` (15 columns),
the module's built-in default (its first 13), or one given in configuration
(``input.freeswitch_template``, pasted from ``cdr_csv.conf.xml``).  Without a
configured template the column count tells default from example.

>>> from detectors.numbers import NumberNormaliser
>>> reader = FreeSwitch(NumberNormaliser("CN"))
>>> line = ('"Alice","13800000001","13900000002","default","2024-05-01 00:00:00",'
...         '"2024-05-01 00:00:04","2024-05-01 00:00:34","34","30","NORMAL_CLEARING",'
...         '"a1b2c3d4-0000-4000-8000-000000000001","","","PCMA","PCMA"')
>>> [c] = reader.read([line])
>>> c.caller, c.duration, c.ring, c.answered, c.disposition
('+8613800000001', 30, 4.0, True, 'ANSWERED')
>>> parse_template('"${caller_id_number}","${destination_number}"')
('caller_id_number', 'destination_number')
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from operator import itemgetter
from typing import IO, Any

from detectors.numbers import BadNumber
from detectors.records import WITHHELD, Call
from formats.csv_rows import CSV_FIELD_LIMIT, csv_records, row_pattern, split_row
from formats.fields import (
    DEFAULT_LIMITS,
    WITHHELD_NAMES,
    Decoded,
    Limits,
    ascii_int,
    number_reason,
    record_start,
    reject,
    remember,
)
from formats.switch_time import LocalTimes, format_local

#: the ``example`` template of FreeSWITCH's cdr_csv.conf.xml
EXAMPLE: tuple[str, ...] = (
    "caller_id_name", "caller_id_number", "destination_number", "context", "start_stamp",
    "answer_stamp", "end_stamp", "duration", "billsec", "hangup_cause", "uuid", "bleg_uuid",
    "accountcode", "read_codec", "write_codec",
)
#: mod_cdr_csv's built-in default template: the first 13 columns of ``example``
DEFAULT: tuple[str, ...] = EXAMPLE[:13]
TEMPLATES = {"example": EXAMPLE, "default": DEFAULT}
REQUIRED = ("caller_id_number", "destination_number", "start_stamp", "billsec")

_VARIABLE = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
#: hangup causes (Q.850 names) of calls that were not answered, by the disposition they mean
_BUSY = frozenset({"USER_BUSY", "CALL_REJECTED"})
_CONGESTION = frozenset({"NORMAL_CIRCUIT_CONGESTION", "SWITCH_CONGESTION"})
_FAILED = frozenset({
    "UNALLOCATED_NUMBER", "NO_ROUTE_TRANSIT_NET", "NO_ROUTE_DESTINATION",
    "INVALID_NUMBER_FORMAT", "NETWORK_OUT_OF_ORDER", "DESTINATION_OUT_OF_ORDER",
    "RECOVERY_ON_TIMER_EXPIRE", "INCOMPATIBLE_DESTINATION", "SERVICE_UNAVAILABLE",
    "NUMBER_CHANGED", "EXCHANGE_ROUTING_ERROR",
})
#: what the writer puts for each disposition (the reader maps it back)
_CAUSE = {"ANSWERED": "NORMAL_CLEARING", "NO ANSWER": "NO_ANSWER", "BUSY": "USER_BUSY",
          "FAILED": "UNALLOCATED_NUMBER", "CONGESTION": "NORMAL_CIRCUIT_CONGESTION"}


def parse_template(template: str) -> tuple[str, ...]:
    """The channel variables of a cdr_csv template, in column order."""
    return tuple(_VARIABLE.findall(template))


def disposition_of(cause: str, answered: bool) -> str:
    """The Asterisk-style disposition of a FreeSWITCH hangup cause."""
    if answered:
        return "ANSWERED"
    cause = cause.strip().upper()
    if cause in _BUSY:
        return "BUSY"
    if cause in _CONGESTION:
        return "CONGESTION"
    if cause in _FAILED:
        return "FAILED"
    return "NO ANSWER"


#: the channel variables a call is read from, in the order :meth:`FreeSwitch._decode_row` takes them
READ = ("caller_id_number", "destination_number", "start_stamp", "answer_stamp", "end_stamp",
        "billsec", "hangup_cause", "uuid", "sip_gateway_name", "sip_received_ip", "network_addr")


class Layout:
    """How the fields of :data:`READ` are found in a row of ``template``.

    A variable the template lacks reads as ``""``; a variable written twice is
    read from its last column.

    >>> layout = Layout(DEFAULT)
    >>> layout.width, layout.fields('"a","1","2","c","s","","e","9","0","NO_ANSWER","u","",""')
    (13, ('1', '2', 's', '', 'e', '0', 'NO_ANSWER', 'u', '', '', ''))
    """

    __slots__ = ("width", "columns", "pick", "row_pattern", "order")

    def __init__(self, template: Sequence[str]) -> None:
        self.width = len(template)
        #: variable -> its (last) column
        self.columns = {name: i for i, name in enumerate(template)}
        read = sorted(self.columns[name] for name in set(READ) & set(self.columns))
        #: the READ fields out of a whole row with ``""`` appended (column ``width``)
        self.pick = itemgetter(*(self.columns.get(name, self.width) for name in READ))
        #: matches a whole row as mod_cdr_csv writes it; groups: the ``read`` columns, then ""
        self.row_pattern = row_pattern(self.width, tuple(read), empty_group=True)
        #: the groups of ``row_pattern`` in READ order (the empty last group for one lacking)
        self.order = tuple(read.index(self.columns[name]) + 1 if name in self.columns
                           else len(read) + 1 for name in READ)

    def fields(self, text: str) -> tuple[str, ...] | int:
        """The READ fields of one record, or its column count when it is not ``width``.

        The row expression reads the usual row in C; any other goes through
        :func:`~formats.csv_rows.split_row` (a read field with a quote inside,
        a comma in a field read, a row longer than :mod:`csv` reads).
        """
        if len(text) <= CSV_FIELD_LIMIT:
            match = self.row_pattern.fullmatch(text)
            if match is not None:
                return match.group(*self.order)
        row = split_row(text, self.width)
        if len(row) != self.width:
            return len(row)
        row.append("")
        return self.pick(row)


class FreeSwitch:
    """Reader of FreeSWITCH mod_cdr_csv files and CSV messages.

    ``template``: the column variables (:func:`parse_template`), or None to tell
    ``default`` (13 columns) from ``example`` (15) by the column count.
    """

    name = "freeswitch"

    def __init__(self, normaliser: Callable[[str], str], timezone: str = "UTC",
                 limits: Limits = DEFAULT_LIMITS, template: Sequence[str] | None = None
                 ) -> None:
        self.normaliser = normaliser
        self.limits = limits
        self.times = LocalTimes(timezone)
        self.template = tuple(template) if template else None
        if self.template is not None:
            missing = [v for v in REQUIRED if v not in self.template]
            if missing:
                raise ValueError(f"FreeSWITCH template lacks {', '.join(missing)}")
        #: billsec values already read, valid (bounded: cleared when full)
        self._seconds: dict[str, int] = {}

    def read(self, lines: Iterable[bytes | str], source: str = "") -> Iterator[Decoded]:
        """Every record of one file, in file order."""
        layout: Layout | None = None
        decode_row = self._decode_row
        for lineno, text in csv_records(lines):
            if text is None:
                yield reject("malformed", "a quoted field is never closed", "",
                             f"{source}:{lineno}")
                continue
            if layout is not None:
                fields = layout.fields(text)
                if isinstance(fields, int):
                    yield reject("malformed", f"expected {layout.width} columns, got {fields}",
                                 text, f"{source}:{lineno}")
                    continue
            else:
                row = split_row(text, text.count(",") + 1)
                template = self.template or {13: DEFAULT, 15: EXAMPLE}.get(len(row))
                if template is None or len(row) != len(template):
                    expected = len(template) if template else "13 (default) or 15 (example)"
                    yield reject("malformed", f"expected {expected} columns, got {len(row)}",
                                 text, f"{source}:{lineno}")
                    continue
                layout = Layout(template)
                row.append("")
                fields = layout.pick(row)
            decoded = decode_row(fields)
            if isinstance(decoded, tuple):
                yield reject(*decoded, text, f"{source}:{lineno}")
                continue
            yield decoded

    def decode(self, data: bytes | str, source: str = "") -> list[Decoded]:
        """A Kafka message holding one line of the file or a block of them."""
        if isinstance(data, bytes):
            return list(self.read(data.removeprefix(b"\xef\xbb\xbf").split(b"\n"), source))
        return list(self.read(data.removeprefix("\ufeff").split("\n"), source))

    def _decode_row(self, fields: tuple[str, ...]) -> Call | tuple[str, str]:
        """The call of one row (its :data:`READ` fields), or the reason and detail of refusal."""
        (src, dst, start_stamp, answer_text, end_text, billsec, cause, uuid, gateway,
         received_ip, network_addr) = fields
        limits = self.limits
        epoch = self.times.epoch
        started = epoch(start_stamp)
        if started is None:
            return "bad_time", f"start_stamp: not 'YYYY-MM-DD HH:MM:SS': {start_stamp!r}"
        problem = limits.check_start(started)
        if problem is not None:
            return "bad_time", f"start_stamp: {problem}"
        talk = self._seconds.get(billsec)
        if talk is None:
            checked = self._billsec(billsec)
            if isinstance(checked, tuple):
                return checked
            talk = checked
        answered = bool(answer_text.strip())
        until = epoch(answer_text if answered else end_text)
        ring = until - started if until is not None and until >= started else None
        if ring is not None and limits.check_seconds(ring, "ring") is not None:
            return "bad_duration", f"ring of {ring:g} s is longer than a call can be"
        normaliser = self.normaliser
        try:
            caller = WITHHELD if src.strip().lower() in WITHHELD_NAMES else normaliser(src)
            callee = normaliser(dst)
        except BadNumber as exc:
            return number_reason(exc), str(exc)
        return Call(caller, callee, started, talk if answered else 0, answered, ring,
                    uuid or None, gateway or None, received_ip or network_addr or None,
                    "ANSWERED" if answered else disposition_of(cause, False))

    def _billsec(self, text: str) -> int | tuple[str, str]:
        """Whole seconds of a billsec (remembered when valid), or why it is not one."""
        talk = ascii_int(text)
        if talk is None or self.limits.check_seconds(talk, "billsec") is not None:
            return "bad_duration", f"billsec not whole seconds within a call: {text!r}"
        return remember(self._seconds, text, talk)


class FreeSwitchWriter:
    """Writes canonical record dicts as mod_cdr_csv does with ``template`` (all quoted).

    >>> import io
    >>> buf = io.StringIO()
    >>> FreeSwitchWriter(DEFAULT).write([{"caller": "13800000001", "callee": "13900000002",
    ...     "start": 1714521600.0, "duration": 0, "ring": 3.0, "disposition": "BUSY"}], buf)
    1
    >>> buf.getvalue().count('","') + 1, buf.getvalue().split(",")[9]
    (13, '"USER_BUSY"')
    """

    def __init__(self, template: Sequence[str] = EXAMPLE, timezone: str = "UTC") -> None:
        self.template = tuple(template)
        self.timezone = timezone

    def write(self, records: Iterable[dict[str, Any]], out: IO[str]) -> int:
        n = 0
        for n, rec in enumerate(records, 1):
            values = self.values(rec, n)
            out.write(",".join('"' + str(values.get(v, "")).replace('"', '""') + '"'
                               for v in self.template))
            out.write("\n")
        return n

    def values(self, rec: dict[str, Any], n: int) -> dict[str, Any]:
        """The channel variables of one record."""
        src = str(rec.get("caller", "") or "")
        t = record_start(rec.get("start"))
        start = rec.get("start")
        duration = rec.get("duration", "")
        ring = round(rec.get("ring") or 0.0)
        disposition = rec.get("disposition") or ("ANSWERED" if rec.get("answered")
                                                 else "NO ANSWER")
        answered = disposition == "ANSWERED"
        record_id = rec.get("id")
        uuid = record_id or f"{n:08x}-0000-4000-8000-{zlib.crc32(src.encode()):012x}"
        out: dict[str, Any] = {
            "caller_id_name": src, "caller_id_number": src,
            "destination_number": str(rec.get("callee", "") or ""), "context": "default",
            "hangup_cause": _CAUSE.get(disposition, "NORMAL_CLEARING"), "uuid": uuid,
            "read_codec": "PCMA", "write_codec": "PCMA",
            "sip_gateway_name": rec.get("trunk") or "", "sip_received_ip": rec.get("src_ip") or "",
        }
        if isinstance(duration, int) and not isinstance(duration, bool) and t is not None:
            out["start_stamp"] = format_local(t, self.timezone)
            out["answer_stamp"] = format_local(t + ring, self.timezone) if answered else ""
            out["end_stamp"] = format_local(t + ring + duration, self.timezone)
            out["duration"], out["billsec"] = ring + duration, duration
        else:  # a malformed record stays malformed
            out["start_stamp"] = format_local(t, self.timezone) if t is not None else (
                start if isinstance(start, str) else "")
            out["duration"] = out["billsec"] = duration
        return out
