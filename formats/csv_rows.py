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
import re
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
    source = iter(lines)
    lineno = 0
    for line in source:  # the usual case, one record per line, costs one count per line
        lineno += 1
        text = (line.decode("utf-8", "replace") if isinstance(line, bytes) else line).rstrip("\r\n")
        if text.count('"') % 2 == 0:
            if text and not text.isspace():
                yield lineno, text
            continue
        yield from joined_records(lineno, text, source)  # the rest of the file, carefully
        return


def joined_records(lineno: int, text: str, source: Iterator[bytes | str]
                   ) -> Iterator[tuple[int, str | None]]:
    """Records from a line with an open quote on: joined lines, a stray quote read past.

    ``text`` is line ``lineno`` (line end taken off), ``source`` the lines after it:
    what :func:`csv_records` does with the rest of a file once a line has an odd
    number of quotes (a reader that splits the usual lines itself hands it over so).
    """
    pending: deque[tuple[int, str]] = deque([(lineno, text)])  # lines to read (again)
    numbered = enumerate(source, lineno + 1)

    def next_line() -> tuple[int, str] | None:
        if pending:
            return pending.popleft()
        for n, line in numbered:
            return n, _text(line)
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


class _One:
    """An iterator that hands the csv module one record at a time (see :class:`RowSplitter`)."""

    __slots__ = ("text",)

    def __init__(self) -> None:
        self.text: str | None = None

    def __iter__(self) -> _One:
        return self

    def __next__(self) -> str:
        text = self.text
        if text is None:
            raise StopIteration
        self.text = None
        return text


class RowSplitter:
    """Splits record texts with one long-lived :func:`csv.reader` (C speed, no set-up per row).

    >>> split = RowSplitter()
    >>> split('"a","b,c",3,,"q""uote"'), split('"open'), split("x")
    (['a', 'b,c', '3', '', 'q"uote'], ['open'], ['x'])
    """

    def __init__(self) -> None:
        self._source = _One()
        self._reader = csv.reader(self._source)

    def __call__(self, text: str) -> list[str]:
        self._source.text = text
        try:
            return next(self._reader)
        except (csv.Error, StopIteration):
            return []


def split_row(text: str, columns: int) -> list[str]:
    """The fields of one CSV record (quotes removed), cheaply when there are ``columns``.

    The usual record has no comma inside a field: then it splits on commas, and
    quotes are taken off each field (none to take off in a record without any,
    as header CSV mostly is); anything else goes through :mod:`csv`.
    """
    if text.count(",") == columns - 1:
        if '"' not in text:
            return text.split(",")
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


#: a field skipped: quoted (a quote inside doubled) or bare, as :mod:`csv` reads them.
#: Possessive (``*+``): a field has one reading, so a row that does not match fails fast.
#: A quoted field without a quote inside is matched on its own first (the repeat of the
#: doubled-quote group costs more than the rest of the field); the second alternative
#: takes only fields with a doubled quote (``++``), so no two alternatives read the same
#: text and a row that does not match is not tried again alternative by alternative
_SKIPPED = r'(?:"[^"]*+"|"[^"]*+(?:""[^"]*+)++"|[^,"\r\n]*+)'
#: a text field read: quoted, no quote inside (a rarer field goes the :mod:`csv` way)
_QUOTED = r'"([^"]*+)"'
#: an integer field read: bare, as cdr_csv writes duration, billsec and sequence
_BARE = r'([^,"\r\n]*+)'
#: the longest field :mod:`csv` reads (an error beyond): longer rows skip the expression
CSV_FIELD_LIMIT = csv.field_size_limit()


def row_pattern(columns: int, read: tuple[int, ...], bare: tuple[int | None, ...] = (),
                empty_group: bool = False) -> re.Pattern[str]:
    """One regular expression matching a whole row of ``columns`` as a switch writes it.

    Why: rows as switches write them (a comma in Asterisk's ``lastdata``,
    doubled quotes in a caller name, bare integers) cannot all be split on
    ``","`` or ``,``, and splitting a row field by field in Python (or with
    :mod:`csv`) costs more than the rest of its decoding; one anchored match
    runs in C and hands over the ``read`` columns at once (groups, in column
    order; ``bare`` ones unquoted, the others quoted).  It matches only rows it
    reads exactly as :mod:`csv` and :func:`split_row` do (the readers' other rows
    go their way): a read field with a quote inside, a bare field with a quote
    or line end in it, a quoted integer, all fall back.  ``empty_group`` adds a
    last group that matches nothing: ``""`` for a column a layout lacks.

    >>> row_pattern(3, (0, 2), (2,)).fullmatch('"a","x,""y"" z",42').groups()
    ('a', '42')
    >>> row_pattern(2, (1,), empty_group=True).fullmatch('"a","b"').groups()
    ('b', '')
    """
    fields = ",".join((_BARE if column in bare else _QUOTED) if column in read else _SKIPPED
                      for column in range(columns))
    return re.compile(fields + "()" if empty_group else fields)
