"""The Asterisk reader's row expression reads every row it matches exactly as csv does.

:func:`formats.asterisk.row_pattern` is a speed-up only: the same rows read with
it and forced through the other paths (it never matching) give the same calls
and rejections, hostile rows included.
"""

from __future__ import annotations

import io
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import formats.asterisk
from detectors.numbers import NumberNormaliser
from detectors.records import Call, Rejected
from formats.asterisk import COLUMN_COUNTS, Asterisk, AsteriskWriter, Layout
from formats.csv_rows import RowSplitter

NORM = NumberNormaliser("CN")
SPLIT = RowSplitter()

# What a field may hold: Asterisk's own values and text that trips CSV up.
PIECES = st.sampled_from([
    "", '"', '""', ",", '","', "\n", "\r", "\r\n", "\x00", " ", "²³", "１２", "1" * 12, "0",
    "42", "-1", "0s", "anonymous", "s", "100", "13800000001", "+8613900000002", "ANSWERED",
    "NO ANSWER", "2024-05-01 00:00:00", "2024-05-01 00:00:²³", "SIP/gw-cloud-0000001a",
    "Local/100@from-internal;1", "1714521600.1", "sys-1714521600.2", "SIP/core/1390,60",
    '"A" <13800000001>',
])
TEXT = st.lists(PIECES | st.text(max_size=6), max_size=3).map("".join)


@st.composite
def written_field(draw: st.DrawFn) -> str:
    """One field as some writer might put it: quoted (doubling quotes or not) or bare."""
    value = draw(TEXT)
    style = draw(st.sampled_from(["quoted", "quoted", "bare", "raw-quoted"]))
    if style == "quoted":
        return '"' + value.replace('"', '""') + '"'
    if style == "raw-quoted":  # a careless writer: quotes not doubled
        return '"' + value + '"'
    return value


def asterisk_row(columns: int, start: str, duration: str, billsec: str) -> list[str]:
    """A row as cdr_csv writes it: the base of a valid call to vary field by field."""
    fields = ['""', '"13800000001"', '"13900000002"', '"from-trunk"', '"""A"" <13800000001>"',
              '"SIP/gw-cloud-0000001a"', '"SIP/core-0000001b"', '"Dial"',
              '"SIP/core/13900000002,60"', f'"{start}"', "", '"2024-05-01 00:00:20"',
              duration, billsec, '"ANSWERED"', '"DOCUMENTATION"', '"1714521600.7"', '""',
              '""', '"1714521600.7"', "0"]
    return fields[:columns] if columns <= 18 else fields[:columns - 3] + fields[18:]


@st.composite
def hostile_row(draw: st.DrawFn, columns: int) -> str:
    """An Asterisk row of ``columns``, some fields replaced by hostile ones, maybe one too many."""
    row = asterisk_row(columns, draw(st.sampled_from(["2024-05-01 00:00:00",
                                                     "2024-05-01 00:00:07"])),
                       draw(st.sampled_from(["20", "0", "7"])), "0")
    for _ in range(draw(st.integers(0, 3))):
        row[draw(st.integers(0, columns - 1))] = draw(written_field())
    if draw(st.integers(0, 3)) == 0:  # now and then a column more or less
        row = row[:-1] if draw(st.booleans()) else [*row, draw(written_field())]
    return ",".join(row)


@st.composite
def hostile_lines(draw: st.DrawFn) -> list[str]:
    """A few hostile rows of one column count."""
    columns = draw(st.sampled_from(sorted(COLUMN_COUNTS)))
    return draw(st.lists(hostile_row(columns), min_size=1, max_size=5))


def read_all(lines: list[str]) -> list[Call | Rejected]:
    return list(Asterisk(NORM, "UTC").read(lines, "Master.csv"))


def read_without_expression(lines: list[str], monkeypatch: pytest.MonkeyPatch
                            ) -> list[Call | Rejected]:
    """The records of ``lines`` with the row expression never matching: the other paths."""
    with monkeypatch.context() as patch:
        patch.setattr(formats.asterisk, "row_pattern", lambda *args: re.compile("(?!)"))
        return read_all(lines)


@st.composite
def written_rows(draw: st.DrawFn) -> tuple[int, str]:
    """A column count and a row for it: hostile, or with every field written any which way."""
    columns = draw(st.sampled_from(sorted(COLUMN_COUNTS)))
    if draw(st.booleans()):
        return columns, draw(hostile_row(columns))
    fields = draw(st.lists(written_field(), min_size=columns - 1, max_size=columns + 1))
    return columns, ",".join(fields)


