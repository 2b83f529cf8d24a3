"""``--format auto``: which CDR format a file is, from its first record, or a refusal to guess.

JSON starts with ``{`` or ``[``.  Asterisk ``Master.csv`` has 16 to 21 columns
with the start time in column 10 and whole seconds in columns 13 and 14;
FreeSWITCH ``Master.csv`` has 13 or 15 quoted columns with the start time in
column 5 and whole seconds in columns 8 and 9.  Anything else (a header row, a
layout of another switch) stops with :class:`UnknownFormat`, asking for
``--format``.

>>> sniff(b'{"caller": "1"}'), sniff(b'"","1","2","c","","SIP/a-1","","Dial","",'
...     b'"2024-05-01 00:00:00",,"2024-05-01 00:00:03",3,0,"NO ANSWER","DOCUMENTATION"\\n')
('json', 'asterisk')
>>> sniff(b"caller,callee,start\\n1,2,3\\n")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
formats.sniff.UnknownFormat: cannot tell the CDR format ... give --format (json, ...)
"""

from __future__ import annotations

import re
from typing import IO

from formats.csv_rows import csv_records, split_row
from formats.files import InputError

_STAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}")
_SECONDS = re.compile(r"[0-9]+")


class UnknownFormat(InputError):
    """``auto`` cannot be sure which format a file is in."""


def _looks(row: list[str], start: int, seconds: tuple[int, int]) -> bool:
    return bool(_STAMP.fullmatch(row[start]) and all(_SECONDS.fullmatch(row[i])
                                                     for i in seconds))


def sniff(head: bytes, name: str = "") -> str:
    """The format name of a file whose first bytes are ``head``."""
    text = head.lstrip()
    if text[:1] in (b"{", b"["):
        return "json"
    first = next(iter(csv_records(text.split(b"\n")[:9])), None)
    record = first[1] if first is not None else None
    if record is not None:
        row = split_row(record, record.count(",") + 1)
        if 16 <= len(row) <= 21 and _looks(row, 9, (12, 13)):
            return "asterisk"
        if len(row) in (13, 15) and _looks(row, 4, (7, 8)):
            return "freeswitch"
    shown = (record or text[:80].decode("utf-8", "replace"))[:80]
    where = f"{name}: " if name else ""
    raise UnknownFormat(f"{where}cannot tell the CDR format from the first record ({shown!r}): "
                        f"give --format (json, asterisk, freeswitch or csv)")


def sniff_stream(stream: IO[bytes], name: str = "") -> str:
    """:func:`sniff` on the first bytes of a peekable stream, without consuming them."""
    head = stream.peek(8192) if hasattr(stream, "peek") else b""
    return sniff(head, name)
