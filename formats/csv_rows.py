"""CSV records out of lines: a quoted field may hold a newline, a stray quote costs one line.

Switch CDR files are CSV without a header (Asterisk, FreeSWITCH).  A record
normally is one line; when a line has an odd number of quotes, a quoted field
goes on to the next line (at most :data:`MAX_CONTINUATION` lines).  A quote
that is never closed rejects only the line it is on: the lines after it are
read again as records of their own, so no other record is lost.

>>> lines = ['"a","b\\n', 'c",1\\r\\n', '"x,"y"\\n', '"d","e",2\\n']
>>> [(n, text) for n, text in csv_records(lines)]
[(1, '"a","b\\nc",1'), (3, None), (4, '"d","e",2')]
>>> split_row('"a","b",3,,"q""uote"', 5)
['a', 'b', '3', '', 'q"uote']
>>> split_row('"a,b",1', 2)
['a,b', '1']
"""

from __future__ import annotations

import csv
from collections import deque
from collections.abc import Iterable, Iterator

#: Most lines one record may span (a quoted field with newlines in it).
MAX_CONTINUATION = 8


def _text(line: bytes | str) -> str:
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    return text.rstrip("\r\n")


def csv_records(lines: Iterable[bytes | str]) -> Iterator[tuple[int, str | None]]:
    """``(line number, record text)`` per record; text None for a line with an unclosed quote.

    Blank lines are skipped.  Line ends (LF or CRLF) are not part of the text.
    """
    pending: deque[tuple[int, str]] = deque()  # lines to read again after a stray quote
    source = enumerate(lines, 1)

    def next_line() -> tuple[int, str] | None:
        if pending:
            return pending.popleft()
        for lineno, line in source:
            return lineno, _text(line)
        return None

    while True:
        item = next_line()
        if item is None:
            return
        lineno, text = item
        if text.count('"') % 2 == 0:
            if text and not text.isspace():
                yield lineno, text
            continue
        parts = [text]
        taken: list[tuple[int, str]] = []
        quotes = text.count('"')
        while quotes % 2 and len(parts) < MAX_CONTINUATION:
            more = next_line()
            if more is None:
                break
            taken.append(more)
            parts.append(more[1])
            quotes += more[1].count('"')
        if quotes % 2 == 0:
            yield lineno, "\n".join(parts)
        else:
            yield lineno, None
            pending.extendleft(reversed(taken))


def split_row(text: str, columns: int) -> list[str]:
    """The fields of one CSV record (quotes removed), cheaply when there are ``columns``.

    The usual record has no comma inside a field: then it splits on commas, and
    quotes are taken off each field; anything else goes through :mod:`csv`.
    """
    if text.count(",") == columns - 1:
        fields = text.split(",")
        for i, f in enumerate(fields):
            if f[:1] == '"':
                if len(f) < 2 or f[-1] != '"':
                    break
                inner = f[1:-1]
                fields[i] = inner.replace('""', '"') if '"' in inner else inner
            elif '"' in f:
                break
        else:
            return fields
    try:
        return next(csv.reader([text], strict=True))
    except (csv.Error, StopIteration):
        return []