@settings(max_examples=1000, deadline=None)
@given(written_rows(), st.booleans())
def test_a_row_the_expression_matches_splits_as_csv_splits_it(row: tuple[int, str],
                                                              quoted: bool) -> None:
    columns, text = row
    layout = Layout(columns)
    if quoted:  # the expression for rows with the integers quoted too
        text = re.sub(r",(\d*)(?=,|$)", r',"\1"', text)
    match = (layout.quoted_pattern if quoted else layout.row_pattern).fullmatch(text)
    if match is None:
        return
    row = SPLIT(text)
    assert len(row) == columns
    assert match.groups() == layout.pick(row)


@pytest.mark.parametrize("columns", sorted(COLUMN_COUNTS))
def test_rows_with_every_field_quoted_are_matched_by_the_quoted_expression(columns: int) -> None:
    text = ",".join(f if f.startswith('"') else f'"{f}"'
                    for f in asterisk_row(columns, "2024-05-01 00:00:00", "20", "12"))
    layout = Layout(columns)
    assert layout.row_pattern.fullmatch(text) is None
    match = layout.quoted_pattern.fullmatch(text)
    assert match is not None
    assert match.groups() == layout.pick(SPLIT(text))


@pytest.mark.parametrize("columns", sorted(COLUMN_COUNTS))
def test_asterisk_rows_are_matched_by_the_expression(columns: int) -> None:
    text = ",".join(asterisk_row(columns, "2024-05-01 00:00:00", "20", "12"))
    layout = Layout(columns)
    match = layout.row_pattern.fullmatch(text)
    assert match is not None
    assert match.groups() == layout.pick(SPLIT(text))


@settings(max_examples=300, deadline=None)
@given(hostile_lines())
def test_hostile_rows_read_the_same_with_and_without_the_expression(lines: list[str]) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert read_all(lines) == read_without_expression(lines, monkeypatch)


@pytest.mark.parametrize("columns", sorted(COLUMN_COUNTS))
def test_written_days_read_the_same_with_and_without_the_expression(
        columns: int, monkeypatch: pytest.MonkeyPatch) -> None:
    records = [{"caller": f"138{i % 97:08d}", "callee": f"139{i:08d}", "start": 1714521600.0 + i,
                "duration": i % 5 * 7, "ring": 3.0, "answered": i % 5 > 0,
                "trunk": "gw-cloud", "disposition": "ANSWERED" if i % 5 else "NO ANSWER"}
               for i in range(200)]
    records += [{"caller": "anonymous", "callee": "s", "start": "late", "duration": "x"}]
    out = io.StringIO()
    AsteriskWriter(columns).write(records, out)
    lines = out.getvalue().splitlines()
    fast = read_all(lines)
    assert sum(isinstance(r, Call) for r in fast) == 200
    assert fast == read_without_expression(lines, monkeypatch)


@pytest.mark.parametrize("columns", sorted(COLUMN_COUNTS))
def test_bytes_with_bad_utf8_read_the_same_with_and_without_the_expression(
        columns: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop makes the ids of 16 and 18 columns from the bytes as read when they are the
    text's UTF-8; a row they are not (invalid UTF-8, replaced on reading) gets the same id
    as the careful way gives it, from the text."""
    records = [{"caller": f"138{i % 97:08d}", "callee": f"139{i:08d}", "start": 1714521600.0 + i,
                "duration": 7, "ring": 3.0, "answered": True, "trunk": "gw-cloud",
                "disposition": "ANSWERED"} for i in range(40)]
    out = io.StringIO()
    AsteriskWriter(columns).write(records, out)
    spoilers = [b"\xff", b"\xc3", "\ufffd".encode(), "é".encode(), b"\xed\xa0\x80", b""]
    lines = [line.encode().replace(b"from-trunk", b"from-" + spoilers[i % len(spoilers)] + b"trunk")
             + (b"\r\n" if i % 3 else b"\n") for i, line in enumerate(out.getvalue().splitlines())]
    fast = list(Asterisk(NORM, "UTC").read(lines, "Master.csv"))
    assert sum(isinstance(r, Call) for r in fast) == 40
    with monkeypatch.context() as patch:
        patch.setattr(formats.asterisk, "row_pattern", lambda *args: re.compile("(?!)"))
        assert fast == list(Asterisk(NORM, "UTC").read(lines, "Master.csv"))
    # and a row in valid UTF-8 has the id it has when read as text
    text_ids = [r.id for r in read_all([line.decode("utf-8", "replace").rstrip("\r\n")
                                        for line in lines])]
    assert [r.id for r in fast] == text_ids
